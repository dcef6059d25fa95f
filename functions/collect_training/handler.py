"""Turn a finished SageMaker training job into what the Lambda Train step returns.

The job writes `model.zip` into `SM_MODEL_DIR`, which SageMaker uploads as `model.tar.gz`
under the run's `sagemaker/` prefix. Evaluate onward reads the run's `model.zip`, so this step
unpacks it there and records the run exactly as Train does: both backends look the same after it.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.shared import storage
from functions.shared.clients import client
from functions.shared.errors import PipelineInputError
from functions.shared.registry import RunRegistry
from functions.shared.settings import get_settings
from functions.shared.state import PreparedState, StepState, Trained, parse_state
from pipelines.keys import MODEL, run_artifact
from pipelines.model_io import read_metadata

logger = Logger()


class TrainingJob(StepState):
    """The state machine's selection from DescribeTrainingJob."""

    name: str = Field(min_length=1)
    model_artifacts: str = Field(pattern=r"^s3://[^/]+/.+")
    seconds: float = Field(default=0, ge=0)


class TrainingJobState(PreparedState):
    training_job: TrainingJob


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(TrainingJobState, event)
    logger.append_keys(run_id=state.run.id, dataset=state.dataset)
    return run(state).model_dump()


def model_from_archive(archive: bytes, source: str) -> bytes:
    """`model.zip` out of SageMaker's `model.tar.gz` (at its top level, as SM_MODEL_DIR had it)."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.removeprefix("./") == MODEL:
                extracted = tar.extractfile(member)
                if extracted is not None:
                    return extracted.read()
    raise PipelineInputError(f"{source}: no {MODEL} in the training job's model archive")


def run(state: TrainingJobState) -> Trained:
    settings = get_settings()
    job = state.training_job
    bucket, _, key = job.model_artifacts.removeprefix("s3://").partition("/")
    if bucket != settings.artifacts_bucket:
        raise PipelineInputError(
            f"training job {job.name}: model artifacts {job.model_artifacts} are outside the "
            f"artifacts bucket {settings.artifacts_bucket}"
        )
    model = model_from_archive(storage.get_bytes(bucket, key), job.model_artifacts)
    metadata = read_metadata(model)
    model_key = run_artifact(state.run.id, MODEL)
    storage.put_bytes(bucket, model_key, model, "application/zip")
    RunRegistry(client("dynamodb"), settings.runs_table).update_run(
        state.run.id,
        {
            "sklearn_version": metadata.sklearn_version,
            "artifacts.model": model_key,
            "duration_train": job.seconds,
            "training_job": job.name,
        },
    )
    logger.info("collected", extra={"training_job": job.name, "seconds": job.seconds})
    return Trained(model_key=model_key, sklearn_version=metadata.sklearn_version)
