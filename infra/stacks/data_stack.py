"""Stateful resources: everything here holds data that cannot be rebuilt from code."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.config import EnvConfig
from infra.constructs.alerts import AlertsTopic
from infra.constructs.buckets import AccessLogBucket, SecureBucket
from infra.constructs.encryption import DataKey
from infra.constructs.registry_tables import RegistryTables, RegistryTableSet
from infra.constructs.training_pipeline import PipelineResources


class DataStack(Stack):
    """Buckets, registry tables, the data key and the alerts topic of one environment."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvConfig, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            termination_protection=config.protects_stateful_resources,
            description=f"Driftline {config.name}: datasets, artifacts, registries, alerts",
            **kwargs,
        )
        removal = (
            RemovalPolicy.RETAIN if config.protects_stateful_resources else RemovalPolicy.DESTROY
        )

        self.key: kms.IKey = DataKey(self, "DataKey", removal_policy=removal).key
        access_logs = AccessLogBucket(
            self,
            "AccessLogs",
            removal_policy=removal,
            retention=Duration.days(max(config.log_retention_days, 1)),
        ).bucket
        noncurrent_expiry = Duration.days(config.noncurrent_version_expiry_days)

        def data_bucket(construct_id: str, access_log_prefix: str) -> s3.IBucket:
            return SecureBucket(
                self,
                construct_id,
                encryption_key=self.key,
                access_logs=access_logs,
                access_log_prefix=access_log_prefix,
                removal_policy=removal,
                noncurrent_version_expiry=noncurrent_expiry,
                event_bridge_enabled=True,
            ).bucket

        self.datasets_bucket: s3.IBucket = data_bucket("Datasets", "datasets/")
        self.artifacts_bucket: s3.IBucket = data_bucket("Artifacts", "artifacts/")
        self.tables: RegistryTableSet = RegistryTables(
            self, "Registry", encryption_key=self.key, removal_policy=removal
        ).tables
        self.alerts_topic: sns.ITopic = AlertsTopic(
            self,
            "Alerts",
            encryption_key=self.key,
            email_addresses=config.alarm_emails,
            removal_policy=removal,
        ).topic

        outputs = {
            "DatasetsBucketName": self.datasets_bucket.bucket_name,
            "ArtifactsBucketName": self.artifacts_bucket.bucket_name,
            "AlertsTopicArn": self.alerts_topic.topic_arn,
            "DataKeyArn": self.key.key_arn,
            "DatasetsTableName": self.tables.datasets.table_name,
            "RunsTableName": self.tables.runs.table_name,
            "ModelsTableName": self.tables.models.table_name,
            "EndpointsTableName": self.tables.endpoints.table_name,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

    @property
    def resources(self) -> PipelineResources:
        """The stateful resources that the stateless stacks build on."""
        return PipelineResources(
            datasets_bucket=self.datasets_bucket,
            artifacts_bucket=self.artifacts_bucket,
            tables=self.tables,
            alerts_topic=self.alerts_topic,
            key=self.key,
        )
