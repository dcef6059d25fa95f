"""`driftline models promote --auto` on the twin: two env registries, real alarms and history.

The twin runs the `local` env as deployed (the source, standing in for staging: its registry,
artifacts bucket, CloudWatch alarms and their history). A second registry table and artifacts
bucket on the same twin stand in for prod, reached the way the CLI reaches any env: through
stack outputs (faked for `prod` only, as tests/unit/test_models_promote.py does). `prod`'s
`approval_policy` in cdk.json is `manual`, `dev`'s is `automatic`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftline import aws
from driftline.cli import main
from driftline.commands import models as models_command
from functions.shared.registry import ModelRegistry, to_attributes
from pipelines.keys import REGISTERED, model_artifact
from tests.twin.conftest import RunningTwin
from tests.unit.conftest import REGISTRY_TABLE
from tests.unit.test_models_promote import MODEL, payload, version_item

pytestmark = pytest.mark.twin

TARGETS = ("prod", "dev")


def iso(hours_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(hours=hours_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def envs(twin: RunningTwin) -> Iterator[dict[str, dict[str, str]]]:
    dynamodb, s3 = twin.client("dynamodb"), twin.client("s3")
    fake: dict[str, dict[str, str]] = {}
    for env in TARGETS:
        table, bucket = f"twin-models-{env}", f"twin-artifacts-{env}"
        dynamodb.create_table(TableName=table, **REGISTRY_TABLE)
        s3.create_bucket(Bucket=bucket)
        fake[env] = {"ModelsTableName": table, "ArtifactsBucketName": bucket}

    def outputs(env: str, *, region: str | None = None, profile: str | None = None) -> Any:
        return fake[env] if env in fake else aws.stack_outputs(env, region=region, profile=profile)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models_command, "stack_outputs", outputs)
        yield {"local": twin.outputs, **fake}


def register_approved(twin: RunningTwin, version: int, *, approved_hours_ago: float) -> None:
    """An Approved version in the source (local) registry, with its artifacts in its bucket,
    served by its endpoint since then (what makes it the champion)."""
    s3 = twin.client("s3")
    for name in REGISTERED:
        s3.put_object(
            Bucket=twin.outputs["ArtifactsBucketName"],
            Key=model_artifact(MODEL, version, name),
            Body=payload(version, name),
        )
    item = version_item(version, "Approved") | {
        "decided_at": iso(approved_hours_ago),
        "decided_by": "cli:tester",
    }
    table = twin.outputs["ModelsTableName"]
    twin.client("dynamodb").put_item(TableName=table, Item=to_attributes(item))
    twin.client("dynamodb").put_item(
        TableName=table,
        Item=to_attributes(
            {"pk": f"model#{MODEL}", "sk": "counter", "model": MODEL, "next_version": version}
        ),
    )
    twin.client("dynamodb").put_item(
        TableName=twin.outputs["EndpointsTableName"],
        Item=to_attributes(
            {
                "pk": f"endpoint#{MODEL}",
                "sk": "current",
                "model": MODEL,
                "model_version": version,
                "deployed_at": iso(approved_hours_ago),
            }
        ),
    )


def auto(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(
        ["models", "promote", "--auto", "--from", "local", "--model", MODEL, "--json", *argv]
    )
    captured = capsys.readouterr()
    assert (code, captured.err) == (0, "")
    document: dict[str, Any] = json.loads(captured.out)
    return document


def registry(twin: RunningTwin, table: str) -> ModelRegistry:
    return ModelRegistry(twin.client("dynamodb"), table)


def env_alarm(twin: RunningTwin) -> str:
    """An alarm of the local env that concerns every model (no Model dimension)."""
    alarms = twin.client("cloudwatch").describe_alarms(AlarmNamePrefix="Driftline-local-")
    names = [
        alarm["AlarmName"]
        for alarm in alarms["MetricAlarms"]
        if not any(d["Name"] == "Model" for d in alarm.get("Dimensions", []))
        and not alarm.get("Metrics")
    ]
    assert names, "the local env has alarms named after their stacks"
    return sorted(names)[0]


def test_soaked_version_waits_then_is_promoted_to_manual_prod_pending_approval_then_approved(
    twin: RunningTwin, envs: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    register_approved(twin, 1, approved_hours_ago=2)

    soaking = auto(capsys, "--to", "prod", "--soak-hours", "3")["decisions"]
    assert [(d["version"], d["verdict"]) for d in soaking] == [(1, "wait")]
    assert "soaking until" in soaking[0]["reason"]
    assert registry(twin, envs["prod"]["ModelsTableName"]).get_version(MODEL, 1) is None

    promoted = auto(capsys, "--to", "prod", "--soak-hours", "1")
    [decision] = promoted["decisions"]
    assert (decision["verdict"], decision["target_version"]) == ("promote", 1)
    assert (promoted["target_status"], decision["target_status"]) == (
        "PendingApproval",
        "PendingApproval",
    )

    # Recorded in both registries, with what decided it.
    target = registry(twin, envs["prod"]["ModelsTableName"]).get_version(MODEL, 1)
    assert target is not None
    assert target["status"] == "PendingApproval" and "decided_by" not in target
    assert target["promoted_from"]["env"] == "local" and target["promoted_from"]["version"] == 1
    assert target["promoted_by"].startswith("auto-promotion (cli:")
    assert target["promotion"]["mode"] == "auto" and target["promotion"]["soak_hours"] == 1
    assert "no alarm in the last 1.0h" in target["promotion"]["reason"]
    source = registry(twin, twin.outputs["ModelsTableName"]).get_version(MODEL, 1)
    assert source is not None
    assert source["promotions"]["prod"]["version"] == 1
    assert source["promotions"]["prod"]["status"] == "PendingApproval"
    s3 = twin.client("s3")
    for name in REGISTERED:
        body = s3.get_object(
            Bucket=envs["prod"]["ArtifactsBucketName"], Key=model_artifact(MODEL, 1, name)
        )["Body"].read()
        assert body == payload(1, name)

    # Idempotent: the next scheduled run finds it done.
    again = auto(capsys, "--to", "prod", "--soak-hours", "1")["decisions"]
    assert [(d["verdict"], d["reason"]) for d in again] == [
        ("done", "already promoted as version 1")
    ]

    # Under `manual`, a person approves it in prod.
    code = main(["models", "approve", MODEL, "--env", "prod", "--version", "1", "--json"])
    approved = json.loads(capsys.readouterr().out)
    assert code == 0
    assert approved["status"] == "Approved" and approved["decided_by"].startswith("cli:")


def test_an_alarm_in_the_soak_window_holds_promotion_to_an_automatic_env(
    twin: RunningTwin, envs: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    register_approved(twin, 2, approved_hours_ago=2)
    cloudwatch = twin.client("cloudwatch")
    alarm = env_alarm(twin)
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="smoke drill")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="recovered")

    held = auto(capsys, "--to", "dev", "--soak-hours", "1")["decisions"]
    assert [(d["version"], d["verdict"], d["alarms"]) for d in held] == [(2, "hold", [alarm])]
    assert f"{alarm} went to ALARM at" in held[0]["reason"]
    assert registry(twin, envs["dev"]["ModelsTableName"]).get_version(MODEL, 1) is None

    # A zero-length window no longer holds the alarm that fired a moment ago. A dry run says
    # so and copies nothing.
    dry = auto(capsys, "--to", "dev", "--soak-hours", "0", "--dry-run")
    assert [(d["verdict"], d.get("target_version")) for d in dry["decisions"]] == [
        ("promote", None)
    ]
    assert registry(twin, envs["dev"]["ModelsTableName"]).get_version(MODEL, 1) is None

    # Promoted for real, and `dev` approves it by its policy.
    promoted = auto(capsys, "--to", "dev", "--soak-hours", "0")["decisions"]
    assert [(d["verdict"], d["target_status"]) for d in promoted] == [("promote", "Approved")]
    record = registry(twin, envs["dev"]["ModelsTableName"]).get_version(MODEL, 1)
    assert record is not None and record["status"] == "Approved"
    assert record["decided_by"] == "policy:automatic after a 0h soak in local"
