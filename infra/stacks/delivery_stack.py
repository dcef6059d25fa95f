"""`Driftline-Delivery`: CD of the stack itself with CDK Pipelines, deployed once per organisation.

Source (a CodeConnections connection) → Synth (`make setup`, `make test-fast`, every env's synth
with cdk-nag, checkov, then this app's own synth) → self-mutation → asset publishing → one stage
per env in config order (dev → staging → prod), each deploying the env's four stacks to its own
account and region plus a small `Driftline-<env>-Access` stack, then a smoke test (`make smoke`
under a role of that account); a manual approval gates prod.

Cross-account: each target account is bootstrapped with `cdk bootstrap --trust <delivery
account>`, and the artifacts are encrypted with a customer key the target accounts' deploy roles
may use (`cross_account_keys=True`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aws_cdk import App, Duration, Environment, RemovalPolicy, Stack, Stage, Tags, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as codepipeline_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.app_builder import DriftlineStacks, build_environment
from infra.checkov import skip_check
from infra.constructs.endpoint import (
    SERVING_ACKNOWLEDGEMENTS,
    InferenceEndpoint,
    SharedEndpoint,
)
from infra.delivery_config import DELIVERY_STACK, DeliveryConfig, DeliveryStage, ModelPromotion
from infra.nag import PATTERN_ACKNOWLEDGEMENTS, PatternAcknowledgement, acknowledge, enable_nag

PYTHON_VERSION = "3.11"
NODE_VERSION = "20"
SMOKE_PROFILE = "driftline-smoke"

BUILD_ENVIRONMENT = codebuild.BuildEnvironment(
    build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.MEDIUM
)
RUNTIME_PHASE = {
    "install": {"runtime-versions": {"python": PYTHON_VERSION, "nodejs": NODE_VERSION}}
}
SOURCE_PROFILE = "driftline-promotion-source"
TARGET_PROFILE = "driftline-promotion-target"

# What the synth step runs, in order; each command fails the build on any finding.
SYNTH_INSTALL_COMMANDS: tuple[str, ...] = ("make setup",)


def synth_commands(git_sha_variable: str = "$CODEBUILD_RESOLVED_SOURCE_VERSION") -> list[str]:
    return [
        "make test-fast",  # unit + infra tests (synth of every env, cdk-nag, cfn-lint)
        "make synth",  # every env into cdk.out/<env>; cdk-nag fails the synth on any finding
        f"npx cdk synth -c env=delivery -c git_sha={git_sha_variable} -q -o cdk.out/delivery",
        "make checkov",  # every template under cdk.out, the pipeline's own included
    ]


def smoke_commands(stage: DeliveryStage) -> list[str]:
    """Assume the stage account's smoke-test role through a profile, then `make smoke`."""
    profile = f"profile.{SMOKE_PROFILE}"
    return [
        f'aws configure set {profile}.role_arn "$SMOKE_ROLE_ARN"',
        f"aws configure set {profile}.credential_source EcsContainer",
        f"aws configure set {profile}.region {stage.region}",
        f"AWS_PROFILE={SMOKE_PROFILE} AWS_DEFAULT_REGION={stage.region} "
        f"make smoke ENV={stage.name}",
    ]


