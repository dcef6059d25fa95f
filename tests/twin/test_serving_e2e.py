"""Serving end to end on the twin: a run deploys its model, the endpoint predicts, rollback works.

Given the `local` stacks on the twin and two accepted uploads of the example dataset,
when each run registers and deploys its model version,
then `driftline predict` is answered by the newest version with captures written,
and `driftline endpoints rollback` puts the previous version back in front of callers.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from driftline.cli import main
from driftline.loop import upload_dataset, wait_for_execution
from tests.twin.conftest import RunningTwin

pytestmark = [pytest.mark.twin, pytest.mark.slow]

BREAST_CANCER = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer.csv"


def rows(count: int) -> list[dict[str, Any]]:
    header, *lines = BREAST_CANCER.read_text().splitlines()
    names = header.split(",")
    return [
        {
            name: float(value)
            for name, value in zip(names, line.split(","), strict=True)
            if name != "target"
        }
        for line in lines[:count]
    ]


def cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any, stdin: str = "") -> Any:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def train(twin: RunningTwin, name: str) -> dict[str, Any]:
    upload = upload_dataset(
        twin.outputs["DatasetsBucketName"], "breast_cancer", BREAST_CANCER, file_name=name
    )
    execution = wait_for_execution(
        twin.outputs["TrainingStateMachineArn"], upload.execution_name, timeout=300
    )
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output: dict[str, Any] = json.loads(execution["output"])
    return output


def test_each_run_deploys_its_model_and_rollback_restores_the_previous_one(
    twin: RunningTwin, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    first = train(twin, "first.csv")
    assert first["deployment"]["status"] == "Succeeded"
    request = json.dumps({"rows": rows(3)})

    answer = cli(["predict", "--model", "breast_cancer"], monkeypatch, capsys, request)
    assert answer["model_version"] == first["registered"]["version"]
    assert len(answer["predictions"]) == 3
    assert set(answer["predictions"]) <= {0, 1}

    second = train(twin, "second.csv")
    assert second["deployment"]["status"] == "Succeeded"
    answer = cli(["predict", "--model", "breast_cancer"], monkeypatch, capsys, request)
    assert answer["model_version"] == second["registered"]["version"]

    cli(["endpoints", "rollback", "--model", "breast_cancer", "--json"], monkeypatch, capsys)
    answer = cli(["predict", "--model", "breast_cancer"], monkeypatch, capsys, request)
    assert answer["model_version"] == first["registered"]["version"]

    history = cli(
        ["endpoints", "history", "--model", "breast_cancer", "--json"], monkeypatch, capsys
    )
    assert len(history) >= 3

    captures = twin.client("s3").list_objects_v2(
        Bucket=twin.outputs["ArtifactsBucketName"], Prefix="captures/breast_cancer/"
    )
    assert captures.get("KeyCount", 0) >= 1


def test_a_bad_request_is_refused_with_the_row_and_column(
    twin: RunningTwin, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    train(twin, "third.csv")
    bad = rows(2)
    bad[1]["mean_radius"] = "large"
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"rows": bad})))
    code = main(["predict", "--model", "breast_cancer"])
    error = capsys.readouterr().err
    assert code == 2
    assert "mean_radius" in error
    assert "400" in error
