"""The customer-managed KMS key that encrypts every stateful resource of one environment."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


class DataKey(Construct):
    """One rotating key per env: one key policy to audit, not one per bucket/table/topic."""

    def __init__(
        self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=(
                "Driftline data key: datasets, artifacts, registry tables, alerts topic, logs"
            ),
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        # Every service principal below may use the key only on behalf of this account
        # (`aws:SourceAccount`, confused-deputy protection) and, where the service says which
        # resource it acts for, only for this account's resources of that kind.
        stack = Stack.of(self)
        account, region, partition = stack.account, stack.region, stack.partition
        # CloudWatch alarms publish to the encrypted alerts topic (SNS needs them to be able to
        # use this key or the notifications are silently dropped); EventBridge rule targets
        # dead-letter into the KMS-encrypted undelivered-events queues.
        for service, source_arn in (
            ("cloudwatch.amazonaws.com", f"arn:{partition}:cloudwatch:{region}:{account}:alarm:*"),
            ("events.amazonaws.com", f"arn:{partition}:events:{region}:{account}:rule/*"),
        ):
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"AllowPublishFrom{service.split('.')[0].capitalize()}",
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    # In a key policy, Resource "*" means this key itself, nothing wider.
                    resources=["*"],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": account},
                        "ArnLike": {"aws:SourceArn": source_arn},
                    },
                )
            )
        # CloudWatch Logs encrypts every log group of the env (functions' logs, the state
        # machine's execution logs, which hold full execution data) with this key; the
        # encryption context names the log group, so the grant covers this account's log
        # groups in this region and nothing else.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                # In a key policy, Resource "*" means this key itself, nothing wider.
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{partition}:logs:{region}:{account}:log-group:*"
                        )
                    },
                },
            )
        )
