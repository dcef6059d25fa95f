"""A retried Register finishes what its first attempt started: model package, run record.

The state machine retries Register on `TransientError`. Whatever step the first attempt got
to (version written, package created or not, its ARN recorded or not, the run updated or
not), the retry adds no version, creates the missing package once and records the version on
the run.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.register import handler as register
from functions.shared.errors import TransientError
from functions.shared.registry import ModelRegistry, RunRegistry
from tests.unit.conftest import LAMBDA_CONTEXT, MODEL_PACKAGE_GROUP, use_model_package_group
from tests.unit.test_training_handlers import (
    DATASET,
    FAST_CONFIG,
    breast_cancer_csv,
    clone_gated_run,
    execute,
    model_versions,
    put_override,
    run_item,
    start_state,
)

pytestmark = pytest.mark.unit


class FlakySageMaker:
    """moto's SageMaker, throttling the first `failures` CreateModelPackage calls."""

    def __init__(self, failures: int) -> None:
        self.inner = boto3.client("sagemaker")
        self.failures = failures
        self.tokens: list[str] = []

    def create_model_package(self, **arguments: Any) -> Any:
        self.tokens.append(arguments["ClientToken"])
        if self.failures:
            self.failures -= 1
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                "CreateModelPackage",
            )
        return self.inner.create_model_package(**arguments)


@pytest.fixture
def gated(pipeline_aws: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A run that passed the gate and is about to be registered (version 2 of the model)."""
    put_override(FAST_CONFIG)
    first = execute(start_state(breast_cancer_csv(), "run-first"))
    assert first["registered"]["version"] == 1
    use_model_package_group(monkeypatch, DATASET)
    return clone_gated_run(first, "run-retried")


def use_sagemaker(monkeypatch: pytest.MonkeyPatch, sagemaker: FlakySageMaker) -> None:
    original = register.client
    monkeypatch.setattr(
        register,
        "client",
        lambda service: sagemaker if service == "sagemaker" else original(service),
    )


def packages() -> list[dict[str, Any]]:
    listing = boto3.client("sagemaker").list_model_packages(
        ModelPackageGroupName=MODEL_PACKAGE_GROUP
    )
    summaries: list[dict[str, Any]] = listing["ModelPackageSummaryList"]
    return summaries


def test_throttled_model_package_is_retryable_and_the_retry_finishes_the_registration(
    gated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sagemaker = FlakySageMaker(failures=1)
    use_sagemaker(monkeypatch, sagemaker)

    with pytest.raises(TransientError, match="ThrottlingException"):
        register.handler(gated, LAMBDA_CONTEXT)
    (written,) = [v for v in model_versions() if v["run_id"] == "run-retried"]
    assert written["status"] == "Approved" and "model_package_arn" not in written
    assert "model_version" not in run_item("run-retried")

    retried = register.handler(gated, LAMBDA_CONTEXT)

    assert (retried["version"], retried["status"]) == (2, "Approved")
    assert len(model_versions()) == 2  # the retry added no version
    (version,) = [v for v in model_versions() if v["run_id"] == "run-retried"]
    (package,) = packages()
    assert version["model_package_arn"] == package["ModelPackageArn"]
    assert package["ModelPackageDescription"] == f"{DATASET} v2 (run run-retried)"
    run = run_item("run-retried")
    assert (run["model_version"], run["model_status"]) == (2, "Approved")
    assert len(set(sagemaker.tokens)) == 1  # one idempotency token for both calls


def test_a_retry_after_the_package_was_created_but_not_recorded_sends_the_same_token(
    gated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sagemaker = FlakySageMaker(failures=0)
    use_sagemaker(monkeypatch, sagemaker)
    original = ModelRegistry.set_version_fields
    calls: list[int] = []

    def lost_once(self: ModelRegistry, model: str, version: int, fields: Any) -> None:
        calls.append(version)
        if len(calls) == 1:
            raise TransientError("DynamoDB update_item: ThrottlingException (retryable)")
        original(self, model, version, fields)

    monkeypatch.setattr(ModelRegistry, "set_version_fields", lost_once)

    with pytest.raises(TransientError):
        register.handler(gated, LAMBDA_CONTEXT)
    register.handler(gated, LAMBDA_CONTEXT)

    assert len(sagemaker.tokens) == 2 and len(set(sagemaker.tokens)) == 1
    (version,) = [v for v in model_versions() if v["run_id"] == "run-retried"]
    assert version["model_package_arn"].startswith("arn:aws:sagemaker:")


def test_a_retry_after_the_version_was_written_records_it_on_the_run(
    gated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_sagemaker(monkeypatch, FlakySageMaker(failures=0))
    original = RunRegistry.update_run
    attempts: list[str] = []

    def throttled_once(self: RunRegistry, run_id: str, fields: Any) -> None:
        attempts.append(run_id)
        if len(attempts) == 1:
            raise TransientError("DynamoDB update_item: ThrottlingException (retryable)")
        original(self, run_id, fields)

    monkeypatch.setattr(RunRegistry, "update_run", throttled_once)

    with pytest.raises(TransientError):
        register.handler(gated, LAMBDA_CONTEXT)
    retried = register.handler(gated, LAMBDA_CONTEXT)

    assert retried["version"] == 2
    assert run_item("run-retried")["model_version"] == 2
    assert len(packages()) == 1  # created by the first attempt, not again
    assert len(model_versions()) == 2
