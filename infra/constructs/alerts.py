"""The SNS topic every Driftline alert and notification goes to."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class AlertsTopic(Construct):
    """KMS-encrypted, TLS-only topic with the env's e-mail subscribers."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey,
        email_addresses: Sequence[str],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="Driftline alerts",
            master_key=encryption_key,
            enforce_ssl=True,
        )
        self.topic.apply_removal_policy(removal_policy)
        for address in email_addresses:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))
