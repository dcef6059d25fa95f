"""Serving constructs: a Lambda inference endpoint per model, and the step that deploys to them.

`InferenceEndpoint` is one model's endpoint: the shared scikit-learn image running
`functions/inference`, a bootstrap version (no model) behind the `live` alias, an IAM-auth
Function URL on that alias, the alias' error and p99-latency alarms, and, where CodeDeploy
moves traffic, a deployment group that shifts `live` with the env's deployment config and rolls
back on those alarms.

The alias is created pointing at the bootstrap version and CloudFormation never moves it
again: the bootstrap version's properties never change, so later stack updates (a new image,
new settings) leave `live` where the deploy step put it. A new image reaches `live` with the
next model deployment, which publishes $LATEST.

`SharedEndpoint` serves every other model: one function running the same code and image with
no model of its own, routing each request by model name through the Endpoints table (see
`functions/inference/routing.py`). A model uploaded with its config is served as soon as the
pipeline deploys it, with no stack change and no idle compute. Its `live` alias follows the
function's code (`currentVersion`), shifted by CodeDeploy outside the twin like the dedicated
endpoints; model versions are canaried per model by the deploy step instead.

`EndpointDeployer` is the pipeline's `Deploy` step (`functions/deploy`), allowed to change only
these functions and their deployment groups, and the shared endpoint's routes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.functions import DriftlineFunction
from infra.nag import PatternAcknowledgement, acknowledge
from pipelines.keys import CAPTURE_PREFIX, MODELS_PREFIX, SERVING_GLOB
from pipelines.metric_names import MODEL_ERRORS, NAMESPACE

LIVE_ALIAS = "live"
# How stale a warm shared endpoint's view of a model's route may be, and how many models one
# execution environment keeps loaded.
SHARED_ROUTE_TTL_SECONDS = 10
SHARED_MODEL_CACHE_SIZE = 8
DEPLOYMENT_CONFIGS: Mapping[str, codedeploy.ILambdaDeploymentConfig] = {
    "AllAtOnce": codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
    "Canary10Percent5Minutes": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    "Linear10PercentEvery1Minute": (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE
    ),
}


_BUCKET_ARN = r"(<\w+Bucket\w*\.Arn>|Driftline-\w+-Data:ExportsOutputFnGetAtt\w*Bucket\w*Arn\w*)"

# Findings whose ids embed cross-stack export names or logical-id hashes known only after
# synth; matched by rule and construct path (see infra/nag.py), each with its reason.
SERVING_ACKNOWLEDGEMENTS: tuple[PatternAcknowledgement, ...] = (
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::{_BUCKET_ARN}/(models|captures)/[\w.-]+/\*\]",
        construct_path=r"Driftline-\w+-Serving/\w+/Inference/Role/DefaultPolicy/Resource",
        reason="An endpoint reads only its own model's objects (models/<model>/*) and writes "
        "only its own capture prefix (captures/<model>/*)",
    ),
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::{_BUCKET_ARN}/(models/[\w.-]+/live|captures/[\w.-]+)/\*\]",
        construct_path=r"Driftline-\w+-Serving/\w+Serverless/Role/DefaultPolicy/Resource",
        reason="A SageMaker endpoint reads only its own model's live prefix (models/<model>/live/) "
        "and writes only its own capture prefix (captures/<model>/*)",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::arn:[\w-]+:logs:[\w-]+:<AWS::AccountId>:log-group:"
        r"/aws/sagemaker/Endpoints/\*(:\*)?\]",
        construct_path=r"Driftline-\w+-Serving/\w+Serverless/Role/DefaultPolicy/Resource",
        reason="SageMaker names an endpoint's log group /aws/sagemaker/Endpoints/<endpoint name> "
        "after a name CloudFormation generates, so the role gets that log-group prefix",
    ),
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::{_BUCKET_ARN}/(models/\*/serving|captures)/\*\]",
        construct_path=r"Driftline-\w+-Serving/SharedEndpoint/Inference/Role/DefaultPolicy/Resource",
        reason="The shared endpoint serves any deployed model: it reads only serving bundles "
        "(models/<model>/v<version>/serving/*) and writes only captures (captures/<model>/*)",
    ),
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::{_BUCKET_ARN}/models/\*/serving/\*\]",
        construct_path=r"Driftline-\w+-Serving/Deployer/Deploy/Role/DefaultPolicy/Resource",
        reason="The deploy step writes serving bundles under models/<model>/v<version>/serving/ "
        "for whichever registered model version it deploys",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::<\w+InferenceFunction\w*\.Arn>:\*\]",
        construct_path=r"Driftline-\w+-Serving/Deployer/Deploy/Role/DefaultPolicy/Resource",
        reason="The deploy step publishes versions of and moves the live alias of the endpoint "
        "functions, which it addresses as function ARN plus :<version>/:<alias>",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::Driftline-\w+-Serving:ExportsOutputFnGetAtt"
        r"DeployerDeployFunction\w+:\*\]",
        construct_path=r"Driftline-\w+-Pipeline/.+/StateMachine/Role/DefaultPolicy/Resource",
        reason="The state machine may invoke any published version of the Serving stack's "
        "deploy step (CDK LambdaInvoke grants the function ARN and ARN:*)",
    ),
)


@dataclass(frozen=True)
class EndpointSettings:
    """How every endpoint of an env serves and is watched (decided in the Serving stack)."""

    env_name: str
    capture_sample_rate: float
    extra_features: str
    max_rows: int
    max_payload_bytes: int
    latency_p99_ms: int
    memory_mb: int
    log_retention: logs.RetentionDays
    # The env's data key (Data stack): encrypts the endpoint functions' log groups.
    log_key: kms.IKey
    removal_policy: RemovalPolicy
    # Reserved (and maximum) concurrent executions of each endpoint function; None: uncapped.
    reserved_concurrency: int | None = None

    def function_options(self) -> dict[str, Any]:
        """The DriftlineFunction options every inference function shares."""
        return {
            "log_retention": self.log_retention,
            "log_key": self.log_key,
            "removal_policy": self.removal_policy,
            "memory_mb": self.memory_mb,
            "timeout_seconds": 30,
            "reserved_concurrency": self.reserved_concurrency,
        }


def serving_environment(settings: EndpointSettings, artifacts_bucket: s3.IBucket) -> dict[str, str]:
    """The variables every inference function reads, dedicated or shared."""
    return {
        "DRIFTLINE_ENV": settings.env_name,
        "DRIFTLINE_ARTIFACTS_BUCKET": artifacts_bucket.bucket_name,
        "DRIFTLINE_CAPTURE_SAMPLE_RATE": f"{settings.capture_sample_rate:g}",
        "DRIFTLINE_EXTRA_FEATURES": settings.extra_features,
        "DRIFTLINE_MAX_ROWS": str(settings.max_rows),
        "DRIFTLINE_MAX_PAYLOAD_BYTES": str(settings.max_payload_bytes),
    }


class _LiveEndpoint(Construct):
    """An endpoint whose callers reach a `live` alias through its IAM-authenticated URL.

    The alias is watched by error and p99-latency alarms (to the alerts topic) and, where
    CodeDeploy shifts traffic, by a deployment group that rolls back on them.
    """

    def _serve_live(
        self,
        version: lambda_.IVersion,
        *,
        description: str,
        endpoint: str,
        errors_note: str,
        settings: EndpointSettings,
        deployment_config: codedeploy.ILambdaDeploymentConfig | None,
        application: codedeploy.ILambdaApplication | None,
        alarm_topic: sns.ITopic,
    ) -> None:
        self.alias = lambda_.Alias(
            self, "Live", alias_name=LIVE_ALIAS, version=version, description=description
        )
        self.url = self.alias.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        self.error_alarm = cloudwatch.Alarm(
            self,
            "ErrorsAlarm",
            alarm_description=f"{endpoint}: invocations failed (live alias, 2 minutes)"
            f"{errors_note}",
            metric=self.alias.metric_errors(period=Duration.minutes(1), statistic="Sum"),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.latency_alarm = cloudwatch.Alarm(
            self,
            "LatencyAlarm",
            alarm_description=(
                f"{endpoint}: p99 duration above {settings.latency_p99_ms} ms "
                "(live alias, 2 minutes)"
            ),
            metric=self.alias.metric_duration(period=Duration.minutes(1), statistic="p99"),
            threshold=settings.latency_p99_ms,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in (self.error_alarm, self.latency_alarm):
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))
        self.deployment_group: codedeploy.LambdaDeploymentGroup | None = None
        if deployment_config is not None and application is not None:
            self.deployment_group = codedeploy.LambdaDeploymentGroup(
                self,
                "Deployment",
                application=application,
                alias=self.alias,
                deployment_config=deployment_config,
                alarms=[self.error_alarm, self.latency_alarm],
                auto_rollback=codedeploy.AutoRollbackConfig(
                    failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
                ),
            )
            acknowledge(
                self.deployment_group.role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSCodeDeployRoleForLambdaLimited]",
                "CodeDeploy's own service role for Lambda traffic shifting; the Limited policy "
                "only reads alarms and updates aliases of the deployment's function",
            )


class InferenceEndpoint(_LiveEndpoint):
    """One model's Lambda endpoint: function, `live` alias, URL, alarms, deployment group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        model: str,
        artifacts_bucket: s3.IBucket,
        settings: EndpointSettings,
        deployment_config: codedeploy.ILambdaDeploymentConfig | None,
        application: codedeploy.ILambdaApplication | None,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.model = model
        runtime = DriftlineFunction(
            self,
            "Inference",
            handler_module="inference",
            description=f"Driftline inference endpoint for model {model}",
            environment={
                **serving_environment(settings, artifacts_bucket),
                "DRIFTLINE_MODEL_NAME": model,
            },
            **settings.function_options(),
        )
        self.function: lambda_.Function = runtime.function
        artifacts_bucket.grant_read(self.function, f"{MODELS_PREFIX}{model}/*")
        artifacts_bucket.grant_put(self.function, f"{CAPTURE_PREFIX}{model}/*")

        bootstrap = lambda_.Version(
            self,
            "BootstrapVersion",
            lambda_=self.function,
            description="bootstrap: serves no model until the pipeline deploys one",
        )
        self._serve_live(
            bootstrap,
            description=f"what the {model} endpoint serves; moved only by the deploy step",
            endpoint=f"{model} endpoint",
            errors_note="",
            settings=settings,
            deployment_config=deployment_config,
            application=application,
            alarm_topic=alarm_topic,
        )


