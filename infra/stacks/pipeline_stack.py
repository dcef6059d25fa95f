"""Stateless training pipeline: rebuilt from code at will, wired to the Data stack's constructs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import EnvConfig, TrainingBackend
from infra.constructs.log_retention import log_retention
from infra.constructs.training_pipeline import TrainingPipeline
from infra.stacks.data_stack import DataStack


class PipelineStack(Stack):
    """Validate → prepare → train → evaluate → gate → register → deploy → notify."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        data: DataStack,
        deploy_function: lambda_.IFunction,
        model_names: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Driftline {config.name}: dataset validation and training pipeline",
            **kwargs,
        )
        self.training = TrainingPipeline(
            self,
            "Training",
            resources=data.resources,
            env_name=config.name,
            git_sha=config.git_sha,
            approval_policy=config.approval_policy.value,
            deploy_function=deploy_function,
            log_retention=log_retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
            sagemaker_training=config.training_backend is TrainingBackend.SAGEMAKER,
            # moto cannot create Model Package Groups, so the twin registers in DynamoDB only.
            model_package_groups=not config.is_local,
            model_names=model_names,
        )
        CfnOutput(
            self,
            "TrainingStateMachineArn",
            value=self.training.state_machine.state_machine_arn,
        )
        CfnOutput(
            self,
            "UndeliveredUploadsQueueUrl",
            value=self.training.undelivered.queue.queue_url,
            description="S3 events of uploads that never started a run (driftline runs list)",
        )
