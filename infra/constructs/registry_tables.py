"""DynamoDB tables behind the dataset, run, model and endpoint registries."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

TABLE_NAMES: tuple[str, ...] = ("Datasets", "Runs", "Models", "Endpoints")


@dataclass(frozen=True)
class RegistryTableSet:
    datasets: dynamodb.ITable
    runs: dynamodb.ITable
    models: dynamodb.ITable
    endpoints: dynamodb.ITable


class RegistryTables(Construct):
    """Single-region `AWS::DynamoDB::Table`s (the local emulator has no GlobalTable support).

    Every table keys on (pk, sk) strings so each registry picks its own sort order.

    Datasets: pk=dataset, sk=validated_at#version (newest first with ScanIndexForward=False).
    Runs:     pk=run id / model, Models: pk=model, sk=zero-padded version, Endpoints: pk=endpoint.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        tables = {
            name: dynamodb.Table(
                self,
                f"{name}Table",
                partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
                encryption_key=encryption_key,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                deletion_protection=removal_policy == RemovalPolicy.RETAIN,
                removal_policy=removal_policy,
            )
            for name in TABLE_NAMES
        }
        self.tables = RegistryTableSet(
            datasets=tables["Datasets"],
            runs=tables["Runs"],
            models=tables["Models"],
            endpoints=tables["Endpoints"],
        )