class SharedEndpoint(_LiveEndpoint):
    """The endpoint of every model without a dedicated one: routes by model name."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        artifacts_bucket: s3.IBucket,
        endpoints_table: dynamodb.ITable,
        settings: EndpointSettings,
        deployment_config: codedeploy.ILambdaDeploymentConfig | None,
        application: codedeploy.ILambdaApplication | None,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        runtime = DriftlineFunction(
            self,
            "Inference",
            handler_module="inference",
            description="Driftline shared inference endpoint: serves any deployed model by name",
            environment={
                **serving_environment(settings, artifacts_bucket),
                "DRIFTLINE_ENDPOINTS_TABLE": endpoints_table.table_name,
                "DRIFTLINE_ROUTE_TTL_SECONDS": str(SHARED_ROUTE_TTL_SECONDS),
                "DRIFTLINE_MODEL_CACHE_SIZE": str(SHARED_MODEL_CACHE_SIZE),
            },
            **settings.function_options(),
        )
        self.function: lambda_.Function = runtime.function
        artifacts_bucket.grant_read(self.function, SERVING_GLOB)
        artifacts_bucket.grant_put(self.function, f"{CAPTURE_PREFIX}*")
        endpoints_table.grant_read_data(self.function)
        self._serve_live(
            self.function.current_version,
            description="the shared endpoint's code; models are routed through the registry",
            endpoint="shared endpoint",
            errors_note="; a model that fails to score counts in ModelErrors instead",
            settings=settings,
            deployment_config=deployment_config,
            application=application,
            alarm_topic=alarm_topic,
        )
        # One alarm for every model on this endpoint, a contributor per model: a model that
        # fails to score pages on-call without counting against the shared function's code.
        # Not a CodeDeploy alarm: model versions are canaried by the deploy step instead.
        statement = f'SELECT SUM({MODEL_ERRORS}) FROM SCHEMA("{NAMESPACE}", Model, ModelVersion)'  # noqa: S608 (constants only)
        self.model_errors_alarm = cloudwatch.MathExpression(
            expression=f"{statement} GROUP BY Model",
            period=Duration.minutes(1),
            using_metrics={},
            label="model errors per model",
        ).create_alarm(
            self,
            "ModelErrorsAlarm",
            alarm_description="shared endpoint: a model failed to score requests "
            "(ModelErrors, per model, 1 minute); see the endpoint's logs for the model",
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.model_errors_alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))


class EndpointDeployer(Construct):
    """The `Deploy` step: publishes a model into an endpoint and moves its `live` alias."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoints: Sequence[InferenceEndpoint],
        shared_endpoint: SharedEndpoint | None,
        artifacts_bucket: s3.IBucket,
        models_table: dynamodb.ITable,
        endpoints_table: dynamodb.ITable,
        env_name: str,
        deployment_strategy: str,
        alias_shift: str,
        log_retention: logs.RetentionDays,
        log_key: kms.IKey,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        targets = {
            endpoint.model: {
                "function_name": endpoint.function.function_name,
                "alias": endpoint.alias.alias_name,
                **(
                    {
                        "deployment_application": (
                            endpoint.deployment_group.application.application_name
                        ),
                        "deployment_group": endpoint.deployment_group.deployment_group_name,
                    }
                    if endpoint.deployment_group is not None
                    else {}
                ),
            }
            for endpoint in endpoints
        }
        runtime = DriftlineFunction(
            self,
            "Deploy",
            handler_module="deploy",
            description="Deploy an approved model version to its endpoint's live alias",
            environment={
                "DRIFTLINE_ENV": env_name,
                "DRIFTLINE_ARTIFACTS_BUCKET": artifacts_bucket.bucket_name,
                "DRIFTLINE_MODELS_TABLE": models_table.table_name,
                "DRIFTLINE_ENDPOINTS_TABLE": endpoints_table.table_name,
                "DRIFTLINE_ENDPOINTS": Stack.of(self).to_json_string(targets),
                "DRIFTLINE_DEPLOYMENT_STRATEGY": deployment_strategy,
                "DRIFTLINE_ALIAS_SHIFT": alias_shift,
                **(
                    {"DRIFTLINE_SHARED_ENDPOINT": shared_endpoint.function.function_name}
                    if shared_endpoint is not None
                    else {}
                ),
            },
            log_retention=log_retention,
            log_key=log_key,
            removal_policy=removal_policy,
            memory_mb=1024,
            timeout_seconds=15 * 60,
        )
        self.function: lambda_.Function = runtime.function
        artifacts_bucket.grant_read(self.function, f"{MODELS_PREFIX}*")
        artifacts_bucket.grant_put(self.function, SERVING_GLOB)
        models_table.grant_read_data(self.function)
        endpoints_table.grant_read_write_data(self.function)
        if shared_endpoint is not None:
            # A shared-endpoint canary is judged on its version's ModelErrors metric.
            statement = iam.PolicyStatement(
                actions=["cloudwatch:GetMetricStatistics"], resources=["*"]
            )
            self.function.add_to_role_policy(statement)
            acknowledge(
                runtime.role,
                "AwsSolutions-IAM5[Resource::*]",
                "cloudwatch:GetMetricStatistics supports no resource-level permissions; the "
                "deploy step reads the canary version's ModelErrors metric",
            )

        function_arns = [endpoint.function.function_arn for endpoint in endpoints]
        if function_arns:
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=[
                        "lambda:GetFunction",
                        "lambda:GetFunctionConfiguration",
                        "lambda:UpdateFunctionConfiguration",
                        "lambda:PublishVersion",
                        "lambda:GetAlias",
                        "lambda:UpdateAlias",
                    ],
                    resources=[
                        *function_arns,
                        *(f"{arn}:*" for arn in function_arns),
                    ],
                )
            )
        groups = [e.deployment_group for e in endpoints if e.deployment_group is not None]
        if groups:
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["codedeploy:CreateDeployment", "codedeploy:GetDeployment"],
                    resources=[group.deployment_group_arn for group in groups],
                )
            )
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["codedeploy:GetDeploymentConfig"],
                    resources=sorted(
                        {group.deployment_config.deployment_config_arn for group in groups}
                    ),
                )
            )
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=[
                        "codedeploy:RegisterApplicationRevision",
                        "codedeploy:GetApplicationRevision",
                    ],
                    resources=sorted({group.application.application_arn for group in groups}),
                )
            )
