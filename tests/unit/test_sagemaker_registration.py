"""The SageMaker side of a run on moto: a Model Package per registered version, and the step
that turns a training job's `model.tar.gz` into the run's `model.zip`."""

from __future__ import annotations

import io
import tarfile

import boto3
import pytest

from functions.collect_training import handler as collect_training
from functions.shared.errors import PipelineInputError
from tests.unit.conftest import (
    LAMBDA_CONTEXT,
    MODEL_IMAGE,
    MODEL_PACKAGE_GROUP,
    use_model_package_group,
)
from tests.unit.test_training_handlers import (
    ARTIFACTS,
    DATASET,
    FAST_CONFIG,
    breast_cancer_csv,
    execute,
    model_versions,
    put_override,
    run_item,
    start_state,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def groups(pipeline_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    use_model_package_group(monkeypatch, DATASET)


def test_registering_creates_a_model_package_with_the_versions_status_and_lineage(
    groups: None,
) -> None:
    put_override(FAST_CONFIG)
    state = execute(start_state(breast_cancer_csv(), "run-package"))

    assert "error" not in state, state.get("error")
    (version,) = model_versions()
    package = boto3.client("sagemaker").describe_model_package(
        ModelPackageName=version["model_package_arn"]
    )
    assert package["ModelPackageGroupName"] == MODEL_PACKAGE_GROUP
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"] == {
        "driftline_version": "1",
        "driftline_run_id": "run-package",
        "dataset_version_id": state["version_id"],
        "code_version": "0123abc",
    }
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["Image"] == MODEL_IMAGE
    assert container["ModelDataUrl"] == f"s3://{ARTIFACTS}/models/{DATASET}/v1/model.zip"


def test_without_configured_groups_registration_skips_sagemaker(pipeline_aws: None) -> None:
    put_override(FAST_CONFIG)
    state = execute(start_state(breast_cancer_csv(), "run-twin"))

    assert state["registered"]["version"] == 1
    (version,) = model_versions()
    assert "model_package_arn" not in version


def test_collect_training_unpacks_the_jobs_model_into_the_run_like_train(
    pipeline_aws: None,
) -> None:
    put_override(FAST_CONFIG)
    state = execute(start_state(breast_cancer_csv(), "run-job"))
    s3 = boto3.client("s3")
    model = s3.get_object(Bucket=ARTIFACTS, Key="runs/run-job/model.zip")["Body"].read()
    s3.delete_object(Bucket=ARTIFACTS, Key="runs/run-job/model.zip")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.zip")
        info.size = len(model)
        tar.addfile(info, io.BytesIO(model))
    job_key = "runs/run-job/sagemaker/driftline-abc/output/model.tar.gz"
    s3.put_object(Bucket=ARTIFACTS, Key=job_key, Body=archive.getvalue())
    event = {
        key: state[key] for key in ("dataset", "bucket", "key", "version_id", "run", "validation")
    } | {
        "prepared": state["prepared"],
        "training_job": {
            "name": "driftline-abc",
            "model_artifacts": f"s3://{ARTIFACTS}/{job_key}",
            "seconds": 42,
        },
    }

    trained = collect_training.handler(event, LAMBDA_CONTEXT)

    # The same model and version; no scored metrics, so Evaluate scores this challenger itself.
    assert trained == {**state["trained"], "metrics_key": None, "plot_key": None}
    stored = s3.get_object(Bucket=ARTIFACTS, Key="runs/run-job/model.zip")["Body"].read()
    assert stored == model
    run = run_item("run-job")
    assert run["training_job"] == "driftline-abc"
    assert run["duration_train"] == 42


def test_collect_training_names_an_archive_without_a_model(pipeline_aws: None) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("other.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(PipelineInputError, match=r"s3://b/k: no model.zip"):
        collect_training.model_from_archive(archive.getvalue(), "s3://b/k")
