"""End to end on the twin: a multi-part batch is validated by a Distributed Map and trained once.

Given the `local` stacks deployed unmodified on the twin,
when three part files of one dataset and then the batch's `_COMPLETE` marker are uploaded,
then exactly one run starts (named after the marker's VersionId), every part is validated,
one manifest lists every part and profiles all their rows, and the run trains and succeeds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from driftline.loop import step_results, upload_text, wait_for_execution
from pipelines.uploads import execution_name
from tests.twin.conftest import RunningTwin

pytestmark = [pytest.mark.twin, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BREAST_CANCER = REPO / "examples" / "breast_cancer.csv"
DATASET = "breast_cancer"
BATCH = f"datasets/{DATASET}/2026-11-03/"


def parts_of(text: str, pieces: int) -> list[str]:
    header, *rows = text.splitlines()
    size = math.ceil(len(rows) / pieces)
    return ["\n".join([header, *rows[i * size : (i + 1) * size]]) + "\n" for i in range(pieces)]


def test_three_parts_and_a_marker_make_one_run_with_one_manifest_of_every_part(
    twin: RunningTwin,
) -> None:
    bucket = twin.outputs["DatasetsBucketName"]
    machine = twin.outputs["TrainingStateMachineArn"]
    parts = parts_of(BREAST_CANCER.read_text(), 3)
    uploaded = {
        f"{BATCH}part-{i:05d}.csv": upload_text(bucket, f"{BATCH}part-{i:05d}.csv", text)
        for i, text in enumerate(parts)
    }
    marker_version = upload_text(bucket, f"{BATCH}_COMPLETE", "")
    name = execution_name(DATASET, marker_version)

    execution = wait_for_execution(machine, name, timeout=300)

    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    validation = output["validation"]
    assert (validation["key"], validation["version_id"], validation["parts"]) == (
        BATCH,
        marker_version,
        3,
    )
    assert output["registered"]["model"] == DATASET

    manifest = json.loads(
        twin.client("s3")
        .get_object(Bucket=twin.outputs["ArtifactsBucketName"], Key=validation["manifest_key"])[
            "Body"
        ]
        .read()
    )
    part_rows = [text.count("\n") - 1 for text in parts]
    assert manifest["profile"]["rows"] == manifest["rows"] == sum(part_rows) == 569
    assert {part["key"]: part["version_id"] for part in manifest["parts"]} == uploaded
    assert [part["rows"] for part in manifest["parts"]] == part_rows
    assert output["prepared"]["rows"] == 569

    states = [step.state for step in step_results(machine, name)]
    assert states[:5] == [
        "StartRunRecord",
        "MultiPart?",
        "ListParts",
        "PartsListed?",
        "ValidateParts",
    ]
    assert "Validate" not in states
    executions = twin.client("stepfunctions").list_executions(stateMachineArn=machine)
    started = {e["name"] for e in executions["executions"]}
    assert name in started
    part_runs = {execution_name(DATASET, version) for version in uploaded.values()}
    assert started & part_runs == set(), "parts start no run"
