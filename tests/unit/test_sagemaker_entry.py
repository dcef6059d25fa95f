"""The SageMaker script-mode entry point, run the way a training job runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from pipelines.model_config import load_model_config
from pipelines.model_io import load_model
from pipelines.sagemaker_entry import MODEL_FILENAME, infer_contract_columns, main, read_dataset
from pipelines.training import run_training

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
HYPERPARAMETERS = {
    "dataset": "breast_cancer",
    "s3_version_id": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
    "manifest_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "code_version": "b460475",
    "created_at": "2026-11-29T21:00:00+00:00",
}


@pytest.fixture(autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def job(tmp_path: Path) -> dict[str, str]:
    """SageMaker's directory layout under tmp_path, with the dataset and config channels."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [name.lower().replace(" ", "_") for name in frame.columns]
    train = tmp_path / "input" / "data" / "train"
    config = tmp_path / "input" / "data" / "config"
    train.mkdir(parents=True)
    config.mkdir(parents=True)
    frame.to_csv(train / "breast_cancer.csv", index=False)
    shutil.copy(REPO / "models" / "breast_cancer.yaml", config / "breast_cancer.yaml")
    return {
        "SM_CHANNEL_TRAIN": str(train),
        "SM_CHANNEL_CONFIG": str(config),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output" / "data"),
        "SM_OUTPUT_DIR": str(tmp_path / "output"),
        "SM_HPS": json.dumps(HYPERPARAMETERS),
    }


def run_as_sagemaker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.sagemaker_entry"],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_training_job_writes_model_metrics_and_card_matching_the_lambda_functions(
    job: dict[str, str],
) -> None:
    result = run_as_sagemaker(job)
    assert result.returncode == 0, result.stderr

    output = Path(job["SM_OUTPUT_DATA_DIR"])
    metrics = json.loads((output / "metrics.json").read_text())
    card = (output / "model_card.md").read_text()
    assert (output / "evaluation.png").read_bytes().startswith(b"\x89PNG")
    assert HYPERPARAMETERS["s3_version_id"] in card
    assert HYPERPARAMETERS["manifest_sha256"] in card
    assert metrics["primary_metric"] == "roc_auc"
    assert metrics["metrics"]["test"]["roc_auc"] >= 0.95

    # The Lambda backend calls the same functions on the same data: same numbers, same model.
    frame = read_dataset(Path(job["SM_CHANNEL_TRAIN"]))
    contract = infer_contract_columns(frame)
    config = load_model_config(REPO / "models" / "breast_cancer.yaml", contract)
    in_process = run_training(frame, config, contract)
    assert metrics["metrics"] == in_process.evaluation.to_dict()["metrics"]

    loaded = load_model((Path(job["SM_MODEL_DIR"]) / MODEL_FILENAME).read_bytes())
    assert loaded.metadata.created_at == HYPERPARAMETERS["created_at"]
    assert loaded.metadata.lineage["code_version"] == HYPERPARAMETERS["code_version"]
    x = frame[loaded.metadata.features]
    np.testing.assert_array_equal(loaded.model.predict_proba(x), in_process.model.predict_proba(x))


def test_invalid_config_fails_the_job_with_a_one_line_failure_reason(
    job: dict[str, str],
) -> None:
    config_file = Path(job["SM_CHANNEL_CONFIG"]) / "breast_cancer.yaml"
    config_file.write_text(config_file.read_text().replace("[roc_auc,", "[gini,"))

    assert main([], job) == 1
    failure = (Path(job["SM_OUTPUT_DIR"]) / "failure").read_text()
    assert failure.count("\n") == 1
    assert "breast_cancer.yaml: key 'metrics[0]': unknown metric 'gini'" in failure
    assert not (Path(job["SM_MODEL_DIR"]) / MODEL_FILENAME).exists()


def test_config_and_contract_can_come_as_hyperparameters(job: dict[str, str]) -> None:
    columns = pd.read_csv(Path(job["SM_CHANNEL_TRAIN"]) / "breast_cancer.csv", nrows=1).columns
    contract = {name: ("int" if name == "target" else "float") for name in columns}
    hyperparameters = {
        **HYPERPARAMETERS,
        "model_config": "task: classification\ntarget: target\n"
        "features: [mean_radius, worst_concave_points]\n"
        "estimator: {params: {max_iter: 30}}\n",
        "contract_columns": json.dumps(contract),
    }
    env = {key: value for key, value in job.items() if key != "SM_CHANNEL_CONFIG"}
    env["SM_HPS"] = json.dumps(hyperparameters)

    assert main(["--code_version", "cli-wins"], env) == 0
    metadata = json.loads((Path(job["SM_OUTPUT_DATA_DIR"]) / "metadata.json").read_text())
    assert metadata["features"] == ["mean_radius", "worst_concave_points"]
    assert metadata["lineage"]["code_version"] == "cli-wins"


def test_missing_training_channel_is_an_environment_error(
    job: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    env = {key: value for key, value in job.items() if key != "SM_CHANNEL_TRAIN"}
    assert main([], env) == 2
    assert "SM_CHANNEL_TRAIN is not set" in capsys.readouterr().err
