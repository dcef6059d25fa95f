"""The training state machine and the upload trigger that starts it.

Validate → Prepare → Train → Evaluate → Gate → Register → Deploy → Notify, with a rejection
path (quarantine + SNS + Fail `DatasetRejected`), a gate-failure path (run Rejected + SNS +
Fail `GateRejected`) and a catch-all failure path (run Failed with its cause + SNS + Fail
`PipelineFailed`). Uploads reach it through EventBridge and a small starter function that
names the execution after dataset + VersionId, so a duplicate event cannot start a second run.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.constructs.functions import DriftlineFunction
from infra.constructs.registry_tables import RegistryTableSet
from infra.nag import WILDCARD_RESOURCE, acknowledge

DATASETS_PREFIX = "datasets/"

# Errors our handlers raise for conditions worth retrying (e.g. S3 eventual consistency on a
# just-written override); everything else goes straight to the failure path.
TRANSIENT_ERRORS = ["TransientError", "Lambda.TooManyRequestsException"]

# Parts of one multi-part batch validated at once: bounded so one large batch cannot take
# the account's whole Lambda concurrency (1,000 by default) from inference and other runs.
PART_CONCURRENCY = 50
# Where the Distributed Map writes its run results (artifacts bucket); the merge step reads
# the part reports by key instead, so these are for inspecting a map run.
PART_RESULTS_PREFIX = "part-results/"


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
    ) -> None:
        super().__init__(scope, construct_id)
        environment = {
            "DRIFTLINE_ENV": env_name,
            "DRIFTLINE_GIT_SHA": git_sha,
            "DRIFTLINE_APPROVAL_POLICY": approval_policy,
            "DRIFTLINE_DATASETS_BUCKET": resources.datasets_bucket.bucket_name,
            "DRIFTLINE_ARTIFACTS_BUCKET": resources.artifacts_bucket.bucket_name,
            "DRIFTLINE_DATASETS_TABLE": resources.tables.datasets.table_name,
            "DRIFTLINE_RUNS_TABLE": resources.tables.runs.table_name,
            "DRIFTLINE_MODELS_TABLE": resources.tables.models.table_name,
            "DRIFTLINE_ALERTS_TOPIC_ARN": resources.alerts_topic.topic_arn,
        }

        functions_scope = Construct(self, "Functions")

        def step_function(
            name: str, description: str, *, memory_mb: int = 1024, minutes: int = 5
        ) -> lambda_.IFunction:
            return DriftlineFunction(
                functions_scope,
                name,
                handler_module=_snake(name),
                description=description,
                environment=environment,
                log_retention=log_retention,
                removal_policy=removal_policy,
                memory_mb=memory_mb,
                timeout_seconds=minutes * 60,
            ).function

        validate = step_function(
            "Validate", "Validate an upload against its data contract", memory_mb=3008, minutes=15
        )
        multipart = MultipartSteps(
            list_parts=step_function("ListParts", "List a multi-part batch, pin its contract"),
            validate_part=step_function(
                "ValidatePart", "Validate one part of a batch", memory_mb=3008, minutes=15
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
        register = step_function("Register", "Register an approved model version")
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
        for function in (validate, prepare, train, evaluate, gate, register, record):
            artifacts.grant_read_write(function)
        for function in (multipart.list_parts, multipart.validate_part, multipart.merge_parts):
            artifacts.grant_read_write(function)
        tables.datasets.grant_read_write_data(validate)
        tables.datasets.grant_read_write_data(multipart.merge_parts)
        tables.datasets.grant_read_data(prepare)
        for function in (validate, prepare, train, evaluate, gate, register, record):
            tables.runs.grant_read_write_data(function)
        tables.models.grant_read_data(evaluate)
        tables.models.grant_read_write_data(register)

        self.state_machine = self._state_machine(
            validate=validate,
            multipart=multipart,
            prepare=prepare,
            train=train,
            evaluate=evaluate,
            gate=gate,
            register=register,
            record=record,
            deploy=deploy_function,
            topic=resources.alerts_topic,
            log_retention=log_retention,
            removal_policy=removal_policy,
        )
        # The Distributed Map reads its item list from, and writes its results to, the
        # SSE-KMS artifacts bucket (CDK grants the S3 actions, not the key's).
        resources.key.grant_encrypt_decrypt(self.state_machine)

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
            removal_policy=removal_policy,
            memory_mb=256,
            timeout_seconds=30,
        ).function
        self.state_machine.grant_start_execution(start_run)
        self.dead_letters = sqs.Queue(
            self,
            "UploadDeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=resources.key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This queue is the dead-letter queue of the upload rule's Lambda target",
        )
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
            targets=[
                targets.LambdaFunction(
                    start_run,
                    dead_letter_queue=self.dead_letters,
                    retry_attempts=4,
                    max_event_age=Duration.hours(2),
                )
            ],
        )
        self.functions = {
            "validate": validate,
            "prepare": prepare,
            "train": train,
            "evaluate": evaluate,
            "gate": gate,
            "register": register,
            "record_outcome": record,
            "start_run": start_run,
            "list_parts": multipart.list_parts,
            "validate_part": multipart.validate_part,
            "merge_parts": multipart.merge_parts,
        }

    def _state_machine(
        self,
        *,
        validate: lambda_.IFunction,
        multipart: MultipartSteps,
        prepare: lambda_.IFunction,
        train: lambda_.IFunction,
        evaluate: lambda_.IFunction,
        gate: lambda_.IFunction,
        register: lambda_.IFunction,
        record: lambda_.IFunction,
        deploy: lambda_.IFunction,
        topic: sns.ITopic,
        log_retention: logs.RetentionDays,
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

        failed = (
            step("RecordFailure", record, "$.outcome")
            .next(
                tasks.SnsPublish(
                    self,
                    "NotifyFailure",
                    topic=topic,
                    subject="Driftline run failed",
                    message=sfn.TaskInput.from_json_path_at("$.outcome.message"),
                    result_path=sfn.JsonPath.DISCARD,
                )
            )
            .next(
                sfn.Fail(
                    self, "PipelineFailed", error="PipelineFailed", cause_path="$.outcome.cause"
                )
            )
        )

        def guarded(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
            task.add_catch(failed, errors=["States.ALL"], result_path="$.error")
            return task

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
        rejected = tasks.SnsPublish(
            self,
            "NotifyRejection",
            topic=topic,
            subject="Driftline dataset rejected",
            message=sfn.TaskInput.from_json_path_at("$.validation.message"),
            result_path=sfn.JsonPath.DISCARD,
        ).next(
            sfn.Fail(
                self, "DatasetRejected", error="DatasetRejected", cause_path="$.validation.cause"
            )
        )
        gate_rejected = (
            step("RecordGateRejection", record, "$.outcome")
            .next(
                tasks.SnsPublish(
                    self,
                    "NotifyGateRejection",
                    topic=topic,
                    subject="Driftline model rejected by the gate",
                    message=sfn.TaskInput.from_json_path_at("$.outcome.message"),
                    result_path=sfn.JsonPath.DISCARD,
                )
            )
            .next(
                sfn.Fail(self, "GateRejected", error="GateRejected", cause_path="$.outcome.cause")
            )
        )
        succeeded = (
            step("RecordSuccess", record, "$.outcome")
            .next(
                tasks.SnsPublish(
                    self,
                    "Notify",
                    topic=topic,
                    subject="Driftline model registered",
                    message=sfn.TaskInput.from_json_path_at("$.outcome.message"),
                    result_path=sfn.JsonPath.DISCARD,
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
            .next(guarded(step("Train", train, "$.trained")))
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
            item_reader=sfn.S3JsonItemReader(
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
            result_writer_v2=sfn.ResultWriterV2(
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
        # A marker run carries `prefix`; a retrain of an accepted batch carries its key, which
        # is the prefix itself (a key ending in "/" is never a single file).
        is_batch = sfn.Condition.or_(
            sfn.Condition.is_present("$.prefix"),
            sfn.Condition.and_(
                sfn.Condition.is_present("$.key"), sfn.Condition.string_matches("$.key", "*/")
            ),
        )
        definition = init.next(
            sfn.Choice(self, "MultiPart?")
            .when(is_batch, batch)
            .otherwise(guarded(step("Validate", validate, "$.validation")).next(accepted))
        )
        state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            tracing_enabled=True,
            timeout=Duration.hours(2),
            logs=sfn.LogOptions(
                destination=logs.LogGroup(
                    self, "ExecutionLogs", retention=log_retention, removal_policy=removal_policy
                ),
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


def _snake(name: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name).lstrip("_")
