"""Uploads that never started a run, read from the Pipeline stack's undelivered-uploads queue.

An upload reaches the pipeline as S3 → EventBridge → StartRun (asynchronous). When EventBridge
cannot invoke StartRun, or StartRun fails through Lambda's retries, the S3 event lands in one
SQS queue (`infra/constructs/undelivered.py`): as the message body itself (EventBridge's
dead-letter format, the cause in the `ERROR_CODE`/`ERROR_MESSAGE` attributes) or as Lambda's
on-failure destination record (the event in `requestPayload`, the cause in `responsePayload`).

`driftline runs list` reads that queue rather than a record written by another function: the
queue already holds every such event (a recorder would be one more function that can fail,
and consuming the queue would clear the alarm on it), its messages stay for 14 days and can
be sent to StartRun again. SQS has no "peek", so messages are received with a visibility
timeout of 0: they stay in the queue, visible, for the next reader; only their receive count
grows, which nothing here acts on (the queue has no redrive policy).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pipelines.uploads import DatasetUpload, parse_upload

QUEUE_OUTPUT = "UndeliveredUploadsQueueUrl"
NOT_STARTED = "NotStarted"
# A dead-letter queue holding more than this many uploads has bigger problems than a listing.
MAX_MESSAGES = 1000
# Short polling samples a subset of SQS's servers: stop after this many receives in a row
# that bring nothing new.
QUIET_RECEIVES = 3


def peek_messages(sqs: Any, queue_url: str, *, limit: int = MAX_MESSAGES) -> list[dict[str, Any]]:
    """The queue's messages, received with visibility timeout 0 so they stay for others."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    expected = min(int(attributes.get("ApproximateNumberOfMessages", 0)), limit)
    seen: dict[str, dict[str, Any]] = {}
    quiet = 0
    while len(seen) < expected and quiet < QUIET_RECEIVES:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            WaitTimeSeconds=0,
            AttributeNames=["SentTimestamp"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        fresh = [message for message in messages if message["MessageId"] not in seen]
        seen.update((message["MessageId"], message) for message in fresh)
        quiet = 0 if fresh else quiet + 1
    return list(seen.values())


def not_started_record(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A run-like record (`status` NotStarted) for one queued upload; None if not an upload."""
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("requestPayload"), dict):  # Lambda's on-failure destination record
        event = body["requestPayload"]
        context = body.get("requestContext") or {}
        response = body.get("responsePayload") or {}
        error = ": ".join(
            str(part) for part in (response.get("errorType"), response.get("errorMessage")) if part
        )
        attempts = context.get("approximateInvokeCount")
        cause = (
            f"StartRun failed ({context.get('condition') or 'unknown condition'}"
            f"{f', {attempts} attempts' if attempts else ''}): {error or 'no error message'}"
        )
    else:  # EventBridge's dead letter: the event itself, the cause in message attributes
        event = body
        attributes = message.get("MessageAttributes") or {}
        code, text = (
            str((attributes.get(name) or {}).get("StringValue") or "")
            for name in ("ERROR_CODE", "ERROR_MESSAGE")
        )
        cause = f"EventBridge could not invoke StartRun: {': '.join(p for p in (code, text) if p)}"
    if event.get("source") != "aws.s3":
        return None
    upload = parse_upload(event)
    detail_object = (event.get("detail") or {}).get("object") or {}
    record: dict[str, Any] = {
        "run_id": upload.execution_name if isinstance(upload, DatasetUpload) else None,
        "dataset": upload.dataset if isinstance(upload, DatasetUpload) else None,
        "status": NOT_STARTED,
        "trigger": "upload",
        "uploaded_at": event.get("time") or _sent_at(message),
        "key": str(detail_object.get("key", "")),
        "version_id": detail_object.get("version-id"),
        "cause": cause,
        "queue_message_id": message.get("MessageId"),
    }
    return record


def merge_runs(
    runs: list[dict[str, Any]], not_started: list[dict[str, Any]], *, limit: int
) -> list[dict[str, Any]]:
    """Runs and uploads that never started, newest first, at most `limit`."""

    def when(record: Mapping[str, Any]) -> str:
        return str(record.get("started_at") or record.get("uploaded_at") or "")

    return sorted([*runs, *not_started], key=when, reverse=True)[:limit]


def uploads_not_started(
    sqs: Any, queue_url: str, *, dataset: str | None = None
) -> list[dict[str, Any]]:
    records = [not_started_record(message) for message in peek_messages(sqs, queue_url)]
    return [
        record
        for record in records
        if record is not None and (dataset is None or record["dataset"] == dataset)
    ]


def _sent_at(message: Mapping[str, Any]) -> str | None:
    sent = (message.get("Attributes") or {}).get("SentTimestamp")
    if not sent:
        return None
    moment = datetime.fromtimestamp(int(sent) / 1000, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def with_uploads_not_started(
    env: str, runs: list[dict[str, Any]], *, dataset: str | None, limit: int
) -> list[dict[str, Any]]:
    """`runs` plus the env's uploads that never started; a warning if the queue is unreadable.

    An env deployed before the queue existed has no such output and lists runs only.
    """
    import sys

    from botocore.exceptions import BotoCoreError, ClientError

    from driftline.aws import client, stack_outputs

    queue_url = stack_outputs(env).get(QUEUE_OUTPUT)
    if queue_url is None:
        return runs
    try:
        not_started = uploads_not_started(client("sqs"), queue_url, dataset=dataset)
    except (BotoCoreError, ClientError) as error:
        print(
            f"warning: cannot read uploads that never started ({queue_url}): {error}",
            file=sys.stderr,
        )
        return runs
    if not_started:
        print(
            f"{len(not_started)} upload(s) never started a run (status {NOT_STARTED}; --json "
            f"for the cause); their events wait in {queue_url}",
            file=sys.stderr,
        )
    return merge_runs(runs, not_started, limit=limit)