class AccessStack(Stack):
    """`Driftline-<env>-Access`: the role the pipeline's smoke test assumes in the env's account.

    It may read the env's stacks, describe its state machine and invoke its drift monitor and
    endpoints' `live` aliases, nothing else; only roles of the delivery stack may assume it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: DeliveryStage,
        delivery_account: str,
        stacks: DriftlineStacks,
        promotes_models: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Driftline {stage.name}: roles the delivery account's pipelines assume",
            **kwargs,
        )
        trust = iam.AccountPrincipal(delivery_account).with_conditions(
            {
                "ArnLike": {
                    "aws:PrincipalArn": f"arn:{self.partition}:iam::{delivery_account}:"
                    f"role/{DELIVERY_STACK}-*"
                }
            }
        )
        stack_arns = self.format_arn(
            service="cloudformation",
            resource="stack",
            resource_name=f"{stage.env.stack_prefix}-*/*",
        )
        self.promotion_role: iam.Role | None = None
        if promotes_models:
            self.promotion_role = self._promotion_role(stage, stacks, trust, stack_arns)
        self.smoke_role = iam.Role(
            self,
            "SmokeTestRole",
            role_name=stage.smoke_role_name,
            description="Assumed by the Driftline-Delivery pipeline's post-deploy smoke test",
            max_session_duration=Duration.hours(1),
            assumed_by=trust,
        )
        role = self.smoke_role
        role.add_to_policy(
            iam.PolicyStatement(actions=["cloudformation:DescribeStacks"], resources=[stack_arns])
        )
        stacks.pipeline.training.state_machine.grant(role, "states:DescribeStateMachine")
        stacks.monitoring.drift.functions["drift_monitor"].grant_invoke(role)
        served: list[InferenceEndpoint | SharedEndpoint] = [*stacks.serving.endpoints.values()]
        if stacks.serving.shared_endpoint is not None:
            served.append(stacks.serving.shared_endpoint)
        for endpoint in served:
            endpoint.alias.grant_invoke(role)
        if served:
            # The probe resolves the live alias' ARN first (the twin ignores a Qualifier).
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["lambda:GetAlias"],
                    resources=[endpoint.function.function_arn for endpoint in served],
                )
            )

    def _promotion_role(
        self,
        stage: DeliveryStage,
        stacks: DriftlineStacks,
        trust: iam.IPrincipal,
        stack_arns: str,
    ) -> iam.Role:
        """Read this env's registry, model artifacts and alarms; write promoted versions."""
        role = iam.Role(
            self,
            "ModelPromotionRole",
            role_name=stage.promotion_role_name,
            description="Assumed by the Driftline-Delivery model promotion "
            "(driftline models promote --auto)",
            max_session_duration=Duration.hours(1),
            assumed_by=trust,
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["cloudformation:DescribeStacks"], resources=[stack_arns])
        )
        stacks.data.tables.models.grant_read_write_data(role)
        stacks.data.artifacts_bucket.grant_read_write(role, "models/*")
        # Resource "*" (acknowledged in DELIVERY_ACKNOWLEDGEMENTS): DescribeAlarms returns
        # composite alarms only when scoped to "*", and the soak check reads the history of the
        # whole account's alarms over the window in one call (no alarm name to scope it by).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"],
                resources=["*"],
            )
        )
        return role


