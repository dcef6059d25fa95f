"""Messages to the alerts topic (SNS)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from functions.shared.clients import client
from functions.shared.errors import error_code, transient_aws_errors


def notify(topic_arn: str, subject: str, message: str) -> str:
    """Publish to the alerts topic; SNS subjects are one line of at most 100 characters."""
    line = " ".join(subject.split())[:100]
    with transient_aws_errors(f"SNS publish to {topic_arn}"):
        response = client("sns").publish(TopicArn=topic_arn, Subject=line, Message=message)
    return str(response["MessageId"])


def error_text(error: ClientError) -> str:
    return f"{error_code(error)}: {error.response.get('Error', {}).get('Message', '')}"
