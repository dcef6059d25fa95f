"""The Runs and Models registries on moto DynamoDB: keys, ordering, atomic versions, decisions."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.register.handler import approval_status
from functions.shared.endpoints import EndpointRegistry, champion
from functions.shared.errors import TransientError, transient_aws_errors
from functions.shared.registry import (
    ModelRegistry,
    RegistryError,
    RunRegistry,
    from_attributes,
    to_attributes,
)
from functions.shared.settings import Settings
from tests.unit.conftest import moto_account, registry_tables

pytestmark = pytest.mark.unit

RUNS, MODELS, ENDPOINTS = "runs", "models", "endpoints"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_account(monkeypatch):
        registry_tables(RUNS, MODELS)
        yield boto3.client("dynamodb")


def version_record(version: int, status: str, model: str = "iris") -> dict[str, Any]:
    return {
        "model": model,
        "version": version,
        "status": status,
        "run_id": f"run-{version}",
        "model_key": f"models/{model}/v{version}/model.zip",
        "metrics": {"accuracy": 0.9 + version / 100},
    }


# --- encoding -------------------------------------------------------------------------------


def test_values_round_trip_with_nan_stored_as_null_and_numbers_kept_numeric() -> None:
    document = {
        "metrics": {"test": {"auc": 0.987654321, "r2": math.nan, "rows": 114}},
        "reasons": ["a", "b"],
        "passed": False,
        "version": 3,
        "params": ("x", 1.5),
    }

    back = from_attributes(to_attributes(document))

    assert back == {
        "metrics": {"test": {"auc": 0.987654321, "r2": None, "rows": 114}},
        "reasons": ["a", "b"],
        "passed": False,
        "version": 3,
        "params": ["x", 1.5],
    }
    assert isinstance(back["version"], int)
    assert to_attributes({"x": 0.1})["x"] == {"N": str(Decimal("0.1"))}


def test_unsupported_values_are_refused_naming_the_type() -> None:
    with pytest.raises(TypeError, match="cannot store a object"):
        to_attributes({"x": object()})


# --- runs -----------------------------------------------------------------------------------


def test_a_dataset_lists_its_runs_newest_first_and_all_runs_are_listed(dynamodb: Any) -> None:
    runs = RunRegistry(dynamodb, RUNS)
    for run_id, dataset, started in [
        ("r1", "iris", "2026-01-01T00:00:00.000Z"),
        ("r2", "wine", "2026-01-02T00:00:00.000Z"),
        ("r3", "iris", "2026-01-03T00:00:00.000Z"),
    ]:
        runs.upsert_run(run_id, {"dataset": dataset, "started_at": started, "status": "Running"})

    assert [r["run_id"] for r in runs.list_runs(dataset="iris")] == ["r3", "r1"]
    assert [r["run_id"] for r in runs.list_runs(dataset="iris", limit=1)] == ["r3"]
    assert [r["run_id"] for r in runs.list_runs()] == ["r3", "r2", "r1"]
    assert runs.list_runs(dataset="nothing") == []


def test_step_updates_set_their_own_fields_without_clobbering_others(dynamodb: Any) -> None:
    runs = RunRegistry(dynamodb, RUNS)
    runs.upsert_run("r1", {"dataset": "iris", "started_at": "t0", "status": "Running"})
    runs.update_run("r1", {"duration_train": 1.5, "artifacts.model": "runs/r1/model.zip"})
    runs.update_run("r1", {"duration_evaluate": 0.5, "artifacts.metrics": "runs/r1/m.json"})
    # An outcome recorded later re-asserts identity without losing the steps' fields.
    runs.upsert_run("r1", {"dataset": "iris", "started_at": "t0"})

    run = runs.require_run("r1")

    assert run["duration_train"] == 1.5
    assert run["duration_evaluate"] == 0.5
    assert run["artifacts"] == {"model": "runs/r1/model.zip", "metrics": "runs/r1/m.json"}
    assert run["status"] == "Running"


def test_updating_or_showing_an_unknown_run_is_a_one_line_error(dynamodb: Any) -> None:
    runs = RunRegistry(dynamodb, RUNS)

    with pytest.raises(RegistryError, match=r"^run nope does not exist in runs$"):
        runs.update_run("nope", {"status": "Failed"})
    with pytest.raises(RegistryError, match=r"^unknown run 'nope'$"):
        runs.require_run("nope")
    assert runs.get_run("nope") is None


# --- models ---------------------------------------------------------------------------------


def test_concurrent_allocations_get_unique_consecutive_versions(
    dynamodb: Any, atomic_items: None
) -> None:
    models = ModelRegistry(dynamodb, MODELS)
    got: list[int] = []
    barrier = threading.Barrier(8)

    def allocate() -> None:
        barrier.wait()
        got.append(models.allocate_version("iris"))

    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(got) == list(range(1, 9))
    assert models.allocate_version("wine") == 1


def test_an_existing_version_is_never_overwritten(dynamodb: Any) -> None:
    models = ModelRegistry(dynamodb, MODELS)
    assert models.put_version(version_record(1, "Approved")) is True

    assert models.put_version({**version_record(1, "PendingApproval"), "run_id": "x"}) is False
    stored = models.get_version("iris", 1)
    assert stored is not None
    assert stored["run_id"] == "run-1"
    assert stored["status"] == "Approved"


def test_the_latest_approved_version_is_the_newest_approved_one(dynamodb: Any) -> None:
    models = ModelRegistry(dynamodb, MODELS)
    assert models.latest_approved("iris") is None
    for version, status in [(1, "Approved"), (2, "Approved"), (3, "PendingApproval")]:
        models.put_version(version_record(version, status))
    models.put_version(version_record(10, "Rejected"))

    latest = models.latest_approved("iris")
    assert latest is not None and latest["version"] == 2
    assert [v["version"] for v in models.versions("iris")] == [10, 3, 2, 1]

    models.decide("iris", 3, "Approved", {"decided_by": "test"})

    latest = models.latest_approved("iris")
    assert latest is not None and latest["version"] == 3
    assert latest["decided_by"] == "test"


def serving_entry(version: int, lambda_version: str | None, **extra: Any) -> dict[str, Any]:
    """An Endpoints-table record as the deploy step writes it (dedicated: a Lambda version)."""
    entry = {
        "env": "local",
        "model": "iris",
        "action": "deploy",
        "status": "Succeeded",
        "model_version": version,
        "deployed_at": f"2026-12-0{version}T10:00:00Z",
        "deployed_by": "test",
    }
    if lambda_version is not None:
        entry["lambda_version"] = lambda_version
    return entry | extra


@pytest.mark.parametrize("kind", ["dedicated", "shared"])
def test_the_champion_is_what_the_endpoint_serves_not_the_newest_approved(
    dynamodb: Any, kind: str
) -> None:
    """v2 is Approved but its deploy was rolled back: v1, which serves, is the champion."""
    endpoints = create_endpoints_table(dynamodb)
    models = ModelRegistry(dynamodb, MODELS)
    for version in (1, 2):
        models.put_version(version_record(version, "Approved"))
    assert champion(models, endpoints, "iris") is None  # approved, but nothing serves yet

    shared = {"endpoint": "shared", "serving_key": "k1", "serving_sha256": "d1"}
    first = serving_entry(
        1, "3" if kind == "dedicated" else None, **({} if kind == "dedicated" else shared)
    )
    if kind == "dedicated":
        endpoints.record(first, becomes_current=True)
        endpoints.record(
            serving_entry(2, "4", status="RolledBack", previous_version="3"),
            becomes_current=False,
        )
    else:
        assert endpoints.replace_current("iris", first, expected_version=None)
        endpoints.record(first, becomes_current=False)
        endpoints.record(
            serving_entry(2, None, status="RolledBack", **shared), becomes_current=False
        )

    found = champion(models, endpoints, "iris")
    assert found is not None and found["version"] == 1
    assert models.latest_approved("iris")["version"] == 2  # type: ignore[index]

    # Once v2 goes live (a later deploy), it is the champion.
    if kind == "dedicated":
        endpoints.record(serving_entry(2, "5", previous_version="3"), becomes_current=True)
    else:
        second = serving_entry(2, None, **shared)
        assert endpoints.replace_current("iris", second, expected_version=1)
    found = champion(models, endpoints, "iris")
    assert found is not None and found["version"] == 2


def test_a_rollback_makes_the_version_it_restores_the_champion(dynamodb: Any) -> None:
    endpoints = create_endpoints_table(dynamodb)
    models = ModelRegistry(dynamodb, MODELS)
    for version in (1, 2):
        models.put_version(version_record(version, "Approved"))
    endpoints.record(serving_entry(1, "3"), becomes_current=True)
    endpoints.record(serving_entry(2, "4", previous_version="3"), becomes_current=True)
    assert champion(models, endpoints, "iris")["version"] == 2  # type: ignore[index]

    endpoints.record(
        serving_entry(1, "3", action="rollback", previous_version="4"), becomes_current=True
    )

    assert champion(models, endpoints, "iris")["version"] == 1  # type: ignore[index]


def create_endpoints_table(dynamodb: Any) -> EndpointRegistry:
    registry_tables(ENDPOINTS)
    return EndpointRegistry(dynamodb, ENDPOINTS)


def test_only_a_pending_version_can_be_decided(dynamodb: Any) -> None:
    models = ModelRegistry(dynamodb, MODELS)
    models.put_version(version_record(1, "Approved"))

    with pytest.raises(RegistryError, match=r"^model iris version 1 is Approved, not Pending"):
        models.decide("iris", 1, "Rejected", {"reason": "late"})
    with pytest.raises(RegistryError, match=r"^model iris has no version 7$"):
        models.decide("iris", 7, "Approved", {})


def test_models_are_listed_by_their_counters(dynamodb: Any) -> None:
    models = ModelRegistry(dynamodb, MODELS)
    for name in ("wine", "iris", "wine"):
        models.allocate_version(name)

    assert models.list_models() == ["iris", "wine"]


# --- policy and errors ----------------------------------------------------------------------


def settings(policy: str) -> Settings:
    return Settings.model_validate(
        {
            "env": "dev",
            "git_sha": "abc",
            "approval_policy": policy,
            "datasets_bucket": "datasets",
            "artifacts_bucket": "artifacts",
            "datasets_table": "d",
            "runs_table": "r",
            "models_table": "m",
            "alerts_topic_arn": "arn:aws:sns:us-east-1:123456789012:t",
        }
    )


@pytest.mark.parametrize(
    ("config_approval", "env_policy", "status"),
    [
        ("automatic", "manual", "Approved"),
        ("manual", "automatic", "PendingApproval"),
        ("env-default", "automatic", "Approved"),
        ("env-default", "manual", "PendingApproval"),
    ],
)
def test_the_model_config_overrides_the_environment_approval_policy(
    config_approval: str, env_policy: str, status: str
) -> None:
    assert approval_status(config_approval, settings(env_policy)) == status


def test_throttling_becomes_transient_error_and_other_errors_pass_through() -> None:
    def fail(code: str) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "no"}}, "PutItem")

    throttled = pytest.raises(TransientError, match="writing: ProvisionedThroughputExceeded")
    with throttled, transient_aws_errors("writing"):
        fail("ProvisionedThroughputExceededException")
    with pytest.raises(ClientError, match="AccessDenied"), transient_aws_errors("writing"):
        fail("AccessDenied")
