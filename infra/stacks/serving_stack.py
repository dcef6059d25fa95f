"""Stateless serving: the shared endpoint, a dedicated endpoint per shipped model, and the
step that deploys to them.

The shipped models come in as a prop (`models/*.yaml` is read once in `infra/app_builder.py`);
nothing here reads files. Per env:
- `serving_backend == "lambda"`: one `InferenceEndpoint` per shipped model, and one
  `SharedEndpoint` serving every other model the pipeline deploys (a dataset uploaded with its
  config needs no stack change). Where aliases move through CodeDeploy (every env but the
  twin, whose emulator has no CodeDeploy resources) each endpoint gets a deployment group with
  the env's `deployment_strategy`;
- `serving_backend == "sagemaker-serverless"`: one SageMaker Serverless Inference endpoint per
  model instead, built from the same image and the same registered model archive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import EnvConfig, ServingBackend
from infra.constructs.endpoint import (
    DEPLOYMENT_CONFIGS,
    EndpointDeployer,
    EndpointSettings,
    InferenceEndpoint,
    SharedEndpoint,
)
from infra.constructs.log_retention import log_retention
from infra.constructs.serverless_endpoint import ServerlessEndpoint, ServingImage
from infra.stacks.data_stack import DataStack

# Serving defaults every env shares today; per-env values would move to EnvConfig.
CAPTURE_SAMPLE_RATE = 1.0
EXTRA_FEATURES = "ignore"
MAX_ROWS = 1000
MAX_PAYLOAD_BYTES = 1_000_000
LATENCY_P99_MS = 1000
INFERENCE_MEMORY_MB = 2048
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def construct_name(model: str) -> str:
    """`breast_cancer` → `BreastCancer`: construct ids and output names per model."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", model))


class ServingStack(Stack):
    """Inference endpoints for `model_names`, their alarms, deployment groups and deployer."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        data: DataStack,
        model_names: Sequence[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Driftline {config.name}: serverless inference endpoints",
            **kwargs,
        )
        self.config = config
        self.data = data
        names = _checked_names(model_names)
        retention = log_retention(config.log_retention_days)
        self.endpoints: dict[str, InferenceEndpoint] = {}
        self.serverless_endpoints: dict[str, ServerlessEndpoint] = {}
        self.shared_endpoint: SharedEndpoint | None = None

        if config.serving_backend is ServingBackend.SAGEMAKER_SERVERLESS:
            image = ServingImage(self, "ServingImage")
            for model in names:
                self.serverless_endpoints[model] = ServerlessEndpoint(
                    self,
                    f"{construct_name(model)}Serverless",
                    model=model,
                    env_name=config.name,
                    image=image,
                    artifacts_bucket=data.artifacts_bucket,
                    capture_sample_rate=CAPTURE_SAMPLE_RATE,
                    extra_features=EXTRA_FEATURES,
                    max_rows=MAX_ROWS,
                )
                CfnOutput(
                    self,
                    f"EndpointName{construct_name(model)}",
                    value=self.serverless_endpoints[model].endpoint_name,
                    description=f"SageMaker endpoint serving model {model}",
                )
        else:
            # The twin's emulator creates no CodeDeploy resources; it moves aliases directly.
            uses_codedeploy = not config.is_local
            application = (
                codedeploy.LambdaApplication(self, "Deployments") if uses_codedeploy else None
            )
            deployment_config = (
                DEPLOYMENT_CONFIGS[config.deployment_strategy.value] if uses_codedeploy else None
            )
            settings = EndpointSettings(
                env_name=config.name,
                capture_sample_rate=CAPTURE_SAMPLE_RATE,
                extra_features=EXTRA_FEATURES,
                max_rows=MAX_ROWS,
                max_payload_bytes=MAX_PAYLOAD_BYTES,
                latency_p99_ms=LATENCY_P99_MS,
                memory_mb=INFERENCE_MEMORY_MB,
                log_retention=retention,
                log_key=data.key,
                removal_policy=RemovalPolicy.DESTROY,
                reserved_concurrency=config.inference_reserved_concurrency,
            )
            for model in names:
                endpoint = InferenceEndpoint(
                    self,
                    construct_name(model),
                    model=model,
                    artifacts_bucket=data.artifacts_bucket,
                    settings=settings,
                    deployment_config=deployment_config,
                    application=application,
                    alarm_topic=data.alerts_topic,
                )
                self.endpoints[model] = endpoint
                suffix = construct_name(model)
                CfnOutput(
                    self,
                    f"EndpointUrl{suffix}",
                    value=endpoint.url.url,
                    description=f"Function URL (IAM auth) of the {model} endpoint's live alias",
                )
                CfnOutput(
                    self,
                    f"EndpointFunction{suffix}",
                    value=endpoint.function.function_name,
                    description=f"function to `lambda invoke --qualifier live` for {model}",
                )
            self.shared_endpoint = SharedEndpoint(
                self,
                "SharedEndpoint",
                artifacts_bucket=data.artifacts_bucket,
                endpoints_table=data.tables.endpoints,
                settings=settings,
                deployment_config=deployment_config,
                application=application,
                alarm_topic=data.alerts_topic,
            )
            CfnOutput(
                self,
                "SharedEndpointFunction",
                value=self.shared_endpoint.function.function_name,
                description="function serving every model without a dedicated endpoint "
                '(invoke --qualifier live with {"model": M, "rows": [...]})',
            )
            CfnOutput(
                self,
                "SharedEndpointUrl",
                value=self.shared_endpoint.url.url,
                description="Function URL (IAM auth) of the shared endpoint: POST /models/<model>",
            )
            CfnOutput(
                self,
                "Endpoints",
                value=self.to_json_string(
                    {
                        model: {
                            "function_name": endpoint.function.function_name,
                            "alias": endpoint.alias.alias_name,
                            "url": endpoint.url.url,
                        }
                        for model, endpoint in self.endpoints.items()
                    }
                ),
                description="model → endpoint function, alias and URL (read by the CLI)",
            )

        self.deployer = EndpointDeployer(
            self,
            "Deployer",
            endpoints=list(self.endpoints.values()),
            shared_endpoint=self.shared_endpoint,
            artifacts_bucket=data.artifacts_bucket,
            models_table=data.tables.models,
            endpoints_table=data.tables.endpoints,
            env_name=config.name,
            deployment_strategy=config.deployment_strategy.value,
            alias_shift="codedeploy" if not config.is_local else "direct",
            log_retention=retention,
            log_key=data.key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.deploy_function: lambda_.IFunction = self.deployer.function
        CfnOutput(self, "DeployFunctionName", value=self.deployer.function.function_name)


def _checked_names(model_names: Sequence[str]) -> list[str]:
    """Model names as endpoint names: valid, unique, and distinct once turned into ids."""
    names = sorted(set(model_names))
    seen: dict[str, str] = {}
    for name in names:
        if not _MODEL_NAME.match(name):
            raise ValueError(f"model name {name!r} cannot name an endpoint (letters, digits, _.-)")
        key = construct_name(name)
        if key in seen:
            raise ValueError(
                f"models {seen[key]!r} and {name!r} would share the endpoint id {key!r}; "
                "rename one of the model configs"
            )
        seen[key] = name
    return names