class DriftlineStage(Stage):
    """One env as the pipeline deploys it: its four stacks and its Access stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: DeliveryStage,
        delivery_account: str,
        promotes_models: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env={"account": stage.account, "region": stage.region},
            **kwargs,
        )
        self.env_name = stage.name
        self.stacks = build_environment(self, stage.env)
        access_id = f"{stage.env.stack_prefix}-Access"
        self.access = AccessStack(
            self,
            access_id,
            stack_name=access_id,
            stage=stage,
            delivery_account=delivery_account,
            stacks=self.stacks,
            promotes_models=promotes_models,
            env={"account": stage.account, "region": stage.region},
        )
        Tags.of(self.access).add("driftline:env", stage.name)


class DeliveryStack(Stack):
    """The pipeline. Its artifacts bucket is KMS-encrypted (rotating key), TLS-only, versioned
    and access-logged; its roles are CDK Pipelines' own (see DELIVERY_ACKNOWLEDGEMENTS)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeliveryConfig, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Driftline delivery: CDK Pipelines from source to dev, staging and prod",
            **kwargs,
        )
        self.config = config
        self.source = pipelines.CodePipelineSource.connection(
            config.repository,
            config.branch,
            connection_arn=config.connection_arn,
            # A full clone, so `git rev-parse HEAD` gives the models their code version.
            code_build_clone_output=True,
        )
        self.synth = pipelines.ShellStep(
            "Synth",
            input=self.source,
            install_commands=list(SYNTH_INSTALL_COMMANDS),
            commands=synth_commands(),
            primary_output_directory="cdk.out/delivery",
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            synth=self.synth,
            self_mutation=True,
            pipeline_type=codepipeline.PipelineType.V2,
            cross_account_keys=True,
            enable_key_rotation=True,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=BUILD_ENVIRONMENT,
                partial_build_spec=codebuild.BuildSpec.from_object({"phases": RUNTIME_PHASE}),
                timeout=Duration.minutes(60),
            ),
        )
        self.stages: list[DriftlineStage] = []
        for stage in config.stages:
            promotion = config.model_promotion
            deployed = DriftlineStage(
                self,
                stage.name,
                stage=stage,
                delivery_account=config.account,
                promotes_models=promotion is not None
                and stage.name in (promotion.source, promotion.target),
            )
            self.stages.append(deployed)
            pre: Sequence[pipelines.Step] = (
                [
                    pipelines.ManualApprovalStep(
                        f"Approve{stage.name.capitalize()}",
                        comment=f"Deploy to {stage.name} ({stage.account}, {stage.region})? "
                        "The earlier stages deployed and passed their smoke tests.",
                    )
                ]
                if stage.manual_approval
                else []
            )
            self.pipeline.add_stage(deployed, pre=pre, post=[self._smoke_step(stage)])
        self.pipeline.build_pipeline()
        self._harden_artifacts_bucket()
        self._explain_asset_roles_to_checkov()
        self.model_promotion: ModelPromotionSchedule | None = None
        if config.model_promotion is not None:
            self.model_promotion = ModelPromotionSchedule(
                self,
                "ModelPromotion",
                config=config,
                promotion=config.model_promotion,
                artifact_bucket=self.pipeline.pipeline.artifact_bucket,
                build_environment=BUILD_ENVIRONMENT,
            )

    def _smoke_step(self, stage: DeliveryStage) -> pipelines.CodeBuildStep:
        return pipelines.CodeBuildStep(
            "SmokeTest",
            input=self.source,
            commands=smoke_commands(stage),
            env={"SMOKE_ROLE_ARN": stage.smoke_role_arn, "DRIFTLINE_ENV": stage.name},
            role_policy_statements=[
                iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[stage.smoke_role_arn])
            ],
        )

    def _explain_asset_roles_to_checkov(self) -> None:
        """CKV_AWS_111 on the asset-publishing roles, skipped on those two policies only."""
        for child in self.node.find_all():
            path = child.node.path
            if isinstance(child, iam.CfnPolicy) and re.search(
                r"/Assets/(File|Docker)Role/DefaultPolicy/Resource$", path
            ):
                child.add_metadata(
                    "checkov",
                    {
                        "skip": [
                            {
                                "id": "CKV_AWS_111",
                                "comment": "CDK Pipelines' asset-publishing role starts the "
                                "CodeBuild projects it generates, one per asset, whose names "
                                "CloudFormation assigns",
                            }
                        ]
                    },
                )

    def _harden_artifacts_bucket(self) -> None:
        """Versioning and server access logs on the bucket CDK Pipelines creates."""
        bucket = self.pipeline.pipeline.artifact_bucket
        logs = s3.Bucket(
            self,
            "ArtifactsAccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
        )
        acknowledge(
            logs,
            "AwsSolutions-S1",
            "This bucket receives the artifacts bucket's server access logs; logging it "
            "in turn would recurse",
        )
        skip_check(
            logs,
            "CKV_AWS_18",
            "This bucket receives the artifacts bucket's server access logs; logging it "
            "in turn would recurse",
        )
        cfn_bucket = bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        cfn_bucket.versioning_configuration = s3.CfnBucket.VersioningConfigurationProperty(
            status="Enabled"
        )
        cfn_bucket.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
            destination_bucket_name=logs.bucket_name, log_file_prefix="artifacts/"
        )
        logs.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[logs.arn_for_objects("artifacts/*")],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        key = bucket.encryption_key
        if isinstance(key, kms.Key):
            key.apply_removal_policy(RemovalPolicy.RETAIN)


def promotion_commands(config: DeliveryConfig, promotion: ModelPromotion) -> list[str]:
    """Two profiles (source and target env roles), then the promotion with the env region
    variables unset so each profile's own region applies."""
    source, target = config.stage(promotion.source), config.stage(promotion.target)
    commands = []
    for profile, stage in ((SOURCE_PROFILE, source), (TARGET_PROFILE, target)):
        commands += [
            f"aws configure set profile.{profile}.role_arn {stage.promotion_role_arn}",
            f"aws configure set profile.{profile}.credential_source EcsContainer",
            f"aws configure set profile.{profile}.region {stage.region}",
        ]
    commands.append(
        "env -u AWS_DEFAULT_REGION -u AWS_REGION .venv/bin/driftline models promote --auto "
        f"--from {source.name} --to {target.name} --soak-hours {promotion.soak_hours:g} "
        f"--from-profile {SOURCE_PROFILE} --to-profile {TARGET_PROFILE} --json"
    )
    return commands


