"""Register the challenger as the model's next version, Approved or PendingApproval.

Versions come from an atomic counter and are written with a condition that the version item
does not exist yet, so concurrent registrations of one model get distinct, increasing numbers
and never overwrite each other. Artifacts are copied under `models/<name>/v<version>/` before
the version item is written, so a registered version never points at a missing file.

On AWS the version is also a SageMaker Model Package in the model's Model Package Group
(`DRIFTLINE_MODEL_PACKAGE_GROUPS`), so SageMaker's registry and lineage tools see it; the twin
sets no groups (moto cannot create them) and skips that call.

Three steps, each idempotent, so a retried Register (the state machine retries
`TransientError`, e.g. SageMaker throttling) finishes what an earlier attempt started instead
of stopping at the first thing already done:
1. the version: a retry finds the version this run registered and adds none;
2. the model package: skipped when the version records one; otherwise created with a client
   token derived from group, run and version, so SageMaker answers a call repeated after a
   lost response (or a failure to record the ARN) with the package it already created;
3. the run record's `model_version`/`model_status` (a plain SET).
"""

from __future__ import annotations

import json
import time
import uuid
from itertools import islice
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared import storage
from functions.shared.clients import client
from functions.shared.errors import PipelineInputError, transient_aws_errors
from functions.shared.registry import ModelRegistry, RunRegistry
from functions.shared.settings import Settings, get_settings
from functions.shared.state import GatedState, Registered, parse_state, utc_now
from pipelines.keys import MODEL, REGISTERED, model_artifact, run_artifact

logger = Logger()

MAX_ALLOCATIONS = 5
# A retry follows its first attempt within minutes: its version is among the newest few.
RETRY_LOOKBACK = 20


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(GatedState, event)
    logger.append_keys(run_id=state.run.id, dataset=state.dataset)
    return run(state).model_dump()


def approval_status(config_approval: str, settings: Settings) -> str:
    """`automatic` approves at once; `env-default` defers to the environment's policy."""
    automatic = config_approval == "automatic" or (
        config_approval == "env-default" and settings.approval_policy == "automatic"
    )
    return "Approved" if automatic else "PendingApproval"


def _already_registered(models: ModelRegistry, state: GatedState) -> dict[str, Any] | None:
    """The version this run registered before a retry, looked up among the newest versions."""
    for record in islice(models.versions(state.dataset), RETRY_LOOKBACK):
        if record.get("run_id") == state.run.id:
            return record
    return None


def model_package_group(settings: Settings, model: str) -> str | None:
    """The Model Package Group configured for `model`, or None (the twin, unshipped models)."""
    if not settings.model_package_groups:
        return None
    try:
        groups = json.loads(settings.model_package_groups)
    except json.JSONDecodeError as exc:
        raise PipelineInputError(
            f"environment variable DRIFTLINE_MODEL_PACKAGE_GROUPS is not JSON: {exc.msg}"
        ) from None
    if not isinstance(groups, dict):
        raise PipelineInputError(
            "environment variable DRIFTLINE_MODEL_PACKAGE_GROUPS must map model names to groups"
        )
    group = groups.get(model)
    return str(group) if group else None


def package_description(record: dict[str, Any]) -> str:
    return f"{record['model']} v{record['version']} (run {record['run_id']})"


def create_model_package(
    sagemaker: Any, *, group: str, record: dict[str, Any], bucket: str, settings: Settings
) -> str:
    """Register the version in SageMaker; its status mirrors the Driftline registry's.

    Throttling and service errors are `TransientError` (the state machine retries Register);
    the client token makes SageMaker answer a repeated call with the package it created.
    """
    lineage = record["lineage"]
    token = uuid.uuid5(uuid.NAMESPACE_URL, f"{group}/{record['run_id']}/{record['version']}")
    with transient_aws_errors(f"SageMaker CreateModelPackage in {group}"):
        response = sagemaker.create_model_package(
            ClientToken=str(token),
            ModelPackageGroupName=group,
            ModelPackageDescription=package_description(record),
            ModelApprovalStatus=record["status"],
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": settings.model_image_uri,
                        "ModelDataUrl": f"s3://{bucket}/{record['model_key']}",
                    }
                ],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={
                "driftline_version": str(record["version"]),
                "driftline_run_id": str(record["run_id"]),
                "dataset_version_id": str(lineage["s3_version_id"]),
                "code_version": str(lineage["code_version"]),
            },
        )
    return str(response["ModelPackageArn"])


def run(state: GatedState) -> Registered:
    started = time.perf_counter()
    if not state.gate.passed:
        raise PipelineInputError(f"run {state.run.id}: the gate did not pass; nothing to register")
    settings = get_settings()
    bucket = settings.artifacts_bucket
    runs = RunRegistry(client("dynamodb"), settings.runs_table)
    models = ModelRegistry(client("dynamodb"), settings.models_table)
    name = state.dataset
    record = _already_registered(models, state)
    if record is None:
        record = _register_version(state, settings, models)
    else:
        logger.info(
            "already registered: finishing the other steps", extra={"version": record["version"]}
        )
    version, status = int(record["version"]), str(record["status"])

    group = model_package_group(settings, name)
    if group is not None and not record.get("model_package_arn"):
        package_arn = create_model_package(
            client("sagemaker"), group=group, record=record, bucket=bucket, settings=settings
        )
        models.set_version_fields(name, version, {"model_package_arn": package_arn})
        logger.info("model package recorded", extra={"model_package_arn": package_arn})

    duration = round(time.perf_counter() - started, 3)
    runs.update_run(
        state.run.id,
        {"model_version": version, "model_status": status, "duration_register": duration},
    )
    logger.info("registered", extra={"version": version, "status": status})
    return Registered(
        model=name, version=version, status=status, model_key=str(record["model_key"])
    )


def _register_version(
    state: GatedState, settings: Settings, models: ModelRegistry
) -> dict[str, Any]:
    """Allocate the next version, copy the run's artifacts under it, write its record."""
    bucket = settings.artifacts_bucket
    status = approval_status(state.prepared.approval, settings)
    name = state.dataset
    created_at = utc_now()
    for _ in range(MAX_ALLOCATIONS):
        version = models.allocate_version(name)
        model_key = model_artifact(name, version, MODEL)
        artifacts = {}
        for artifact in REGISTERED:
            key = model_artifact(name, version, artifact)
            storage.copy(bucket, run_artifact(state.run.id, artifact), key)
            artifacts[artifact.split(".")[0]] = key
        record = {
            "model": name,
            "version": version,
            "status": status,
            "run_id": state.run.id,
            "created_at": created_at,
            "model_key": model_key,
            "artifacts": artifacts,
            "metrics": state.evaluation.metrics,
            "primary_metric": state.evaluation.primary_metric,
            "estimator": state.prepared.estimator,
            "approval": state.prepared.approval,
            "lineage": {
                "dataset": state.dataset,
                "s3_version_id": state.validation.version_id,
                "manifest_sha256": state.validation.manifest_sha256,
                "code_version": settings.git_sha,
                "run_id": state.run.id,
                "execution_arn": state.run.execution_arn,
            },
        }
        if status == "Approved":
            record |= {"decided_at": created_at, "decided_by": "policy:automatic"}
        if models.put_version(record):
            break
        # The counter was behind an existing item (restored table, manual edit): take the next.
        logger.warning("version already taken", extra={"version": version})
    else:
        raise RuntimeError(f"model {name}: no free version after {MAX_ALLOCATIONS} attempts")
    return record
