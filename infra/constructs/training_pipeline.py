"""The training state machine and the upload trigger that starts it.

Validate → Prepare → Train → Evaluate → Gate → Register → Deploy → Notify, with a rejection
path (quarantine + SNS + Fail `DatasetRejected`), a gate-failure path (run Rejected + SNS +
Fail `GateRejected`) and a catch-all failure path (run Failed with its cause + SNS + Fail
`PipelineFailed`). Uploads reach it through EventBridge and a small starter function that
names the execution after dataset + VersionId, so a duplicate event cannot start a second run.

Train runs in one of two backends (`EnvConfig.training_backend`): the Lambda, or a SageMaker
training job running `pipelines.sagemaker_entry` in the same image, followed by a small step
that unpacks its `model.tar.gz` into the run's `model.zip`, so Evaluate onward is the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.constructs.artifact_access import PIPELINE_ACCESS, STATE_MACHINE_ACCESS
from infra.constructs.functions import DriftlineFunction, repo_image_asset
from infra.constructs.registry_tables import RegistryTableSet
from infra.constructs.undelivered import UndeliveredEvents
from infra.nag import WILDCARD_RESOURCE, acknowledge
from pipelines.keys import (
    DATASETS_PREFIX,
    PART_RESULTS_PREFIX,
    RUN_GLOB,
    RUNS_PREFIX,
    SAGEMAKER_OUTPUT,
    run_artifact,
)

# Errors our handlers raise for conditions worth retrying (e.g. S3 eventual consistency on a
# just-written override); everything else goes straight to the failure path.
TRANSIENT_ERRORS = ["TransientError", "Lambda.TooManyRequestsException"]

# Parts of one multi-part batch validated at once: bounded so one large batch cannot take
# the account's whole Lambda concurrency (1,000 by default) from inference and other runs.
PART_CONCURRENCY = 50
# `/tmp` of the functions that validate one object: Parquet is spooled there (random access),
# so it bounds a Parquet object (`pipelines.validation.Limits.max_parquet_bytes`, a bit less).
VALIDATOR_EPHEMERAL_STORAGE_MB = 10_240

# States that take a catch-all to the failure path.
_Catching = TypeVar("_Catching", tasks.LambdaInvoke, sfn.CustomState)

TRAINING_INSTANCE_TYPE = "ml.m5.xlarge"
TRAINING_MAX_SECONDS = 3600
TRAINING_JOB_PREFIX = "driftline-"
SAGEMAKER_ENTRYPOINT = ["python", "-m", "pipelines.sagemaker_entry"]
# The managed rule Step Functions uses to learn that a .sync training job finished.
SAGEMAKER_SYNC_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"


def model_package_group_name(env_name: str, model: str) -> str:
    """SageMaker names allow letters, digits and hyphens only (≤ 63 characters)."""
    return f"driftline-{env_name}-{model}".replace("_", "-")[:63]


@dataclass(frozen=True)
class PipelineResources:
    """What the pipeline needs from the Data stack."""

    datasets_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    tables: RegistryTableSet
    alerts_topic: sns.ITopic
    key: kms.IKey


@dataclass(frozen=True)
class MultipartSteps:
    """The functions that validate a multi-part batch (list, one part each, merge)."""

    list_parts: lambda_.IFunction
    validate_part: lambda_.IFunction
    merge_parts: lambda_.IFunction
    artifacts: s3.IBucket


class TrainingPipeline(Construct):
    """Step functions for one dataset upload, from raw bytes to a registered model."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        resources: PipelineResources,
        env_name: str,
        git_sha: str,
        approval_policy: str,
        deploy_function: lambda_.IFunction,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        sagemaker_training: bool = False,
        model_package_groups: bool = False,
        model_names: Sequence[str] = (),
    ) -> None:
        """`model_names`: the shipped models (read from `models/` once, in the app builder),
        each a Model Package Group when `model_package_groups` is on."""
        super().__init__(scope, construct_id)
        # The functions' image asset again (same context, file and excludes, so the same hash
        # and repository): the SageMaker job runs it, and model packages name it.
        self.image: ecr_assets.DockerImageAsset | None = None
        if sagemaker_training or model_package_groups:
            self.image = repo_image_asset(self, "Image", "functions/Dockerfile")
        self.training_role: iam.Role | None = None
        self.model_package_groups: dict[str, sagemaker.CfnModelPackageGroup] = {}
        if model_package_groups:
            for model in model_names:
                self.model_package_groups[model] = sagemaker.CfnModelPackageGroup(
                    self,
                    f"ModelPackageGroup{''.join(p.title() for p in model.split('_'))}",
                    model_package_group_name=model_package_group_name(env_name, model),
                    model_package_group_description=f"Driftline {env_name}: {model} versions",
                )
        environment = {
            "DRIFTLINE_ENV": env_name,
            "DRIFTLINE_GIT_SHA": git_sha,
            "DRIFTLINE_APPROVAL_POLICY": approval_policy,
            "DRIFTLINE_DATASETS_BUCKET": resources.datasets_bucket.bucket_name,
            "DRIFTLINE_ARTIFACTS_BUCKET": resources.artifacts_bucket.bucket_name,
            "DRIFTLINE_DATASETS_TABLE": resources.tables.datasets.table_name,
            "DRIFTLINE_RUNS_TABLE": resources.tables.runs.table_name,
            "DRIFTLINE_MODELS_TABLE": resources.tables.models.table_name,
            "DRIFTLINE_ENDPOINTS_TABLE": resources.tables.endpoints.table_name,
            "DRIFTLINE_ALERTS_TOPIC_ARN": resources.alerts_topic.topic_arn,
        }

        functions_scope = Construct(self, "Functions")

        def step_function(
            name: str,
            description: str,
            *,
            memory_mb: int = 1024,
            minutes: int = 5,
            ephemeral_storage_mb: int | None = None,
        ) -> lambda_.IFunction:
            return DriftlineFunction(
                functions_scope,
                name,
                handler_module=_snake(name),
                description=description,
                environment=environment,
                log_retention=log_retention,
                log_key=resources.key,
                removal_policy=removal_policy,
                memory_mb=memory_mb,
                timeout_seconds=minutes * 60,
                ephemeral_storage_mb=ephemeral_storage_mb,
            ).function

        validate = step_function(
            "Validate",
            "Validate an upload against its data contract",
            memory_mb=3008,
            minutes=15,
            ephemeral_storage_mb=VALIDATOR_EPHEMERAL_STORAGE_MB,
        )
        multipart = MultipartSteps(
            list_parts=step_function("ListParts", "List a multi-part batch, pin its contract"),
            validate_part=step_function(
                "ValidatePart",
                "Validate one part of a batch",
                memory_mb=3008,
                minutes=15,
                ephemeral_storage_mb=VALIDATOR_EPHEMERAL_STORAGE_MB,
            ),
            merge_parts=step_function(
                "MergeParts", "Merge part reports: one manifest or quarantine", memory_mb=3008
            ),
            artifacts=resources.artifacts_bucket,
        )
        prepare = step_function("Prepare", "Split a validated dataset for training", memory_mb=3008)
        train = step_function("Train", "Fit the configured estimator", memory_mb=3008, minutes=15)
        evaluate = step_function("Evaluate", "Score challenger and champion on the test split")
        gate = step_function("Gate", "Decide whether the challenger may be registered")
        register_environment = dict(environment)
        if self.model_package_groups and self.image is not None:
            register_environment |= {
                "DRIFTLINE_MODEL_PACKAGE_GROUPS": json.dumps(
                    {model: group.ref for model, group in self.model_package_groups.items()}
                ),
                "DRIFTLINE_MODEL_IMAGE_URI": self.image.image_uri,
            }
        register = DriftlineFunction(
            functions_scope,
            "Register",
            handler_module="register",
            description="Register an approved model version",
            environment=register_environment,
            log_retention=log_retention,
            log_key=resources.key,
            removal_policy=removal_policy,
            timeout_seconds=5 * 60,
        ).function
        if self.model_package_groups:
            stack = Stack.of(self)
            register.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["sagemaker:CreateModelPackage"],
                    resources=[
                        arn
                        for group in self.model_package_groups.values()
                        for arn in (
                            group.attr_model_package_group_arn,
                            stack.format_arn(
                                service="sagemaker",
                                resource="model-package",
                                resource_name=f"{group.model_package_group_name}/*",
                            ),
                        )
                    ],
                )
            )
        collect: lambda_.IFunction | None = None
        if sagemaker_training:
            collect = step_function(
                "CollectTraining", "Unpack a SageMaker training job's model into the run"
            )
        record = step_function("RecordOutcome", "Record a run's final state and its cause")

        datasets, artifacts, tables = (
            resources.datasets_bucket,
            resources.artifacts_bucket,
            resources.tables,
        )
        for function in (validate, prepare, multipart.list_parts, multipart.validate_part):
            datasets.grant_read(function)
        # Quarantine tags the rejected object version; it never deletes or overwrites it.
        for function in (validate, multipart.list_parts, multipart.merge_parts):
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObjectVersionTagging", "s3:GetObjectVersionTagging"],
                    resources=[datasets.arn_for_objects(f"{DATASETS_PREFIX}*")],
                )
            )
        # Each step reads and writes only its own keys of the artifacts bucket, and none may
        # delete anything there (see infra/constructs/artifact_access.py).
        steps: dict[str, lambda_.IFunction] = {
            "validate": validate,
            "list_parts": multipart.list_parts,
            "validate_part": multipart.validate_part,
            "merge_parts": multipart.merge_parts,
            "prepare": prepare,
            "train": train,
            "evaluate": evaluate,
            "gate": gate,
            "register": register,
            "record_outcome": record,
        }
        if collect is not None:
            steps["collect_training"] = collect
            tables.runs.grant_read_write_data(collect)
        for name, function in steps.items():
            PIPELINE_ACCESS[name].grant(artifacts, function)
        tables.datasets.grant_read_write_data(validate)
        tables.datasets.grant_read_write_data(multipart.merge_parts)
        tables.datasets.grant_read_data(prepare)
        for function in (validate, prepare, train, evaluate, gate, register, record):
            tables.runs.grant_read_write_data(function)
        tables.models.grant_read_data(evaluate)
        # The champion is what the endpoint serves: its Endpoints-table `current` item.
        tables.endpoints.grant_read_data(evaluate)
        tables.models.grant_read_write_data(register)

        self.state_machine = self._state_machine(
            validate=validate,
            multipart=multipart,
            prepare=prepare,
            train=(
                self._training_job(resources, env_name, git_sha) if collect is not None else train
            ),
            collect=collect,
            evaluate=evaluate,
            gate=gate,
            register=register,
            record=record,
            deploy=deploy_function,
            topic=resources.alerts_topic,
            log_retention=log_retention,
            log_key=resources.key,
            removal_policy=removal_policy,
        )
        # The Distributed Map reads its item list from, and writes its results to, the
        # SSE-KMS artifacts bucket (CDK grants the S3 actions, not the key's).
        resources.key.grant_encrypt_decrypt(self.state_machine)
        if self.training_role is not None:
            self._grant_training_jobs(self.state_machine, self.training_role)

        start_run = DriftlineFunction(
            functions_scope,
            "StartRun",
            handler_module="start_run",
            description="Start one training run per dataset object version",
            environment={
                **environment,
                "DRIFTLINE_STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
            },
            log_retention=log_retention,
            log_key=resources.key,
            removal_policy=removal_policy,
            memory_mb=256,
            timeout_seconds=30,
        ).function
        self.state_machine.grant_start_execution(start_run)
        # Uploads that never started a run: EventBridge could not invoke StartRun, or StartRun
        # failed through its retries. Both keep the S3 event here (see `driftline runs list`).
        self.undelivered = UndeliveredEvents(
            self,
            "UploadDeadLetters",
            purpose="dataset uploads",
            key=resources.key,
            topic=resources.alerts_topic,
            rule_retry_attempts=4,
            max_event_age=Duration.hours(2),
        )
        self.undelivered.guard("start_run", start_run)
        self.upload_rule = events.Rule(
            self,
            "OnDatasetUpload",
            description="Start the training pipeline when a dataset version lands in S3",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [datasets.bucket_name]},
                    "object": {"key": [{"prefix": DATASETS_PREFIX}]},
                },
            ),
            targets=[self.undelivered.target(start_run)],
        )
        self.functions = {**steps, "start_run": start_run}

    def _training_job(
        self, resources: PipelineResources, env_name: str, git_sha: str
    ) -> sfn.CustomState:
        """Train as a SageMaker job (.sync) on the functions' image, VPC-less and KMS-encrypted.

        Written as raw ASL: CDK's SageMakerCreateTrainingJob cannot set ContainerEntrypoint,
        and the image's own entrypoint is the Lambda runtime's.
        """
        assert self.image is not None
        scope = Construct(self, "TrainingJob")
        artifacts, key = resources.artifacts_bucket, resources.key
        role = iam.Role(
            scope,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Driftline {env_name} SageMaker training jobs",
        )
        artifacts.grant_read(role, f"{RUNS_PREFIX}*")
        artifacts.grant_put(role, f"{RUN_GLOB}{SAGEMAKER_OUTPUT}*")
        key.grant_encrypt_decrypt(role)
        self.image.repository.grant_pull(role)
        stack = Stack.of(self)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/TrainingJobs:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        acknowledge(
            role,
            WILDCARD_RESOURCE,
            "ecr:GetAuthorizationToken (from the image repository's grant_pull) accepts only "
            "Resource '*'",
        )
        self.training_role = role

        def object_uri(path: str) -> str:
            return "States.Format('s3://" + artifacts.bucket_name + "/{}', " + path + ")"

        return sfn.CustomState(
            self,
            "Train",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{stack.partition}:states:::sagemaker:createTrainingJob.sync",
                "Parameters": {
                    # Execution names are unique per state machine; their hash fits SageMaker's
                    # 63-character job names and charset whatever the dataset is called.
                    "TrainingJobName.$": (
                        f"States.Format('{TRAINING_JOB_PREFIX}{{}}', "
                        "States.Hash($$.Execution.Name, 'SHA-1'))"
                    ),
                    "RoleArn": role.role_arn,
                    "AlgorithmSpecification": {
                        "TrainingImage": self.image.image_uri,
                        "TrainingInputMode": "File",
                        "ContainerEntrypoint": SAGEMAKER_ENTRYPOINT,
                    },
                    "HyperParameters": {
                        "dataset.$": "$.dataset",
                        "s3_version_id.$": "$.validation.version_id",
                        "manifest_sha256.$": "$.validation.manifest_sha256",
                        "contract_columns.$": "States.JsonToString($.validation.columns)",
                        "created_at.$": "$$.Execution.StartTime",
                        "code_version": git_sha,
                    },
                    "InputDataConfig": [
                        _s3_channel("train", object_uri("$.prepared.dataset_key")),
                        _s3_channel("config", object_uri("$.prepared.config_key")),
                    ],
                    "OutputDataConfig": {
                        "S3OutputPath.$": (
                            "States.Format('s3://"
                            + artifacts.bucket_name
                            + f"/{run_artifact('{}', SAGEMAKER_OUTPUT)}', $.run.id)"
                        ),
                        "KmsKeyId": key.key_arn,
                    },
                    "ResourceConfig": {
                        "InstanceCount": 1,
                        "InstanceType": TRAINING_INSTANCE_TYPE,
                        "VolumeSizeInGB": 30,
                        "VolumeKmsKeyId": key.key_arn,
                    },
                    "StoppingCondition": {"MaxRuntimeInSeconds": TRAINING_MAX_SECONDS},
                    # Channels arrive through SageMaker; the job itself needs no network.
                    "EnableNetworkIsolation": True,
                },
                "ResultSelector": {
                    "name.$": "$.TrainingJobName",
                    "model_artifacts.$": "$.ModelArtifacts.S3ModelArtifacts",
                    "seconds.$": "$.TrainingTimeInSeconds",
                },
                "ResultPath": "$.training_job",
            },
        )

    def _grant_training_jobs(self, state_machine: sfn.StateMachine, role: iam.IRole) -> None:
        """What a .sync createTrainingJob needs: the job API, the role and the managed rule."""
        stack = Stack.of(self)
        state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                ],
                resources=[
                    stack.format_arn(
                        service="sagemaker",
                        resource="training-job",
                        resource_name=f"{TRAINING_JOB_PREFIX}*",
                    )
                ],
            )
        )
        state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(
                        service="events", resource="rule", resource_name=SAGEMAKER_SYNC_RULE
                    )
                ],
            )
        )
        state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )

    def _state_machine(
        self,
        *,
        validate: lambda_.IFunction,
        multipart: MultipartSteps,
        prepare: lambda_.IFunction,
        train: lambda_.IFunction | sfn.CustomState,
        collect: lambda_.IFunction | None,
        evaluate: lambda_.IFunction,
        gate: lambda_.IFunction,
        register: lambda_.IFunction,
        record: lambda_.IFunction,
        deploy: lambda_.IFunction,
        topic: sns.ITopic,
        log_retention: logs.RetentionDays,
        log_key: kms.IKey,
        removal_policy: RemovalPolicy,
    ) -> sfn.StateMachine:
        def step(name: str, function: lambda_.IFunction, result_path: str) -> tasks.LambdaInvoke:
            task = tasks.LambdaInvoke(
                self,
                name,
                lambda_function=function,
                payload_response_only=True,
                result_path=result_path,
                retry_on_service_exceptions=True,
            )
            task.add_retry(
                errors=TRANSIENT_ERRORS,
                interval=Duration.seconds(1),
                backoff_rate=2,
                max_attempts=3,
            )
            return task

        def publish(name: str, *, subject: str, message_path: str) -> tasks.SnsPublish:
            return tasks.SnsPublish(
                self,
                name,
                topic=topic,
                subject=subject,
                message=sfn.TaskInput.from_json_path_at(message_path),
                result_path=sfn.JsonPath.DISCARD,
            )

        def record_and_fail(
            record_name: str, notify_name: str, subject: str, error: str
        ) -> sfn.Chain:
            """Record the run's outcome, tell the alerts topic, end the execution as `error`."""
            return (
                step(record_name, record, "$.outcome")
                .next(publish(notify_name, subject=subject, message_path="$.outcome.message"))
                .next(sfn.Fail(self, error, error=error, cause_path="$.outcome.cause"))
            )

        failed = record_and_fail(
            "RecordFailure", "NotifyFailure", "Driftline run failed", "PipelineFailed"
        )

        def guarded(task: _Catching) -> _Catching:
            task.add_catch(failed, errors=["States.ALL"], result_path="$.error")
            return task

        training_step: sfn.IChainable
        if isinstance(train, sfn.CustomState):
            assert collect is not None
            training_step = guarded(train).next(
                guarded(step("CollectTraining", collect, "$.trained"))
            )
        else:
            training_step = guarded(step("Train", train, "$.trained"))

        init = sfn.Pass(
            self,
            "StartRunRecord",
            parameters={
                "id.$": "$$.Execution.Name",
                "execution_arn.$": "$$.Execution.Id",
                "started_at.$": "$$.Execution.StartTime",
            },
            result_path="$.run",
        )
        rejected = publish(
            "NotifyRejection",
            subject="Driftline dataset rejected",
            message_path="$.validation.message",
        ).next(
            sfn.Fail(
                self, "DatasetRejected", error="DatasetRejected", cause_path="$.validation.cause"
            )
        )
        gate_rejected = record_and_fail(
            "RecordGateRejection",
            "NotifyGateRejection",
            "Driftline model rejected by the gate",
            "GateRejected",
        )
        succeeded = (
            step("RecordSuccess", record, "$.outcome")
            .next(
                publish(
                    "Notify",
                    # "registered and deployed" or "registered, NOT deployed" (record_outcome)
                    subject=sfn.JsonPath.string_at("$.outcome.subject"),
                    message_path="$.outcome.message",
                )
            )
            .next(sfn.Succeed(self, "Done"))
        )
        # The Serving stack's deploy step. A version that may not be deployed (PendingApproval
        # under a manual approval policy) ends the run as registered, not failed.
        deploy_step = step("Deploy", deploy, "$.deployment")
        deploy_step.add_catch(succeeded, errors=["DeploymentRefused"], result_path="$.deployment")
        training = (
            guarded(step("Prepare", prepare, "$.prepared"))
            .next(training_step)
            .next(guarded(step("Evaluate", evaluate, "$.evaluation")))
            .next(guarded(step("Gate", gate, "$.gate")))
            .next(
                sfn.Choice(self, "GatePassed?")
                .when(
                    sfn.Condition.boolean_equals("$.gate.passed", True),
                    guarded(step("Register", register, "$.registered"))
                    .next(guarded(deploy_step))
                    .next(succeeded),
                )
                .otherwise(gate_rejected)
            )
        )
        ignored = sfn.Succeed(self, "Ignored")
        accepted = (
            sfn.Choice(self, "DatasetAccepted?")
            .when(sfn.Condition.string_equals("$.validation.status", "ignored"), ignored)
            .when(sfn.Condition.string_equals("$.validation.status", "rejected"), rejected)
            .otherwise(training)
        )
        # A batch marker (start_run puts the batch `prefix` in the input) validates every part
        # in parallel, then merges; a single file is one Validate step. Both end in one verdict.
        validate_parts = sfn.DistributedMap(
            self,
            "ValidateParts",
            item_reader=_PartsListReader(
                bucket=multipart.artifacts,
                key=sfn.JsonPath.string_at("$.validation.parts_key"),
            ),
            item_selector={
                "dataset": sfn.JsonPath.string_at("$.dataset"),
                "bucket": sfn.JsonPath.string_at("$.bucket"),
                "version_id": sfn.JsonPath.string_at("$.version_id"),
                "contract_key": sfn.JsonPath.string_at("$.validation.contract_key"),
                "contract_source": sfn.JsonPath.string_at("$.validation.contract_source"),
                "part": sfn.JsonPath.object_at("$$.Map.Item.Value"),
            },
            max_concurrency=PART_CONCURRENCY,
            label="ValidateParts",
            # Results of the map run, for inspecting it: the merge step reads the part
            # reports by key instead.
            result_writer_v2=_PartResultsWriter(
                bucket=multipart.artifacts, prefix=PART_RESULTS_PREFIX
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        validate_parts.item_processor(
            step("ValidatePart", multipart.validate_part, "$"),
            mode=sfn.ProcessorMode.DISTRIBUTED,
            execution_type=sfn.ProcessorType.STANDARD,
        )
        validate_parts.add_catch(failed, errors=["States.ALL"], result_path="$.error")
        batch = guarded(step("ListParts", multipart.list_parts, "$.validation")).next(
            sfn.Choice(self, "PartsListed?")
            .when(sfn.Condition.string_equals("$.validation.status", "ignored"), ignored)
            .when(sfn.Condition.string_equals("$.validation.status", "rejected"), rejected)
            .otherwise(
                validate_parts.next(
                    guarded(step("MergeParts", multipart.merge_parts, "$.validation"))
                ).next(accepted)
            )
        )
        # Every start input has `key` (StartRun, retrain, `driftline runs rerun`). A single file
        # is `datasets/<D>/<file>`; a batch's key is one level deeper: its marker
        # (`datasets/<D>/<batch>/_COMPLETE`, StartRun ignores other deeper keys) or, for a
        # retrain or rerun of an accepted batch, its prefix (`datasets/<D>/<batch>/`). Testing
        # `key` alone never reads a field an input lacks (moto's interpreter logs an error for
        # every IsPresent on a missing field, though the rule itself is right).
        is_batch = sfn.Condition.string_matches("$.key", f"{DATASETS_PREFIX}*/*/*")
        definition = init.next(
            sfn.Choice(self, "MultiPart?")
            .when(is_batch, batch)
            .otherwise(guarded(step("Validate", validate, "$.validation")).next(accepted))
        )
        # Every state's input and output, the dashboard's run-outcome counts read it.
        self.execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            retention=log_retention,
            encryption_key=log_key,
            removal_policy=removal_policy,
        )
        state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            tracing_enabled=True,
            timeout=Duration.hours(2),
            logs=sfn.LogOptions(
                destination=self.execution_logs,
                level=sfn.LogLevel.ALL,
                include_execution_data=True,
            ),
        )
        acknowledge(
            state_machine.role,
            WILDCARD_RESOURCE,
            "X-Ray tracing and CloudWatch Logs delivery (logs:*LogDelivery*) accept only "
            "Resource '*' for a state machine",
        )
        return state_machine


class _PartsListReader(sfn.S3JsonItemReader):
    """The Distributed Map's item list, readable only where ListParts writes part lists.

    CDK's reader grants GetObject on the whole bucket, because the key is a JSONPath."""

    def provide_policy_statements(self) -> list[iam.PolicyStatement]:
        return [
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects(key) for key in STATE_MACHINE_ACCESS.reads],
            )
        ]


class _PartResultsWriter(sfn.ResultWriterV2):
    """The Distributed Map's result files, written only under their own prefix."""

    def provide_policy_statements(self) -> list[iam.PolicyStatement]:
        assert self.bucket is not None
        return [
            iam.PolicyStatement(
                actions=[
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:ListMultipartUploadParts",
                    "s3:AbortMultipartUpload",
                ],
                resources=[self.bucket.arn_for_objects(key) for key in STATE_MACHINE_ACCESS.writes],
            )
        ]


def _s3_channel(name: str, uri_expression: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri.$": uri_expression,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }


def _snake(name: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name).lstrip("_")