class ModelPromotionSchedule(Construct):
    """A small pipeline, started on a schedule (never by a push): check out the branch, then
    `driftline models promote --auto` under the source and target envs' promotion roles.

    Model promotion is decoupled from code delivery: a model approved in staging must not wait
    for the next commit, and a scheduled run of the main pipeline would re-run every test and
    stall at the prod approval each time.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeliveryConfig,
        promotion: ModelPromotion,
        artifact_bucket: s3.IBucket,
        build_environment: codebuild.BuildEnvironment,
    ) -> None:
        super().__init__(scope, construct_id)
        roles = [
            config.stage(env).promotion_role_arn for env in (promotion.source, promotion.target)
        ]
        self.project = codebuild.PipelineProject(
            self,
            "Project",
            description="driftline models promote --auto "
            f"--from {promotion.source} --to {promotion.target}",
            environment=build_environment,
            encryption_key=artifact_bucket.encryption_key,
            timeout=Duration.minutes(30),
            build_spec=codebuild.BuildSpec.from_object(
                {
                    "version": "0.2",
                    "phases": {
                        "install": {
                            **RUNTIME_PHASE["install"],
                            "commands": ["make .venv/.installed"],
                        },
                        "build": {"commands": promotion_commands(config, promotion)},
                    },
                }
            ),
        )
        self.project.add_to_role_policy(
            iam.PolicyStatement(actions=["sts:AssumeRole"], resources=roles)
        )
        source_output = codepipeline.Artifact("Source")
        owner, repository = config.repository.split("/", 1)
        self.pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_type=codepipeline.PipelineType.V2,
            artifact_bucket=artifact_bucket,
            stages=[
                codepipeline.StageProps(
                    stage_name="Source",
                    actions=[
                        codepipeline_actions.CodeStarConnectionsSourceAction(
                            action_name="Checkout",
                            connection_arn=config.connection_arn,
                            owner=owner,
                            repo=repository,
                            branch=config.branch,
                            output=source_output,
                            trigger_on_push=False,
                        )
                    ],
                ),
                codepipeline.StageProps(
                    stage_name="Promote",
                    actions=[
                        codepipeline_actions.CodeBuildAction(
                            action_name="PromoteModels", project=self.project, input=source_output
                        )
                    ],
                ),
            ],
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description=f"driftline models promote --auto every {promotion.every_hours}h",
            schedule=events.Schedule.rate(Duration.hours(promotion.every_hours)),
            targets=[events_targets.CodePipeline(self.pipeline)],
        )


_PIPELINE_POLICY = rf"{DELIVERY_STACK}/(Pipeline|ModelPromotion)/.+/DefaultPolicy/Resource"
_ACCESS_POLICY = r"Driftline-\w+-Access/(SmokeTestRole|ModelPromotionRole)/DefaultPolicy/Resource"
_ACCOUNT_ARN = r"arn:[\w-]+:{service}:[\w-]+:(\d{{12}}|<AWS::AccountId>)"

DELIVERY_ACKNOWLEDGEMENTS: tuple[PatternAcknowledgement, ...] = (
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Action::(s3:(GetBucket|GetObject|List|Abort|DeleteObject)"
        r"|kms:(GenerateDataKey|ReEncrypt))\*\]",
        construct_path=_PIPELINE_POLICY,
        reason="Action groups of CDK's grant_read/grant_read_write on the pipeline's own "
        "artifacts bucket and its customer key, which every pipeline action reads and writes",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::<PipelineArtifactsBucket\w+\.Arn>/\*\]",
        construct_path=_PIPELINE_POLICY,
        reason="Objects of the pipeline's own artifacts bucket; CodePipeline names each "
        "artifact object per execution",
    ),
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::{_ACCOUNT_ARN.format(service='codebuild')}:"
        r"report-group/<(Pipeline|ModelPromotion)\w+>-\*\]",
        construct_path=_PIPELINE_POLICY,
        reason="A CodeBuild project's own test report groups, named after the project",
    ),
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::{_ACCOUNT_ARN.format(service='logs')}:"
        r"log-group:/aws/codebuild/<(Pipeline|ModelPromotion)\w+>:\*\]",
        construct_path=_PIPELINE_POLICY,
        reason="A CodeBuild project's own log group; streams are named per build",
    ),
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::({_ACCOUNT_ARN.format(service='codebuild')}:"
        rf"report-group/|{_ACCOUNT_ARN.format(service='logs')}:log-group:/aws/codebuild/)?\*\]",
        construct_path=rf"{DELIVERY_STACK}/Pipeline/Assets/(File|Docker)Role/DefaultPolicy/"
        r"Resource",
        reason="One role serves every asset-publishing CodeBuild project CDK Pipelines creates "
        "(one per asset, named by CloudFormation), so it is scoped to CodeBuild in this "
        "account rather than to project names unknown when the role is made",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::arn:\*:iam::\d{12}:role/\*\]",
        construct_path=rf"{DELIVERY_STACK}/Pipeline/UpdatePipeline/SelfMutation/Role/"
        r"DefaultPolicy/Resource",
        reason="Self-mutation assumes only the CDK bootstrap roles of the delivery account: "
        "the statement is conditioned on the aws-cdk:bootstrap-role tag (deploy, "
        "file-publishing, image-publishing)",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::\*\]",
        construct_path=rf"{DELIVERY_STACK}/Pipeline/UpdatePipeline/SelfMutation/Role/"
        r"DefaultPolicy/Resource",
        reason="`cdk deploy` in the self-mutation step lists the bootstrap bucket and reads "
        "stack status (cloudformation:DescribeStacks, s3:ListBucket), neither of which "
        "grants access to data",
    ),
    PatternAcknowledgement(
        rule=rf"AwsSolutions-IAM5\[Resource::{_ACCOUNT_ARN.format(service='cloudformation')}:"
        r"stack/Driftline-\w+-\*/\*\]",
        construct_path=_ACCESS_POLICY,
        reason="Stack ARNs end in an id CloudFormation generates; the smoke test and the model "
        "promotion read only the outputs of this env's Driftline stacks (the env's prefix)",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Action::(s3:(GetBucket|GetObject|List|Abort|DeleteObject)"
        r"|kms:(GenerateDataKey|ReEncrypt))\*\]",
        construct_path=r"Driftline-\w+-Access/ModelPromotionRole/DefaultPolicy/Resource",
        reason="Action groups of CDK's grant_read_write on the env's artifacts bucket (models/ "
        "prefix only) and its data key: promotion copies model artifacts in or out",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::Driftline-\w+-Data:ExportsOutputFnGetAtt"
        r"ArtifactsBucket\w+/models/\*\]",
        construct_path=r"Driftline-\w+-Access/ModelPromotionRole/DefaultPolicy/Resource",
        reason="Promotion reads and writes model artifacts only (models/<model>/v<version>/...), "
        "whose version the target registry assigns at promotion time",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::\*\]",
        construct_path=r"Driftline-\w+-Access/ModelPromotionRole/DefaultPolicy/Resource",
        reason="cloudwatch:DescribeAlarms returns composite alarms only when scoped to '*', "
        "and the soak check reads DescribeAlarmHistory for the window without an alarm name; "
        "read-only, alarm states and history, nothing else",
    ),
    PatternAcknowledgement(
        rule=r"AwsSolutions-IAM5\[Resource::Driftline-\w+-Monitoring:ExportsOutputFnGetAtt"
        r"DriftFunctionsDriftMonitorFunction\w+:\*\]",
        construct_path=r"Driftline-\w+-Access/SmokeTestRole/DefaultPolicy/Resource",
        reason="CDK grant_invoke adds ARN:* (versions and aliases) of the drift monitor, the "
        "only function the smoke test invokes besides the endpoints' live aliases",
    ),
)


def build_delivery(app: App, config: DeliveryConfig) -> DeliveryStack:
    """`Driftline-Delivery` in the delivery account; cdk-nag on it and on every stage."""
    stack = DeliveryStack(
        app,
        DELIVERY_STACK,
        config=config,
        env=Environment(account=config.account, region=config.region),
        termination_protection=True,
    )
    Tags.of(stack).add("driftline:env", "delivery")
    Tags.of(stack).add("driftline:git-sha", config.git_sha)
    # The app-level plugin sees the stages' stacks too: it needs their acknowledgements.
    enable_nag(
        app, (*PATTERN_ACKNOWLEDGEMENTS, *SERVING_ACKNOWLEDGEMENTS, *DELIVERY_ACKNOWLEDGEMENTS)
    )
    return stack
