"""SageMaker Serverless Inference: the alternative serving backend (`serving_backend`).

Same image build and pins as the Lambda functions (so the model loads under the scikit-learn
that wrote it), a different entry point: `functions/inference/sagemaker_server.py` answers
SageMaker's `/ping` and `/invocations` with the same request checks, scoring and capture as the
Lambda endpoint. The model data is the registered archive itself: SageMaker mounts the
uncompressed prefix `models/<model>/live/` (where a deploy places the approved `model.zip`) at
/opt/ml/model.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.constructs.functions import repo_image_asset
from infra.nag import WILDCARD_RESOURCE, acknowledge
from pipelines.keys import CAPTURE_PREFIX, live_prefix

SERVERLESS_MEMORY_MB = 3072
SERVERLESS_MAX_CONCURRENCY = 5


class ServingImage(Construct):
    """The SageMaker serving image, built from the repository like the function image."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.asset = repo_image_asset(self, "Image", "functions/inference/sagemaker.Dockerfile")


class ServerlessEndpoint(Construct):
    """CfnModel + CfnEndpointConfig (ServerlessConfig) + CfnEndpoint for one model."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        model: str,
        env_name: str,
        image: ServingImage,
        artifacts_bucket: s3.IBucket,
        capture_sample_rate: float,
        extra_features: str,
        max_rows: int,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Driftline SageMaker endpoint for model {model}",
        )
        image.asset.repository.grant_pull(self.role)
        artifacts_bucket.grant_read(self.role, f"{live_prefix(model)}*")
        artifacts_bucket.grant_put(self.role, f"{CAPTURE_PREFIX}{model}/*")
        log_groups = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/Endpoints/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[log_groups, f"{log_groups}:*"],
            )
        )
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.asset.image_uri,
                mode="SingleModel",
                model_data_source=sagemaker.CfnModel.ModelDataSourceProperty(
                    s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                        s3_uri=f"s3://{artifacts_bucket.bucket_name}/{live_prefix(model)}",
                        s3_data_type="S3Prefix",
                        compression_type="None",
                    )
                ),
                environment={
                    "DRIFTLINE_ENV": env_name,
                    "DRIFTLINE_MODEL_NAME": model,
                    "DRIFTLINE_ARTIFACTS_BUCKET": artifacts_bucket.bucket_name,
                    "DRIFTLINE_CAPTURE_SAMPLE_RATE": f"{capture_sample_rate:g}",
                    "DRIFTLINE_EXTRA_FEATURES": extra_features,
                    "DRIFTLINE_MAX_ROWS": str(max_rows),
                },
            ),
        )
        self.model.node.add_dependency(self.role)
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name="AllTraffic",
                    model_name=self.model.attr_model_name,
                    serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                        memory_size_in_mb=SERVERLESS_MEMORY_MB,
                        max_concurrency=SERVERLESS_MAX_CONCURRENCY,
                    ),
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name
        )
        self.endpoint_name: str = self.endpoint.attr_endpoint_name
        acknowledge(
            self.role,
            WILDCARD_RESOURCE,
            "ecr:GetAuthorizationToken (pulling the serving image) accepts only Resource '*'",
        )
        acknowledge(
            self.endpoint_config,
            "AwsSolutions-SM2",
            "Serverless Inference endpoints have no ML storage volume, so SageMaker rejects a "
            "KmsKeyId on their endpoint config; the model data stays KMS-encrypted in S3",
        )
        acknowledge(
            self.model,
            "AwsSolutions-SM1",
            "Serverless Inference runs outside a customer VPC here: the model reads one S3 "
            "prefix through its role, and no env has a VPC to attach to",
        )
