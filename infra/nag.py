"""cdk-nag wiring: AwsSolutions on every stack, acknowledgements kept beside their reasons."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def enable_nag(app: App) -> None:
    """Findings make synth raise ValidationFailed, so an unacknowledged one can never ship."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


BASIC_EXECUTION_ROLE = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
    "service-role/AWSLambdaBasicExecutionRole]"
)


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """The one way to silence a finding: always on the narrowest construct, always with a reason.

    `rule_id` is the finding as cdk-nag prints it (e.g. `AwsSolutions-IAM5[Resource::*]`).
    """
    if len(reason) < 20:
        raise ValueError(f"acknowledgement of {rule_id} needs a specific reason, got {reason!r}")
    Validations.of(construct).acknowledge(
        Acknowledgment(id=f"AwsSolutions::{rule_id}", reason=reason)
    )


def acknowledge_cdk_singletons(stack: Stack) -> None:
    """CDK-provided helper functions whose runtime and role we do not control.

    `Custom::S3BucketNotifications` (BucketNotificationsHandler) is created by aws-s3 when
    EventBridge notifications are on; `Custom::S3AutoDeleteObjects` may also appear.
    """
    for child in stack.node.children:
        child_id = child.node.id
        if child_id.startswith("BucketNotificationsHandler"):
            acknowledge(
                child,
                BASIC_EXECUTION_ROLE,
                "CDK's BucketNotificationsHandler uses the basic role only to write its own logs",
            )
