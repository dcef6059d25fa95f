"""cdk-nag wiring: AwsSolutions on every stack, every acknowledgement kept beside its reason.

Two ways to acknowledge, both requiring a specific reason:
- `acknowledge(construct, rule_id, reason)` for one finding on one construct (exact id);
- `PATTERN_ACKNOWLEDGEMENTS` for the wildcard findings CDK's `grant_*` methods generate on
  every role. Their finding ids embed cross-stack export names that exist only after synth,
  so they are matched by pattern (rule id and construct path) in a thin wrapper around
  the AwsSolutions plugin instead of being listed by hand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import jsii
from aws_cdk import (
    Acknowledgment,
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
    Stack,
    Stage,
    Validations,
)
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

BASIC_EXECUTION_ROLE = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
    "service-role/AWSLambdaBasicExecutionRole]"
)
WILDCARD_RESOURCE = "AwsSolutions-IAM5[Resource::*]"


@dataclass(frozen=True)
class PatternAcknowledgement:
    rule: str
    construct_path: str
    reason: str

    def covers(self, rule_name: str, construct_path: str) -> bool:
        """`construct_path` is matched from the stack down: inside a delivery pipeline stage
        the same construct sits under `Driftline-Delivery/<stage>/`."""
        if not re.fullmatch(self.rule, rule_name):
            return False
        parts = construct_path.split("/")
        return any(
            re.fullmatch(self.construct_path, "/".join(parts[start:]))
            for start in range(len(parts))
        )


_ROLE_POLICY = r"Driftline-\w+-\w+/.+/Role/DefaultPolicy/Resource"
_BUCKET_ARN = r"(<\w+Bucket\w*\.Arn>|Driftline-\w+-Data:ExportsOutputFnGetAtt\w*Bucket\w*Arn\w*)"

PATTERN_ACKNOWLEDGEMENTS: tuple[PatternAcknowledgement, ...] = (
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Action::(s3:(GetBucket|GetObject|List|Abort)"
        r"|kms:(GenerateDataKey|ReEncrypt))\*\]",
        construct_path=_ROLE_POLICY,
        reason="Action groups emitted by CDK grant_read/grant_put (never delete), each "
        "statement scoped to one Driftline bucket's keys or the env's data key",
    ),
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::{_BUCKET_ARN}/(\w+/)?\*\]",
        construct_path=_ROLE_POLICY,
        reason="Object-level access inside one Driftline bucket (its ARN + /* or a prefix), "
        "granted through CDK grants; never across buckets",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::<\w+Function\w*\.Arn>:\*\]",
        construct_path=r"Driftline-\w+-\w+/.+/StateMachine/Role/DefaultPolicy/Resource",
        reason="The state machine may invoke any published version of its own step functions "
        "(CDK LambdaInvoke grants function ARN and ARN:*)",
    ),
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::{_BUCKET_ARN}/"
        r"(datasets|runs|models|captures|reports|monitoring|part-results)/[\w.*/-]+\]",
        construct_path=_ROLE_POLICY,
        reason="A step's own keys of the artifacts bucket (infra/constructs/artifact_access.py): "
        "the dataset, version, run or model in a key is known only at run time; writes are "
        "PutObject, never delete",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::arn:[\w-]+:states:[^\]]*:execution:.*\]",
        construct_path=r"Driftline-\w+-\w+/.+/StateMachine/DistributedMapPolicy/Resource",
        reason="A Distributed Map runs and stops child executions of its own state machine only "
        "(CDK's DistributedMapPolicy, scoped to this state machine's execution ARNs)",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::arn:[\w-]+:sagemaker:[\w-]+:(\d{12}|<AWS::AccountId>):"
        r"training-job/driftline-\*\]",
        construct_path=r"Driftline-\w+-Pipeline/Training/StateMachine/Role/DefaultPolicy/Resource",
        reason="Training job names are derived per run at execution time; the state machine may "
        "create, describe and stop only jobs named with the driftline- prefix",
    ),
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::{_BUCKET_ARN}/runs/\*/sagemaker/\*\]",
        construct_path=r"Driftline-\w+-Pipeline/Training/TrainingJob/Role/DefaultPolicy/Resource",
        reason="A SageMaker training job writes only under a run's sagemaker/ output prefix of "
        "the artifacts bucket; the run id is known only at execution time",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::arn:[\w-]+:logs:[\w-]+:(\d{12}|<AWS::AccountId>):log-group:"
        r"/aws/sagemaker/TrainingJobs:\*\]",
        construct_path=r"Driftline-\w+-Pipeline/Training/TrainingJob/Role/DefaultPolicy/Resource",
        reason="SageMaker writes each training job's logs to its own stream in the fixed "
        "/aws/sagemaker/TrainingJobs log group; streams are named per job at run time",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::arn:[\w-]+:sagemaker:[\w-]+:(\d{12}|<AWS::AccountId>):"
        r"model-package/driftline-[\w-]+/\*\]",
        construct_path=r"Driftline-\w+-Pipeline/Training/Functions/Register/Role/DefaultPolicy/"
        r"Resource",
        reason="Register creates model packages inside the env's own Model Package Groups; a "
        "package ARN ends in a version number SageMaker assigns",
    ),
)


@jsii.implements(IPolicyValidationPlugin)
class _AcknowledgingPlugin:
    """AwsSolutions, minus the findings a `PatternAcknowledgement` covers."""

    def __init__(
        self, inner: AwsSolutionsChecks, acknowledgements: Sequence[PatternAcknowledgement]
    ) -> None:
        self._inner = inner
        self._acknowledgements = tuple(acknowledgements)

    @property
    def name(self) -> str:
        return str(self._inner.name)

    @property
    def version(self) -> str | None:
        return self._inner.version

    @property
    def rule_ids(self) -> list[str] | None:
        return self._inner.rule_ids

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        report = self._inner.validate(context)
        kept: list[PolicyViolation] = []
        for violation in report.violations:
            resources = [
                resource
                for resource in violation.violating_resources
                if not self._covered(violation.rule_name, resource.construct_path or "")
            ]
            if resources:
                kept.append(_with_resources(violation, resources))
        return PolicyValidationPluginReport(
            success=not kept, violations=kept, metadata=report.metadata
        )

    def _covered(self, rule_name: str, construct_path: str) -> bool:
        return any(ack.covers(rule_name, construct_path) for ack in self._acknowledgements)


def _with_resources(
    violation: PolicyViolation, resources: list[PolicyViolatingResource]
) -> PolicyViolation:
    return PolicyViolation(
        rule_name=violation.rule_name,
        description=violation.description,
        violating_resources=resources,
        fix=violation.fix,
        rule_metadata=violation.rule_metadata,
        severity=violation.severity,
    )


def enable_nag(
    app: Stage, acknowledgements: Sequence[PatternAcknowledgement] = PATTERN_ACKNOWLEDGEMENTS
) -> None:
    """Findings make synth raise ValidationFailed, so an unacknowledged one can never ship.

    `app` is the App or a Stage (each delivery pipeline stage validates its own stacks).
    """
    Validations.of(app).add_plugins(_AcknowledgingPlugin(AwsSolutionsChecks(app), acknowledgements))


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Silence one finding on the narrowest construct, always with a specific reason.

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
    EventBridge notifications are on.
    """
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            acknowledge(
                child,
                BASIC_EXECUTION_ROLE,
                "CDK's BucketNotificationsHandler uses the basic role only to write its own logs",
            )
