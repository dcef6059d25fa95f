"""`driftline models promote`: an Approved version copied into another env's registry and bucket.

Each env gets its own table and bucket in one moto account; `stack_outputs` is faked per env,
which is how the CLI would see two deployed environments.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from driftline.cli import main
from driftline.commands import models as models_command
from functions.shared.registry import ModelRegistry, to_attributes
from pipelines.keys import REGISTERED, model_artifact
from tests.unit.conftest import buckets, moto_account, registry_tables

pytestmark = pytest.mark.unit

MODEL = "breast_cancer"
ROOT = Path(__file__).resolve().parents[2]
ENVS = ("local", "dev", "staging")


def outputs(env: str) -> dict[str, str]:
    return {"ModelsTableName": f"models-{env}", "ArtifactsBucketName": f"artifacts-{env}"}


def payload(version: int, artifact: str) -> bytes:
    """Distinct bytes per file, with a non-UTF-8 tail so a text round trip would show."""
    return f"{MODEL} v{version} {artifact}\n".encode() + bytes(range(256))


def version_item(version: int, status: str) -> dict[str, Any]:
    return {
        "pk": f"model#{MODEL}",
        "sk": f"version#{version:06d}",
        "model": MODEL,
        "version": version,
        "status": status,
        "run_id": f"run-{version}",
        "created_at": f"2026-11-0{version}T11:00:00Z",
        "model_key": model_artifact(MODEL, version, "model.zip"),
        "artifacts": {
            name.split(".")[0]: model_artifact(MODEL, version, name) for name in REGISTERED
        },
        "primary_metric": "roc_auc",
        "metrics": {"test": {"roc_auc": 0.97 + version / 100}},
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "approval": "env-default",
        "lineage": {"dataset": MODEL, "run_id": f"run-{version}", "code_version": "abc1234"},
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """Fresh tables and buckets per test: local holds v1 Approved and v2 PendingApproval."""
    monkeypatch.chdir(ROOT)

    def fake_outputs(
        env: str, *, region: str | None = None, profile: str | None = None
    ) -> dict[str, str]:
        return outputs(env)

    monkeypatch.setattr(models_command, "stack_outputs", fake_outputs)
    with moto_account(monkeypatch):
        dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
        registry_tables(*(f"models-{env}" for env in ENVS))
        buckets(*(f"artifacts-{env}" for env in ENVS), versioned=False)
        local = [
            version_item(1, "Approved"),
            version_item(2, "PendingApproval"),
            {"pk": f"model#{MODEL}", "sk": "counter", "model": MODEL, "next_version": 2},
        ]
        # Staging has registered versions of its own: promoted versions continue its counter.
        staging = [
            version_item(1, "Approved"),
            {"pk": f"model#{MODEL}", "sk": "counter", "model": MODEL, "next_version": 4},
        ]
        for table, items in (("models-local", local), ("models-staging", staging)):
            for item in items:
                dynamodb.put_item(TableName=table, Item=to_attributes(item))
        for version in (1, 2):
            for name in REGISTERED:
                s3.put_object(
                    Bucket="artifacts-local",
                    Key=model_artifact(MODEL, version, name),
                    Body=payload(version, name),
                )
        yield dynamodb, s3


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def promote(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return cli(capsys, "models", "promote", "--model", MODEL, *argv)


def test_promote_to_staging_copies_identical_bytes_under_the_next_staging_version(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    dynamodb, s3 = aws
    code, out, err = promote(capsys, "--version", "1", "--to", "staging", "--json")
    assert (code, err) == (0, "")
    record = json.loads(out)
    assert record["version"] == 5
    assert record["status"] == "PendingApproval"
    assert "decided_at" not in record
    for name in REGISTERED:
        key = model_artifact(MODEL, 5, name)
        assert s3.get_object(Bucket="artifacts-staging", Key=key)["Body"].read() == payload(1, name)
        assert record["artifacts"][name.split(".")[0]] == key
    assert record["model_key"] == model_artifact(MODEL, 5, "model.zip")

    stored = ModelRegistry(dynamodb, "models-staging").get_version(MODEL, 5)
    source = version_item(1, "Approved")
    assert stored is not None
    assert stored["metrics"] == source["metrics"]
    assert stored["lineage"] == source["lineage"]
    assert stored["run_id"] == "run-1"
    assert stored["promoted_from"] == {
        "env": "local",
        "version": 1,
        "model_key": model_artifact(MODEL, 1, "model.zip"),
    }
    # The source env is left as it was.
    assert ModelRegistry(dynamodb, "models-local").get_version(MODEL, 3) is None


def test_promote_to_an_automatic_env_arrives_approved_not_yet_the_champion(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Approved in dev at once; the champion only once dev's endpoint serves it (a deploy)."""
    code, out, _ = promote(capsys, "--version", "v1", "--to", "dev", "--json")
    assert code == 0
    record = json.loads(out)
    assert (record["version"], record["status"], record["champion"]) == (1, "Approved", False)
    assert record["decided_by"] == "policy:automatic"


def test_promote_refuses_a_version_that_is_not_approved(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    dynamodb, s3 = aws
    code, out, err = promote(capsys, "--version", "2", "--to", "staging")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "version 2" in err and "PendingApproval, not Approved" in err
    assert ModelRegistry(dynamodb, "models-staging").get_version(MODEL, 5) is None
    assert "Contents" not in s3.list_objects_v2(Bucket="artifacts-staging")


@pytest.mark.parametrize(
    ("model", "version", "message"),
    [
        ("iris", "1", "unknown model 'iris'"),
        (MODEL, "7", f"model '{MODEL}' has no version 7 (versions: 1, 2)"),
    ],
)
def test_promote_refuses_an_unknown_model_or_version_in_one_line(
    aws: tuple[Any, Any],
    capsys: pytest.CaptureFixture[str],
    model: str,
    version: str,
    message: str,
) -> None:
    code, out, err = cli(
        capsys, "models", "promote", "--model", model, "--version", version, "--to", "staging"
    )
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err


def test_promoting_the_same_version_twice_names_the_existing_target_version(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    dynamodb, _ = aws
    assert promote(capsys, "--version", "1", "--to", "staging")[0] == 0
    code, out, err = promote(capsys, "--version", "1", "--to", "staging")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "already version 5 in env 'staging'" in err
    assert ModelRegistry(dynamodb, "models-staging").get_version(MODEL, 6) is None


def test_promote_to_the_source_env_is_refused(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = promote(capsys, "--version", "1", "--from", "staging", "--to", "staging")
    assert code == 2 and "--from and --to are both 'staging'" in err


def test_promote_reports_a_missing_source_artifact_by_bucket_and_key(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _, s3 = aws
    missing = model_artifact(MODEL, 1, "evaluation.png")
    s3.delete_object(Bucket="artifacts-local", Key=missing)
    code, _, err = promote(capsys, "--version", "1", "--to", "staging")
    assert code == 2 and err.count("\n") == 1
    assert f"s3://artifacts-local/{missing}" in err
