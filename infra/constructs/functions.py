"""Driftline's Lambda functions: one container image, one command per function."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, IgnoreMode, RemovalPolicy, Size
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import WILDCARD_RESOURCE, acknowledge

REPO_ROOT = Path(__file__).resolve().parents[2]

# Docker-style allowlist: the image needs the handlers, the logic and the shipped
# contracts/model configs, nothing else (keeps the asset hash stable across test runs).
IMAGE_CONTEXT_EXCLUDES = [
    "*",
    "!functions/**",
    "!pipelines/**",
    "!contracts/**",
    "!models/**",
    "**/__pycache__",
    "**/*.pyc",
]


def repo_image_asset(
    scope: Construct, construct_id: str, dockerfile: str
) -> ecr_assets.DockerImageAsset:
    """An image built from the repository with the functions' build context: the same file and
    context give the same asset hash, so the SageMaker images reuse the functions' repository."""
    return ecr_assets.DockerImageAsset(
        scope,
        construct_id,
        directory=str(REPO_ROOT),
        file=dockerfile,
        exclude=IMAGE_CONTEXT_EXCLUDES,
        ignore_mode=IgnoreMode.DOCKER,
    )


class FunctionImage:
    """The one image asset; DockerImageCode per function only overrides the command."""

    @staticmethod
    def code(handler_module: str) -> lambda_.DockerImageCode:
        return lambda_.DockerImageCode.from_image_asset(
            str(REPO_ROOT),
            file="functions/Dockerfile",
            cmd=[f"functions.{handler_module}.handler.handler"],
            exclude=IMAGE_CONTEXT_EXCLUDES,
            ignore_mode=IgnoreMode.DOCKER,
        )


class DriftlineFunction(Construct):
    """A container-image Lambda with its own log group, X-Ray tracing and settings in env vars.

    `ephemeral_storage_mb` sizes `/tmp` (512 MB by default, at most 10,240 MB). The log group is
    encrypted with `log_key`, the env's data key (its policy lets CloudWatch Logs use it for
    this account's log groups only, infra/constructs/encryption.py).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler_module: str,
        description: str,
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        log_key: kms.IKey,
        removal_policy: RemovalPolicy,
        memory_mb: int = 1024,
        timeout_seconds: int = 60,
        reserved_concurrency: int | None = None,
        ephemeral_storage_mb: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention,
            encryption_key=log_key,
            removal_policy=removal_policy,
        )
        # An explicit role instead of AWSLambdaBasicExecutionRole: it may write to its own log
        # group and nothing else; everything else arrives through grants.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Driftline {handler_module} function",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            role=self.role,
            code=FunctionImage.code(handler_module),
            description=description,
            memory_size=memory_mb,
            timeout=Duration.seconds(timeout_seconds),
            reserved_concurrent_executions=reserved_concurrency,
            ephemeral_storage_size=(
                Size.mebibytes(ephemeral_storage_mb) if ephemeral_storage_mb is not None else None
            ),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            environment={
                "POWERTOOLS_SERVICE_NAME": "driftline",
                "DRIFTLINE_FUNCTION": handler_module,
                **environment,
            },
        )
        acknowledge(
            self.role,
            WILDCARD_RESOURCE,
            "X-Ray PutTraceSegments/PutTelemetryRecords accept only Resource '*' (active tracing)",
        )
