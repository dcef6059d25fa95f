"""The customer-managed KMS key that encrypts every stateful resource of one environment."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
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
            description="Driftline data key: datasets, artifacts, registry tables, alerts topic",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        # CloudWatch alarms and EventBridge publish to the encrypted alerts topic; SNS needs
        # them to be able to use this key or the notifications are silently dropped.
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"AllowPublishFrom{service.split('.')[0].capitalize()}",
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    # In a key policy, Resource "*" means this key itself, nothing wider.
                    resources=["*"],
                )
            )
