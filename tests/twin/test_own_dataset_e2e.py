"""A user's own dataset end to end on the twin, through the CLI only.

Given the `local` stacks on the twin and scikit-learn's wine data (3 classes, not the example
dataset) as a CSV, a contract proposed by `driftline contracts infer` and a model config,
when the user runs `driftline upload --wait`, then the run trains and registers a `wine` model
and the command exits as its verdict says; `driftline runs logs` shows that run's Prepare lines
and `driftline runs rerun --wait` trains again on the same accepted version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from driftline.cli import main
from tests.twin.conftest import RunningTwin

pytestmark = [pytest.mark.twin, pytest.mark.slow]

MODEL_CONFIG = """\
task: classification
target: target
estimator:
  class_path: sklearn.ensemble.HistGradientBoostingClassifier
  params: {max_iter: 60, learning_rate: 0.1, early_stopping: false}
metrics: [accuracy, f1]
split: {test_fraction: 0.25, validation_fraction: 0.1, seed: 3}
gate:
  thresholds: {accuracy: 0.8}
"""
TIMEOUT = "300"
STEPS = ["Validate", "Prepare", "Train", "Evaluate", "Gate", "Register", "Deploy"]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame.columns = [str(name).replace("/", "_") for name in frame.columns]
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    frame.to_csv(path, index=False)
    return path


def check_verdict(document: dict[str, Any], code: int) -> None:
    """Registered; deployed or not is the Deploy step's call, and the exit code follows it."""
    assert document["status"] == "SUCCEEDED", document["reason"]
    assert document["registered"]["model"] == "wine"
    assert [step["step"] for step in document["steps"]][: len(STEPS)] == STEPS
    assert document["verdict"] in ("deployed", "not_deployed")
    assert code == (0 if document["verdict"] == "deployed" else 1)
    assert document["deployment"]["status"] and document["reason"]


def test_upload_wait_logs_and_rerun_of_a_new_dataset(
    twin: RunningTwin, wine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, contract, _ = cli(capsys, "contracts", "infer", str(wine), "--dataset", "wine")
    assert code == 0
    (tmp_path / "wine.yaml").write_text(contract)
    (tmp_path / "wine-model.yaml").write_text(MODEL_CONFIG)

    code, out, err = cli(
        capsys,
        "upload",
        str(wine),
        "--dataset",
        "wine",
        "--contract",
        str(tmp_path / "wine.yaml"),
        "--model-config",
        str(tmp_path / "wine-model.yaml"),
        "--wait",
        "--timeout",
        TIMEOUT,
        "--json",
    )

    uploaded = json.loads(out)
    outcome = uploaded["outcome"]
    assert uploaded["run"] == f"wine-{uploaded['version_id']}" == outcome["run"]
    assert uploaded["key"] == "datasets/wine/wine.csv"
    assert uploaded["model_config"]["features_checked"] is True
    check_verdict(outcome, code)
    assert err.count("\n") == (0 if code == 0 else 1)
    run = uploaded["run"]

    code, out, _ = cli(capsys, "runs", "logs", run, "--step", "Prepare", "--json")
    lines = json.loads(out)
    assert code == 0
    assert {line["step"] for line in lines} == {"Prepare"}
    assert any(line["message"].startswith("START RequestId: ") for line in lines)
    assert any(
        "model config resolved" in line["message"] and "models/wine.yaml" in line["message"]
        for line in lines
    )

    code, out, _ = cli(capsys, "runs", "rerun", run, "--wait", "--timeout", TIMEOUT, "--json")
    rerun = json.loads(out)
    assert rerun["run"] == f"{run}-rerun-1"
    assert rerun["rerun_of"] == run
    assert rerun["input"]["version_id"] == uploaded["version_id"]
    check_verdict(rerun["outcome"], code)
    assert rerun["outcome"]["registered"]["version"] == outcome["registered"]["version"] + 1


def test_a_dataset_without_a_contract_names_the_key_to_upload(
    twin: RunningTwin, wine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = twin.outputs["DatasetsBucketName"]

    code, out, err = cli(
        capsys, "upload", str(wine), "--dataset", "grapes", "--wait", "--timeout", TIMEOUT
    )

    assert code == 1
    assert out.splitlines()[-1].startswith("run grapes-")
    assert err.startswith("driftline: run grapes-") and ": dataset rejected: " in err
    assert f"no contract for dataset 'grapes': upload s3://{bucket}/contracts/grapes.yaml" in err
    assert "asset." not in err and err.count("\n") == 1
