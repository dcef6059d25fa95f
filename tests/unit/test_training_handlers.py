"""The training handlers run for real, in sequence, against moto: state in, state out.

Each test passes the state along exactly as the state machine does (every LambdaInvoke puts the
handler's return value at its result path; a Catch puts `{"Error", "Cause"}` at `$.error`), so
the handlers are exercised as glue over real S3 objects and DynamoDB items.
"""

from __future__ import annotations

import io
import json
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from functions.evaluate import handler as evaluate
from functions.gate import handler as gate
from functions.prepare import handler as prepare
from functions.record_outcome import handler as record_outcome
from functions.register import handler as register
from functions.shared import clients
from functions.shared.endpoints import EndpointRegistry
from functions.shared.errors import TransientError
from functions.shared.registry import ModelRegistry, RunRegistry
from functions.shared.settings import SettingsError, get_settings
from functions.train import handler as train
from pipelines.model_config import ModelConfigError
from pipelines.model_io import load_model
from pipelines.training import TrainingError
from tests.unit.conftest import (
    ARTIFACTS,
    DATASETS,
    ENDPOINTS,
    GIT_SHA,
    LAMBDA_CONTEXT,
    MODELS,
    RUNS,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DATASET = "breast_cancer"
CONFIG_BASE = "task: classification\ntarget: target\n"
# The default estimator with fewer boosting rounds: the same code paths, a fraction of the time.
FAST_CONFIG = CONFIG_BASE + "estimator: {params: {max_iter: 30}}\n"


@cache
def breast_cancer_csv() -> bytes:
    example = REPO / "examples" / "breast_cancer.csv"
    if example.is_file():
        return example.read_bytes()
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [name.lower().replace(" ", "_") for name in frame.columns]
    text: str = frame.to_csv(index=False)
    return text.encode()


def contract_of(frame: pd.DataFrame) -> dict[str, str]:
    return {name: ("int" if name == "target" else "float") for name in frame.columns}


def upload(data: bytes, key: str = f"datasets/{DATASET}/upload.csv") -> str:
    return str(boto3.client("s3").put_object(Bucket=DATASETS, Key=key, Body=data)["VersionId"])


def put_override(yaml_text: str) -> None:
    boto3.client("s3").put_object(Bucket=DATASETS, Key=f"models/{DATASET}.yaml", Body=yaml_text)


def start_state(
    data: bytes, run_id: str, *, key: str = f"datasets/{DATASET}/upload.csv"
) -> dict[str, Any]:
    """The state after StartRunRecord and an accepted Validate."""
    version_id = upload(data, key)
    frame = pd.read_csv(io.BytesIO(data), compression="gzip" if key.endswith(".gz") else None)
    started = f"2026-11-29T10:00:{len(run_id):02d}.000Z"
    return {
        "dataset": DATASET,
        "bucket": DATASETS,
        "key": key,
        "version_id": version_id,
        "trigger": "upload",
        "requested_at": "2026-11-29T09:59:59Z",
        "run": {
            "id": run_id,
            "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:training:{run_id}",
            "started_at": started,
        },
        "validation": {
            "status": "accepted",
            "dataset": DATASET,
            "version_id": version_id,
            "manifest_key": f"manifests/{DATASET}/{version_id}.json",
            "manifest_sha256": "ab" * 32,
            "columns": contract_of(frame),
            "rows": len(frame),
            "contract_hash": "cd" * 32,
            "key": key,
            "format": "csv.gz" if key.endswith(".gz") else "csv",
        },
    }


STEPS: list[tuple[str, Callable[[dict[str, Any], Any], Any]]] = [
    ("prepared", prepare.handler),
    ("trained", train.handler),
    ("evaluation", evaluate.handler),
    ("gate", gate.handler),
]


def as_lambda_error(error: Exception) -> dict[str, str]:
    """What a Catch puts at `$.error` for a Lambda that raised `error`."""
    cause = {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }
    return {"Error": type(error).__name__, "Cause": json.dumps(cause)}


def execute(state: dict[str, Any], *, goes_live: bool = True) -> dict[str, Any]:
    """Prepare → Train → Evaluate → Gate → (Register → Deploy) → RecordOutcome, like the state
    machine; the deploy only records what the endpoint serves (`goes_live=False`: rolled back)."""
    state = json.loads(json.dumps(state))
    try:
        for result_path, step in STEPS:
            state[result_path] = json.loads(json.dumps(step(state, LAMBDA_CONTEXT)))
        if state["gate"]["passed"]:
            state["registered"] = json.loads(json.dumps(register.handler(state, LAMBDA_CONTEXT)))
            if state["registered"]["status"] == "Approved":
                serve(state["registered"], live=goes_live)
    except Exception as error:
        state["error"] = as_lambda_error(error)
        state["raised"] = error
    outcome_state = {k: v for k, v in state.items() if k != "raised"}
    state["outcome"] = record_outcome.handler(outcome_state, LAMBDA_CONTEXT)
    return state


def serve(registered: dict[str, Any], *, live: bool = True) -> None:
    """Record a deploy of the registered version as the deploy step does: `current` (what the
    endpoint serves, hence the champion) only when it went live, else a RolledBack history."""
    EndpointRegistry(boto3.client("dynamodb"), ENDPOINTS).record(
        {
            "env": "local",
            "model": registered["model"],
            "action": "deploy",
            "status": "Succeeded" if live else "RolledBack",
            "model_version": registered["version"],
            "model_key": registered["model_key"],
            "deployed_by": "test",
        },
        becomes_current=live,
    )


def run_item(run_id: str) -> dict[str, Any]:
    return RunRegistry(boto3.client("dynamodb"), RUNS).require_run(run_id)


def model_versions() -> list[dict[str, Any]]:
    return list(ModelRegistry(boto3.client("dynamodb"), MODELS).versions(DATASET))


def artifact_keys(prefix: str) -> set[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=ARTIFACTS, Prefix=prefix)
    return {item["Key"] for item in listing.get("Contents", [])}


# --- the whole loop -------------------------------------------------------------------------


@pytest.mark.slow  # the packaged config's 200 boosting rounds, and the first-use imports
def test_a_good_upload_is_trained_gated_registered_approved_and_recorded(
    pipeline_aws: None,
) -> None:
    state = execute(start_state(breast_cancer_csv(), "run-1"))

    assert "error" not in state, state.get("error")
    prepared = state["prepared"]
    assert prepared["split"] == {"train": 341, "validation": 114, "test": 114}
    assert prepared["config_source"] == f"models/{DATASET}.yaml"
    assert set(state["evaluation"]["metrics"]) == {"roc_auc", "accuracy", "f1"}
    assert state["evaluation"]["champion_metrics"] is None
    assert state["gate"]["passed"] is True
    assert state["registered"] == {
        "model": DATASET,
        "version": 1,
        "status": "Approved",
        "model_key": f"models/{DATASET}/v1/model.zip",
    }
    assert state["outcome"]["status"] == "Succeeded"
    # These handlers run without the Serving stack's Deploy step: nothing served the model.
    assert state["outcome"]["cause"] == (
        f"registered {DATASET} v1 (Approved); not deployed: "
        "the Deploy step did not report a deployment"
    )
    assert state["outcome"]["subject"] == "Driftline model registered, NOT deployed"
    assert "run-1" in state["outcome"]["message"]
    assert "roc_auc" in state["outcome"]["message"]

    assert artifact_keys("runs/run-1/") == {
        f"runs/run-1/{name}"
        for name in (
            "dataset.parquet",
            "model_config.yaml",
            "model.zip",
            "metrics.json",
            "evaluation.png",
            "model_card.md",
        )
    }
    assert artifact_keys(f"models/{DATASET}/v1/") == {
        f"models/{DATASET}/v1/{name}"
        for name in ("model.zip", "metrics.json", "evaluation.png", "model_card.md")
    }

    run = run_item("run-1")
    assert run["status"] == "Succeeded"
    assert run["dataset_version_id"] == state["version_id"]
    assert run["manifest_sha256"] == "ab" * 32
    assert run["code_version"] == GIT_SHA
    assert run["params"]["estimator"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert run["params"]["split"]["seed"] == 42
    assert set(run["metrics"]) == {"train", "validation", "test"}
    assert run["gate"]["passed"] is True
    assert run["model_version"] == 1
    assert run["finished_at"] > run["started_at"]
    for step in ("prepare", "train", "evaluate", "gate", "register"):
        assert run[f"duration_{step}"] >= 0
    assert run["artifacts"]["model"] == "runs/run-1/model.zip"

    (version,) = model_versions()
    assert version["status"] == "Approved"
    assert version["lineage"] == {
        "dataset": DATASET,
        "s3_version_id": state["version_id"],
        "manifest_sha256": "ab" * 32,
        "code_version": GIT_SHA,
        "run_id": "run-1",
        "execution_arn": state["run"]["execution_arn"],
    }
    archive = boto3.client("s3").get_object(Bucket=ARTIFACTS, Key=version["model_key"])
    loaded = load_model(archive["Body"].read())
    assert loaded.metadata.lineage["s3_version_id"] == state["version_id"]
    card = boto3.client("s3").get_object(Bucket=ARTIFACTS, Key="runs/run-1/model_card.md")
    assert "Gate **passed** with no champion" in card["Body"].read().decode()
    metrics = json.loads(
        boto3.client("s3")
        .get_object(Bucket=ARTIFACTS, Key="runs/run-1/metrics.json")["Body"]
        .read()
    )
    assert metrics["gate"]["passed"] is True
    assert metrics["champion"]["version"] is None


def test_prepare_reads_the_validated_version_not_the_latest_object(pipeline_aws: None) -> None:
    data = breast_cancer_csv()
    state = start_state(data, "run-pinned")
    # The same key is overwritten after validation with a one-class file.
    frame = pd.read_csv(io.BytesIO(data)).assign(target=1)
    upload(frame.to_csv(index=False).encode())

    prepared = prepare.handler(state, LAMBDA_CONTEXT)

    assert prepared["rows"] == 569


def test_gzipped_csv_uploads_are_prepared(pipeline_aws: None) -> None:
    import gzip

    state = start_state(
        gzip.compress(breast_cancer_csv()), "run-gz", key=f"datasets/{DATASET}/upload.csv.gz"
    )
    assert prepare.handler(state, LAMBDA_CONTEXT)["rows"] == 569


def test_manual_policy_registers_pending_approval_and_tells_how_to_approve(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_APPROVAL_POLICY", "manual")
    get_settings.cache_clear()
    put_override(FAST_CONFIG)

    state = execute(start_state(breast_cancer_csv(), "run-manual"))

    assert state["registered"]["status"] == "PendingApproval"
    assert f"driftline models approve {DATASET} --version 1" in state["outcome"]["message"]
    assert model_versions()[0]["status"] == "PendingApproval"


# --- bad input and faults -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "names"),
    [
        (
            CONFIG_BASE + "estimator: {class_path: sklearn.ensemble.NoSuchForest}\n",
            ["estimator.class_path", "NoSuchForest"],
        ),
        ("task: classification\ntarget: diagnosis\n", ["key 'target'", "'diagnosis'"]),
        (CONFIG_BASE + "metrics: [roc_auc, balanced_gini]\n", ["metrics[1]", "balanced_gini"]),
    ],
    ids=["unknown-estimator", "target-not-in-contract", "unknown-metric"],
)
def test_an_invalid_model_config_fails_prepare_with_one_line_before_training(
    pipeline_aws: None, override: str, names: list[str]
) -> None:
    put_override(override)
    state = start_state(breast_cancer_csv(), "run-badconfig")

    with pytest.raises(ModelConfigError) as raised:
        prepare.handler(state, LAMBDA_CONTEXT)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"s3://{DATASETS}/models/{DATASET}.yaml")
    for name in names:
        assert name in message
    assert artifact_keys("runs/run-badconfig/") == set()


@pytest.mark.parametrize(
    ("mutate", "cause"),
    [
        (lambda frame: frame.assign(target=1), "has only one class"),
        (lambda frame: frame.assign(mean_radius=float("nan")), "'mean_radius' is null in every"),
    ],
    ids=["one-class", "all-null-feature"],
)
def test_untrainable_data_fails_the_run_with_its_cause_and_registers_nothing(
    pipeline_aws: None, mutate: Callable[[pd.DataFrame], pd.DataFrame], cause: str
) -> None:
    frame = mutate(pd.read_csv(io.BytesIO(breast_cancer_csv())))
    state = start_state(frame.to_csv(index=False).encode(), "run-untrainable")

    state = execute(state)

    assert isinstance(state["raised"], TrainingError)
    assert state["outcome"]["status"] == "Failed"
    assert state["outcome"]["cause"].startswith("Prepare failed: TrainingError: ")
    assert cause in state["outcome"]["cause"]
    run = run_item("run-untrainable")
    assert run["status"] == "Failed"
    assert run["failed_step"] == "Prepare"
    assert cause in run["cause"]
    assert model_versions() == []
    assert artifact_keys(f"models/{DATASET}/") == set()


def test_a_worse_challenger_fails_the_gate_naming_the_metric_and_is_not_registered(
    pipeline_aws: None,
) -> None:
    put_override(FAST_CONFIG)
    champion = execute(start_state(breast_cancer_csv(), "run-champion"))
    assert champion["registered"]["version"] == 1
    put_override(
        CONFIG_BASE
        + "estimator: {class_path: sklearn.dummy.DummyClassifier}\n"
        + "metrics: [roc_auc, accuracy]\n"
        + "gate: {max_regression: {roc_auc: 0.01}}\n"
    )

    challenger = execute(start_state(breast_cancer_csv(), "run-challenger"))

    evaluation = challenger["evaluation"]
    assert evaluation["champion_version"] == 1
    assert evaluation["champion_metrics"]["roc_auc"] > 0.95
    assert evaluation["metrics"]["roc_auc"] == pytest.approx(0.5)
    assert challenger["gate"]["passed"] is False
    assert "registered" not in challenger
    (reason,) = challenger["gate"]["reasons"]
    assert reason.startswith("roc_auc 0.5000 is ")
    assert "worse than champion" in reason
    assert challenger["outcome"]["status"] == "Rejected"
    assert "roc_auc" in challenger["outcome"]["cause"]
    assert run_item("run-challenger")["status"] == "Rejected"
    assert [v["version"] for v in model_versions()] == [1]


# --- the challenger is scored once per run ---------------------------------------------------


def count_scoring(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count predict/predict_proba calls on every HistGradientBoostingClassifier from now on."""
    from sklearn.ensemble import HistGradientBoostingClassifier as Estimator

    calls = {"predict": 0, "predict_proba": 0}
    for name in calls:
        original = getattr(Estimator, name)

        def counted(self: Any, x: Any, _name: str = name, _original: Any = original) -> Any:
            calls[_name] += 1
            return _original(self, x)

        monkeypatch.setattr(Estimator, name, counted)
    return calls


def record_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The S3 keys every handler reads from now on (all reads go through storage._get)."""
    from functions.shared import storage

    keys: list[str] = []
    original = storage._get

    def recorded(bucket: str, key: str, version_id: str | None) -> Any:
        keys.append(key)
        return original(bucket, key, version_id)

    monkeypatch.setattr(storage, "_get", recorded)
    return keys


def test_the_challenger_is_scored_once_and_gate_reads_neither_data_nor_model(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_override(FAST_CONFIG)
    calls = count_scoring(monkeypatch)
    reads = record_reads(monkeypatch)
    state = start_state(breast_cancer_csv(), "run-once")
    for result_path, step in STEPS[:2]:  # Prepare, Train
        state[result_path] = json.loads(json.dumps(step(state, LAMBDA_CONTEXT)))
    model_key, dataset_key = state["trained"]["model_key"], state["prepared"]["dataset_key"]
    reads.clear()

    state["evaluation"] = json.loads(json.dumps(evaluate.handler(state, LAMBDA_CONTEXT)))
    evaluate_reads = list(reads)
    reads.clear()
    state["gate"] = json.loads(json.dumps(gate.handler(state, LAMBDA_CONTEXT)))

    assert calls == {"predict": 0, "predict_proba": 3}  # one per split, all in Train
    assert evaluate_reads == [state["trained"]["metrics_key"]]  # no champion: nothing else
    assert model_key not in reads and dataset_key not in reads, reads
    archive = boto3.client("s3").get_object(Bucket=ARTIFACTS, Key=model_key)["Body"].read()
    assert state["evaluation"]["metrics"] == load_model(archive).metadata.metrics["test"]
    assert state["gate"]["passed"] is True
    card = boto3.client("s3").get_object(Bucket=ARTIFACTS, Key="runs/run-once/model_card.md")
    text = card["Body"].read().decode()
    assert "Confusion matrix on the test split" in text and "| roc_auc (primary) |" in text
    assert "| features | 30 |" in text
    run = run_item("run-once")
    assert run["metrics"]["test"] == state["evaluation"]["metrics"]
    assert run["artifacts"]["plot"] == state["trained"]["plot_key"]


def test_a_challenger_its_training_step_did_not_score_is_scored_by_evaluate_once(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SageMaker backend's collector returns only the model: Evaluate scores it, once."""
    put_override(FAST_CONFIG)
    state = start_state(breast_cancer_csv(), "run-collected")
    for result_path, step in STEPS[:2]:
        state[result_path] = json.loads(json.dumps(step(state, LAMBDA_CONTEXT)))
    scored_in_train = json.loads(
        boto3.client("s3")
        .get_object(Bucket=ARTIFACTS, Key=state["trained"]["metrics_key"])["Body"]
        .read()
    )
    for key in (state["trained"]["metrics_key"], state["trained"]["plot_key"]):
        boto3.client("s3").delete_object(Bucket=ARTIFACTS, Key=key)
    state["trained"] = {
        "model_key": state["trained"]["model_key"],
        "sklearn_version": state["trained"]["sklearn_version"],
    }
    calls = count_scoring(monkeypatch)

    state["evaluation"] = json.loads(json.dumps(evaluate.handler(state, LAMBDA_CONTEXT)))
    state["gate"] = json.loads(json.dumps(gate.handler(state, LAMBDA_CONTEXT)))

    assert calls == {"predict": 0, "predict_proba": 3}
    assert state["evaluation"]["metrics"] == scored_in_train["metrics"]["test"]
    assert artifact_keys("runs/run-collected/") >= {
        "runs/run-collected/metrics.json",
        "runs/run-collected/evaluation.png",
        "runs/run-collected/model_card.md",
    }
    assert state["gate"]["passed"] is True


def clone_gated_run(state: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Another run of the same data that reached Register: its artifacts, record and state."""
    source = state["run"]["id"]
    s3 = boto3.client("s3")
    for key in artifact_keys(f"runs/{source}/"):
        s3.copy_object(
            Bucket=ARTIFACTS,
            Key=key.replace(source, run_id),
            CopySource={"Bucket": ARTIFACTS, "Key": key},
        )
    kept = {k: v for k, v in state.items() if k not in SKIP_IN_CLONE}
    clone: dict[str, Any] = json.loads(json.dumps(kept))
    clone["run"]["id"] = run_id
    clone["prepared"]["config_key"] = clone["prepared"]["config_key"].replace(source, run_id)
    RunRegistry(boto3.client("dynamodb"), RUNS).upsert_run(
        run_id, {"dataset": DATASET, "started_at": clone["run"]["started_at"]}
    )
    return clone


SKIP_IN_CLONE = ("registered", "outcome", "raised")


def test_concurrent_registrations_get_consecutive_versions_and_retries_add_none(
    pipeline_aws: None, atomic_items: None
) -> None:
    put_override(FAST_CONFIG)
    state = execute(start_state(breast_cancer_csv(), "run-a"))
    assert state["registered"]["version"] == 1
    clones = [clone_gated_run(state, run_id) for run_id in ("run-b", "run-c")]
    results: dict[str, Any] = {}
    barrier = threading.Barrier(len(clones))

    def register_one(clone: dict[str, Any]) -> None:
        barrier.wait()
        try:
            results[clone["run"]["id"]] = register.handler(clone, LAMBDA_CONTEXT)
        except Exception as error:  # reported by the assertions below
            results[clone["run"]["id"]] = error

    threads = [threading.Thread(target=register_one, args=(clone,)) for clone in clones]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(result["version"] for result in results.values()) == [2, 3], results
    registered = {v["version"]: v["run_id"] for v in model_versions()}
    assert registered == {1: "run-a", **{r["version"]: run for run, r in results.items()}}
    for result in results.values():
        assert len(artifact_keys(f"models/{DATASET}/v{result['version']}/")) == 4

    # A retried Register (TransientError after the version was written) adds nothing.
    assert register.handler(clones[0], LAMBDA_CONTEXT) == results[clones[0]["run"]["id"]]
    assert len(model_versions()) == 3


def test_record_outcome_creates_the_run_when_validate_failed_before_prepare(
    pipeline_aws: None,
) -> None:
    state = start_state(breast_cancer_csv(), "run-novalidation")
    del state["validation"]
    state["error"] = {
        "Error": "States.TaskFailed",
        "Cause": json.dumps(
            {
                "errorMessage": "contract for 'breast_cancer' not found\nmore detail",
                "errorType": "ContractError",
                "stackTrace": ["  File handler.py, line 1"],
            }
        ),
    }

    outcome = record_outcome.handler(state, LAMBDA_CONTEXT)

    assert outcome["status"] == "Failed"
    assert outcome["cause"] == (
        "Validate failed: ContractError: contract for 'breast_cancer' not found"
    )
    assert "stackTrace" not in outcome["message"]
    run = run_item("run-novalidation")
    assert run["status"] == "Failed"
    assert run["dataset"] == DATASET
    assert run["dataset_version_id"] == state["version_id"]
    assert run["code_version"] == GIT_SHA
    assert run["failed_step"] == "Validate"


def _registered_state(run_id: str, deployment: dict[str, Any]) -> dict[str, Any]:
    state = start_state(breast_cancer_csv(), run_id)
    state["registered"] = {
        "model": DATASET,
        "version": 4,
        "status": "PendingApproval",
        "model_key": f"models/{DATASET}/v4/model.zip",
    }
    state["deployment"] = deployment
    return state


def test_a_registered_run_whose_deploy_was_refused_says_so_everywhere(pipeline_aws: None) -> None:
    """Given Deploy refused the version, the run record, subject and message name the reason."""
    refusal = {
        "Error": "DeploymentRefused",
        "Cause": json.dumps(
            {
                "errorType": "DeploymentRefused",
                "errorMessage": f"model {DATASET} version 4 is PendingApproval, not Approved",
            }
        ),
    }

    outcome = record_outcome.handler(_registered_state("run-refused", refusal), LAMBDA_CONTEXT)

    assert outcome["status"] == "Succeeded"
    assert outcome["subject"] == "Driftline model registered, NOT deployed"
    assert f"NOT deployed: model {DATASET} version 4 is PendingApproval" in outcome["message"]
    run = run_item("run-refused")
    assert run["deployment_status"] == "NotDeployed"
    assert run["deployment_reason"] == f"model {DATASET} version 4 is PendingApproval, not Approved"


def test_a_deployed_run_names_the_endpoint_that_serves_it(pipeline_aws: None) -> None:
    deployed = {"status": "Succeeded", "endpoint": "shared", "model": DATASET, "model_version": 4}

    outcome = record_outcome.handler(_registered_state("run-deployed", deployed), LAMBDA_CONTEXT)

    assert outcome["subject"] == "Driftline model registered and deployed"
    assert f"Deployed: {DATASET} v4 serves on the shared endpoint" in outcome["message"]
    run = run_item("run-deployed")
    assert (run["deployment_status"], run["endpoint"]) == ("Deployed", "shared")


def test_record_outcome_keeps_a_plain_text_cause_such_as_a_timeout(pipeline_aws: None) -> None:
    state = start_state(breast_cancer_csv(), "run-timeout")
    state["error"] = {"Error": "States.Timeout", "Cause": "Task timed out after 900 seconds"}

    outcome = record_outcome.handler(state, LAMBDA_CONTEXT)

    assert outcome["cause"] == "Prepare failed: States.Timeout: Task timed out after 900 seconds"


def test_throttled_s3_reads_raise_transient_error_for_the_state_machine_to_retry(
    pipeline_aws: None,
) -> None:
    state = start_state(breast_cancer_csv(), "run-throttled")

    @dataclass
    class Throttled:
        status_code: int = 503
        headers: dict[str, str] | None = None

    def throttle(**_: Any) -> tuple[Throttled, dict[str, Any]]:
        return Throttled(headers={}), {
            "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
            "ResponseMetadata": {"HTTPStatusCode": 503},
        }

    events = clients.client("s3").meta.events
    events.register("before-call.s3.GetObject", throttle)
    try:
        with pytest.raises(TransientError, match="SlowDown"):
            prepare.handler(state, LAMBDA_CONTEXT)
    finally:
        events.unregister("before-call.s3.GetObject", throttle)


def test_missing_setting_is_one_line_naming_the_variable(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTLINE_RUNS_TABLE")
    get_settings.cache_clear()

    with pytest.raises(
        SettingsError, match=r"^environment variable DRIFTLINE_RUNS_TABLE is not set$"
    ):
        get_settings()


def test_a_malformed_state_names_the_missing_field(pipeline_aws: None) -> None:
    state = start_state(breast_cancer_csv(), "run-malformed")
    del state["validation"]["columns"]

    with pytest.raises(ValueError, match=r"state field \$\.validation\.columns"):
        prepare.handler(state, LAMBDA_CONTEXT)


def test_a_run_deployed_to_a_dedicated_endpoint_says_so_in_plain_words(pipeline_aws: None) -> None:
    deployed = {"status": "Succeeded", "model": DATASET, "model_version": 4}  # no "endpoint"

    outcome = record_outcome.handler(_registered_state("run-dedicated", deployed), LAMBDA_CONTEXT)

    assert f"Deployed: {DATASET} v4 serves on its dedicated endpoint" in outcome["message"]
