"""The monitoring handlers run for real against moto in-process: events in, S3/SNS/EMF out.

A small model is trained once per session (a real skops archive, so the drift monitor builds
its baseline exactly as deployed); each test registers it as version 1 of model `toy`,
deploys it in the Endpoints table and writes capture objects the way the inference function
does. EMF metrics are read back from stdout with the twin's own EMF parser.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.twin.adapters import emf_metric_data
from functions.drift_monitor import baseline
from functions.drift_monitor import handler as drift_monitor
from functions.drift_notifier import handler as drift_notifier
from functions.feedback import handler as feedback
from functions.retrain import handler as retrain
from functions.shared import clients
from functions.shared import settings as settings_module
from functions.shared.datasets import DatasetRegistry
from functions.shared.endpoints import EndpointRegistry
from functions.shared.registry import ModelRegistry
from pipelines.model_config import parse_model_config
from pipelines.model_io import DataLineage, dump_model, metadata_for_run
from pipelines.training import run_training
from tests.unit.conftest import LAMBDA_CONTEXT, buckets, moto_account, registry_tables

pytestmark = pytest.mark.unit

MODEL, RUN_ID = "toy", "toy-v1run"
ARTIFACTS, DATASETS = "mon-artifacts", "mon-datasets"
RUNS, MODELS, ENDPOINTS, DATASETS_TABLE = "mon-runs", "mon-models", "mon-endpoints", "mon-ds"
ACCOUNT, REGION = "123456789012", "us-east-1"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:training"
CONTRACT = {"x1": "float", "x2": "float", "color": "string", "const": "float", "target": "int"}
TOY_CONFIG = """
task: classification
target: target
estimator: {class_path: sklearn.linear_model.LogisticRegression}
metrics: [roc_auc, accuracy, f1]
gate: {thresholds: {roc_auc: 0.9, accuracy: 0.8}}
"""


def toy_frame(n: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(shift, 1.0, n),
            "x2": rng.normal(5.0, 2.0, n),
            "color": rng.choice(["red", "green", "blue"], n),
            "const": np.ones(n),
        }
    )
    frame["target"] = ((frame["x1"] + 0.3 * rng.normal(size=n)) > 0).astype(int)
    return frame


@cache
def trained() -> tuple[pd.DataFrame, bytes, Any]:
    """(training frame, registry archive, fitted model) of the toy model, built once."""
    frame = toy_frame(600, seed=3)
    run = run_training(frame, parse_model_config(TOY_CONFIG, source="toy.yaml"), CONTRACT)
    lineage = DataLineage(
        dataset=MODEL, s3_version_id="v1", manifest_sha256="0" * 64, code_version="t"
    )
    metadata = metadata_for_run(run, created_at="2026-11-29T00:00:00Z", lineage=lineage)
    return frame, dump_model(run.model, metadata), run.model


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    variables = {
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "driftline",
        "DRIFTLINE_ENV": "local",
        "DRIFTLINE_ARTIFACTS_BUCKET": ARTIFACTS,
        "DRIFTLINE_DATASETS_BUCKET": DATASETS,
        "DRIFTLINE_ALERTS_TOPIC_ARN": TOPIC_ARN,
        "DRIFTLINE_RUNS_TABLE": RUNS,
        "DRIFTLINE_MODELS_TABLE": MODELS,
        "DRIFTLINE_ENDPOINTS_TABLE": ENDPOINTS,
        "DRIFTLINE_DATASETS_TABLE": DATASETS_TABLE,
        "DRIFTLINE_STATE_MACHINE_ARN": STATE_MACHINE_ARN,
        "DRIFTLINE_MIN_SAMPLES": "100",
        "DRIFTLINE_CAPTURE_CHECK_INTERVAL_SECONDS": "60",
        "DRIFTLINE_FEEDBACK_MIN_SAMPLES": "20",
        "DRIFTLINE_RETRAIN_COOLDOWN_HOURS": "6",
    }
    for name in ("POWERTOOLS_DEV", "POWERTOOLS_METRICS_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    baseline.reset()
    with moto_account(monkeypatch, variables, keep_clients=True):
        buckets(ARTIFACTS, DATASETS)
        registry_tables(RUNS, MODELS, ENDPOINTS, DATASETS_TABLE)
        topic = clients.client("sns").create_topic(Name="alerts")["TopicArn"]
        queue = clients.client("sqs").create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = clients.client("sqs").get_queue_attributes(
            QueueUrl=queue, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        clients.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        clients.client("stepfunctions").create_state_machine(
            name="training",
            definition=json.dumps(
                {"StartAt": "Go", "States": {"Go": {"Type": "Pass", "End": True}}}
            ),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/training",
        )
        yield {"queue": queue}
    baseline.reset()


@pytest.fixture(autouse=True, scope="module")
def _module_clients() -> Iterator[None]:
    """Clients are reused across this module's tests (moto intercepts any client while a mock
    runs; creating them is most of a test's cost), and forgotten around it."""
    clients.reset()
    yield
    clients.reset()


@pytest.fixture
def deployed(aws: dict[str, Any]) -> dict[str, Any]:
    """Model toy v1 registered, its run's dataset snapshot stored, and deployed."""
    frame, archive, model = trained()
    s3 = clients.client("s3")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    s3.put_object(Bucket=ARTIFACTS, Key=f"runs/{RUN_ID}/dataset.parquet", Body=buffer.getvalue())
    s3.put_object(Bucket=ARTIFACTS, Key=f"models/{MODEL}/v1/model.zip", Body=archive)
    ModelRegistry(clients.client("dynamodb"), MODELS).put_version(
        {
            "model": MODEL,
            "version": 1,
            "status": "Approved",
            "run_id": RUN_ID,
            "model_key": f"models/{MODEL}/v1/model.zip",
            "lineage": {"dataset": MODEL, "s3_version_id": "v1", "run_id": RUN_ID},
        }
    )
    EndpointRegistry(clients.client("dynamodb"), ENDPOINTS).record(
        {"env": "local", "model": MODEL, "model_version": 1, "action": "deploy"},
        becomes_current=True,
    )
    return {**aws, "model": model}


def put_captures(
    frame: pd.DataFrame,
    predictions: list[Any],
    *,
    model: str = MODEL,
    rows_per_file: int = 50,
    version: int = 1,
    minutes_ago: float = 2,
    prefix: str = "req",
    probabilities: list[list[float]] | None = None,
) -> list[str]:
    """Write capture objects like the inference function: one object per request."""
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    request_ids = []
    s3 = clients.client("s3")
    features = frame.drop(columns=["target"], errors="ignore").to_dict(orient="records")
    for start in range(0, len(features), rows_per_file):
        request_id = f"{prefix}-{start:05d}"
        lines = []
        for offset, row in enumerate(features[start : start + rows_per_file]):
            record = {
                "request_id": request_id,
                "row": offset,
                "features": {k: None if _missing(v) else v for k, v in row.items()},
                "prediction": predictions[start + offset],
                "probabilities": (
                    dict(zip(["0", "1"], probabilities[start + offset], strict=True))
                    if probabilities is not None
                    else None
                ),
                "model": model,
                "model_version": version,
                "timestamp": stamp,
            }
            lines.append(json.dumps(record))
        key = f"captures/{model}/date={at:%Y-%m-%d}/hour={at:%H}/{request_id}.jsonl"
        s3.put_object(Bucket=ARTIFACTS, Key=key, Body="\n".join(lines) + "\n")
        request_ids.append(request_id)
    return request_ids


def _missing(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)


def served(model: Any, frame: pd.DataFrame) -> list[int]:
    x = frame[["x1", "x2", "color", "const"]]
    return [int(label) for label in model.predict(x)]


def put_served(model: Any, frame: pd.DataFrame, **options: Any) -> list[str]:
    """Traffic as the endpoint would capture it: each row of `frame` with `model`'s answer."""
    return put_captures(frame, served(model, frame), **options)


def emitted(stdout: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(metric, dimensions) → value for every EMF datapoint printed, via the twin's parser."""
    found = {}
    for line in stdout.splitlines():
        for namespace, data in emf_metric_data(line):
            assert namespace == "Driftline"
            for datum in data:
                dimensions = tuple(sorted((d["Name"], d["Value"]) for d in datum["Dimensions"]))
                found[(datum["MetricName"], dimensions)] = datum["Value"]
    return found


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    """The structured fields of each Powertools log record with `message`."""
    return [vars(record) for record in caplog.records if record.getMessage() == message]


def notifications(queue: str) -> list[dict[str, str]]:
    sqs = clients.client("sqs")
    found: list[dict[str, str]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            body = json.loads(message["Body"])
            found.append({"subject": body.get("Subject", ""), "message": body["Message"]})
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def get_json(key: str) -> Any:
    return json.loads(clients.client("s3").get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())


def keys(prefix: str) -> list[str]:
    listed = clients.client("s3").list_objects_v2(Bucket=ARTIFACTS, Prefix=prefix)
    return sorted(entry["Key"] for entry in listed.get("Contents", []))


MODEL_DIMS = (("Model", MODEL),)


# -- drift monitor ------------------------------------------------------------------------------


def test_scheduled_check_writes_reports_and_publishes_metrics_per_model_and_feature(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    current = toy_frame(300, seed=11, shift=2.0)
    put_served(deployed["model"], current)

    result = drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)

    (checked,) = result["checked"]
    assert checked["model"] == MODEL and checked["verdict"] == "drift"
    assert "x1" in checked["drifted_features"] and checked["samples"] == 300
    report_key = checked["report_key"]
    assert report_key.startswith(f"reports/drift/{MODEL}/") and report_key.endswith("Z.json")
    assert keys(f"reports/drift/{MODEL}/") == sorted(
        [report_key, checked["html_key"], f"reports/drift/{MODEL}/latest.json"]
    )
    document = get_json(report_key)
    assert document["report"]["features"]["x1"]["status"] == "drift"
    assert document["captures"] == {
        "files": 6,
        "corrupt_files": 0,
        "corrupt_keys": [],
        "rows": 300,
        "other_versions": 0,
        "outside_window": 0,
        "truncated": 0,
        "files_not_read": 0,
    }
    latest = get_json(f"reports/drift/{MODEL}/latest.json")
    assert latest["report_key"] == report_key and latest["verdict"] == "drift"
    html = clients.client("s3").get_object(Bucket=ARTIFACTS, Key=checked["html_key"])
    assert html["ContentType"].startswith("text/html")
    assert keys(f"monitoring/baselines/{MODEL}/") == [
        f"monitoring/baselines/{MODEL}/v1.json",
        f"monitoring/baselines/{MODEL}/v1.parquet",
    ]

    metrics = emitted(capsys.readouterr().out)
    assert metrics[("DriftSamples", MODEL_DIMS)] == 300
    assert metrics[("MaxFeaturePSI", MODEL_DIMS)] > 0.2
    assert (
        metrics[("MaxFeaturePSI", MODEL_DIMS)]
        == metrics[("FeaturePSI", (("Feature", "x1"), ("Model", MODEL)))]
    )
    assert metrics[("DriftedShare", MODEL_DIMS)] == document["report"]["drifted_share"]
    assert ("PredictionPSI", MODEL_DIMS) in metrics
    features = {dims[0][1] for name, dims in metrics if name == "FeaturePSI"}
    assert features == {"x1", "x2", "color", "const"}


def test_traffic_like_training_is_no_drift_and_the_cached_baseline_is_reused(
    deployed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    current = toy_frame(300, seed=12)
    put_served(deployed["model"], current)
    drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)
    baseline.reset()  # a cold start: the baseline now comes from S3, not from the model

    result = drift_monitor.handler({"trigger": "manual", "model": MODEL}, LAMBDA_CONTEXT)

    assert result["checked"][0]["verdict"] == "no_drift"
    stdout = capsys.readouterr().out
    assert len(logged(caplog, "baseline built")) == 1
    assert emitted(stdout)[("MaxFeaturePSI", MODEL_DIMS)] < 0.2


def test_too_little_traffic_publishes_drift_samples_only(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    current = toy_frame(40, seed=13, shift=3.0)
    put_served(deployed["model"], current)

    result = drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)

    assert result["checked"][0]["verdict"] == "insufficient_data"
    assert emitted(capsys.readouterr().out) == {("DriftSamples", MODEL_DIMS): 40.0}
    assert get_json(result["checked"][0]["report_key"])["metrics"]["published"] is False


def test_corrupt_capture_files_are_skipped_counted_and_logged(
    deployed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    current = toy_frame(200, seed=14)
    put_served(deployed["model"], current)
    at = datetime.now(UTC)
    folder = f"captures/{MODEL}/date={at:%Y-%m-%d}/hour={at:%H}"
    s3 = clients.client("s3")
    s3.put_object(Bucket=ARTIFACTS, Key=f"{folder}/broken.jsonl", Body=b'{"request_id": "x", ')
    s3.put_object(Bucket=ARTIFACTS, Key=f"{folder}/binary.jsonl", Body=b"\xff\xfe\x00")

    result = drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)

    (checked,) = result["checked"]
    assert checked["corrupt_captures"] == 2 and checked["samples"] == 200
    stdout = capsys.readouterr().out
    assert emitted(stdout)[("CorruptCaptures", MODEL_DIMS)] == 2
    problems = {line["key"]: line["problem"] for line in logged(caplog, "corrupt capture skipped")}
    assert f"{folder}/broken.jsonl line 1: not JSON (" in problems[f"{folder}/broken.jsonl"]
    assert problems[f"{folder}/binary.jsonl"].endswith("not UTF-8 text")
    assert get_json(checked["report_key"])["captures"]["corrupt_files"] == 2


def test_captures_for_an_unknown_model_are_skipped_with_a_log_line(
    deployed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    put_captures(toy_frame(10, seed=15), [0] * 10, model="ghost")
    key = keys("captures/ghost/")[0]

    result = drift_monitor.handler({"trigger": "capture", "key": key}, LAMBDA_CONTEXT)

    assert result["checked"] == []
    assert result["skipped"] == [
        {"model": "ghost", "reason": "no deployed version (unknown model)"}
    ]
    stdout = capsys.readouterr().out
    assert [line["model"] for line in logged(caplog, "captures for an unknown model skipped")] == [
        "ghost"
    ]
    assert emitted(stdout) == {} and keys("reports/") == []


def test_missing_all_null_and_constant_features_are_judged_not_crashed_on(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    current = toy_frame(300, seed=16).drop(columns=["color"])  # never sent: missing
    current["x2"] = np.nan  # sent as null in every row
    put_captures(current, served(deployed["model"], toy_frame(300, seed=16)))

    result = drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)

    features = get_json(result["checked"][0]["report_key"])["report"]["features"]
    assert features["color"]["missing"] and features["color"]["status"] == "drift"
    assert features["x2"]["status"] == "drift"
    assert features["x2"]["reason"] == "all values null in current"
    assert features["const"]["status"] == "no_drift"  # constant on both sides
    metrics = emitted(capsys.readouterr().out)
    assert ("FeaturePSI", (("Feature", "const"), ("Model", MODEL))) in metrics
    assert ("FeaturePSI", (("Feature", "color"), ("Model", MODEL))) not in metrics


def test_rows_another_model_version_answered_are_left_out(deployed: dict[str, Any]) -> None:
    current = toy_frame(300, seed=17)
    put_served(deployed["model"], current)
    put_captures(current.head(100), [1] * 100, version=2, prefix="canary")

    result = drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)

    captures = get_json(result["checked"][0]["report_key"])["captures"]
    assert (captures["rows"], captures["other_versions"]) == (300, 100)


def test_capture_triggered_checks_are_debounced_scheduled_ones_are_not(
    deployed: dict[str, Any],
) -> None:
    current = toy_frame(200, seed=18)
    (first, *_) = put_served(deployed["model"], current)
    key = next(k for k in keys(f"captures/{MODEL}/") if first in k)
    event = {"trigger": "capture", "key": key}

    runs = [drift_monitor.handler(event, LAMBDA_CONTEXT) for _ in range(2)]
    scheduled = drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)

    assert len(runs[0]["checked"]) == 1 and runs[1]["checked"] == []
    assert runs[1]["skipped"] == [{"model": MODEL, "reason": "checked within the last 60 s"}]
    assert len(scheduled["checked"]) == 1


def test_a_model_whose_baseline_is_gone_fails_loudly_after_the_others_are_checked(
    deployed: dict[str, Any],
) -> None:
    EndpointRegistry(clients.client("dynamodb"), ENDPOINTS).record(
        {"env": "local", "model": "lost", "model_version": 1, "action": "deploy"},
        becomes_current=True,
    )
    ModelRegistry(clients.client("dynamodb"), MODELS).put_version(
        {
            "model": "lost",
            "version": 1,
            "status": "Approved",
            "run_id": "gone",
            "model_key": "models/lost/v1/model.zip",
        }
    )
    current = toy_frame(200, seed=19)
    put_served(deployed["model"], current)

    with pytest.raises(drift_monitor.DriftCheckError, match=r"lost: model lost v1: s3://"):
        drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)

    assert len(keys(f"reports/drift/{MODEL}/")) == 3  # toy was still checked


def test_an_unusable_event_or_environment_is_one_line_naming_what(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="drift monitor input field 'trigger'"):
        drift_monitor.handler({"trigger": "hourly"}, LAMBDA_CONTEXT)
    monkeypatch.delenv("DRIFTLINE_ENDPOINTS_TABLE")
    settings_module.drift_monitor_settings.cache_clear()
    with pytest.raises(settings_module.SettingsError, match="DRIFTLINE_ENDPOINTS_TABLE is not set"):
        drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)


# -- drift notifier -----------------------------------------------------------------------------


def alarm_change(state: str = "ALARM") -> dict[str, Any]:
    return {
        "model": MODEL,
        "alarm": "Driftline-local-Monitoring-DriftToyDriftAlarm",
        "state": state,
        "previous_state": "OK",
        "reason": "arn(s) in ALARM: FeaturePsiAlarm",
        "time": "2026-11-29T12:00:00Z",
    }


def test_notification_names_the_model_drifted_features_scores_and_report(
    deployed: dict[str, Any],
) -> None:
    current = toy_frame(300, seed=20, shift=2.0)
    put_served(deployed["model"], current)
    checked = drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)["checked"][0]
    psi = get_json(checked["report_key"])["report"]["features"]["x1"]["psi"]

    result = drift_notifier.handler(alarm_change(), LAMBDA_CONTEXT)

    (sent,) = notifications(deployed["queue"])
    assert sent["subject"] == result["subject"] == "Driftline local: drift detected on model toy"
    assert f"  - x1: PSI {psi:.3f}, KS " in sent["message"]
    assert f"Report: s3://{ARTIFACTS}/{checked['report_key']}" in sent["message"]
    assert f"HTML:   s3://{ARTIFACTS}/{checked['html_key']}" in sent["message"]
    assert "Alarm Driftline-local-Monitoring-DriftToyDriftAlarm is ALARM" in sent["message"]


def test_notification_before_any_report_still_goes_out(aws: dict[str, Any]) -> None:
    drift_notifier.handler(alarm_change(), LAMBDA_CONTEXT)

    (sent,) = notifications(aws["queue"])
    assert "No drift report found for this model yet." in sent["message"]


# -- feedback (concept drift) -------------------------------------------------------------------


def feedback_event(key: str, version_id: str | None = None) -> dict[str, Any]:
    return {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": DATASETS},
            "object": {"key": key, **({"version-id": version_id} if version_id else {})},
        },
    }


def upload_feedback(text: str, name: str = "labels.csv") -> dict[str, Any]:
    key = f"feedback/{MODEL}/{name}"
    response = clients.client("s3").put_object(Bucket=DATASETS, Key=key, Body=text.encode())
    return feedback_event(key, response["VersionId"])


def put_config_override() -> None:
    clients.client("s3").put_object(Bucket=DATASETS, Key=f"models/{MODEL}.yaml", Body=TOY_CONFIG)


def test_labels_join_captured_predictions_and_publish_live_metrics(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    put_config_override()
    current = toy_frame(60, seed=21)
    model = deployed["model"]
    x = current[["x1", "x2", "color", "const"]]
    probabilities = model.predict_proba(x).tolist()
    request_ids = put_served(model, current, rows_per_file=1, probabilities=probabilities)
    # The world changed: labels are the opposite of what the model learned for half the rows.
    truth = [int(t) if i % 2 else 1 - int(t) for i, t in enumerate(current["target"])]
    rows = "\n".join(f"{rid},{label}" for rid, label in zip(request_ids, truth, strict=True))

    result = feedback.handler(
        upload_feedback(f"request_id,label\n{rows}\nmissing-id,1\n"), LAMBDA_CONTEXT
    )

    assert (result["graded"], result["unmatched"]) == (60, 1)
    assert set(result["metrics"]) == {"accuracy", "f1", "roc_auc"}
    assert 0.3 < result["metrics"]["accuracy"] < 0.7 and result["degraded"] is True
    metrics = emitted(capsys.readouterr().out)
    assert metrics[("FeedbackSamples", MODEL_DIMS)] == 60
    assert metrics[("LiveAccuracy", MODEL_DIMS)] == pytest.approx(result["metrics"]["accuracy"])
    assert ("LiveF1", MODEL_DIMS) in metrics and ("LiveRocAuc", MODEL_DIMS) in metrics
    report = get_json(result["report_key"])
    assert report["alarm"] == {
        "metric": "roc_auc",
        "metric_name": "LiveRocAuc",
        "threshold": 0.9,
        "higher_is_better": True,
        "degraded": True,
    }


def test_too_few_labels_publish_the_sample_count_only(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    current = toy_frame(5, seed=22)
    request_ids = put_served(deployed["model"], current, rows_per_file=1)
    lines = "\n".join(json.dumps({"request_id": rid, "label": 1}) for rid in request_ids)

    result = feedback.handler(upload_feedback(lines, "labels.jsonl"), LAMBDA_CONTEXT)

    assert result["graded"] == 5 and result["metrics"] == {}
    assert emitted(capsys.readouterr().out) == {("FeedbackSamples", MODEL_DIMS): 5.0}


def test_an_unreadable_label_file_is_reported_not_retried(deployed: dict[str, Any]) -> None:
    result = feedback.handler(upload_feedback("id;label\n1;0\n"), LAMBDA_CONTEXT)

    assert result["graded"] == 0
    (sent,) = notifications(deployed["queue"])
    assert sent["subject"] == "Driftline local: feedback file rejected for toy"
    assert sent["message"].startswith(
        f"s3://{DATASETS}/feedback/{MODEL}/labels.csv: header has no column 'request_id'"
    )


# -- retrain ------------------------------------------------------------------------------------


def accept_dataset(
    version_id: str = "v-accepted",
    *,
    key: str = "datasets/toy/data.csv",
    at: str = "2026-11-29T10:00:00.000+00:00",
) -> None:
    """The Datasets registry item the validate step writes for an accepted version."""
    DatasetRegistry(clients.client("dynamodb"), DATASETS_TABLE).record_accepted(
        {
            "dataset": MODEL,
            "version_id": version_id,
            "key": key,
            "rows": 600,
            "size": 1234,
            "sha256": "0" * 64,
            "columns": CONTRACT,
            "contract_hash": "c" * 64,
            "validated_at": at,
        },
        manifest_key=f"datasets/{MODEL}/{version_id}/manifest.json",
        sha256="1" * 64,
    )


def drift_alarm_event() -> dict[str, Any]:
    return {"model": MODEL, "cause": "alarm", "alarm": "toy-drift", "reason": "PSI 0.4 > 0.2"}


def execution_input(name: str) -> dict[str, Any]:
    arn = STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:") + f":{name}"
    described = clients.client("stepfunctions").describe_execution(executionArn=arn)
    document: dict[str, Any] = json.loads(described["input"])
    return document


def test_drift_alarm_starts_one_retrain_on_the_newest_accepted_dataset(
    aws: dict[str, Any],
) -> None:
    accept_dataset("v-old", at="2026-11-29T09:00:00.000+00:00")
    accept_dataset("v-new", at="2026-11-29T10:00:00.000+00:00")

    result = retrain.handler(drift_alarm_event(), LAMBDA_CONTEXT)

    assert result["started"] and result["execution_name"] == "toy-v-new-retrain-1"
    document = execution_input("toy-v-new-retrain-1")
    assert set(document) == {"dataset", "bucket", "key", "version_id", "trigger", "requested_at"}
    assert document["trigger"] == "retrain" and document["version_id"] == "v-new"
    assert (document["bucket"], document["key"]) == (DATASETS, "datasets/toy/data.csv")
    (sent,) = notifications(aws["queue"])
    assert sent["subject"] == "Driftline local: retraining toy"
    assert "alarm toy-drift went to ALARM (PSI 0.4 > 0.2)" in sent["message"]


def test_a_second_alarm_within_the_cooldown_starts_nothing_and_says_until_when(
    aws: dict[str, Any],
) -> None:
    accept_dataset()
    first = retrain.handler(drift_alarm_event(), LAMBDA_CONTEXT)
    notifications(aws["queue"])

    second = retrain.handler({"model": MODEL, "cause": "schedule"}, LAMBDA_CONTEXT)

    assert first["started"] and not second["started"] and second["reason"] == "cooldown"
    executions = clients.client("stepfunctions").list_executions(stateMachineArn=STATE_MACHINE_ARN)
    assert len(executions["executions"]) == 1
    (sent,) = notifications(aws["queue"])
    assert "held back (cooldown)" in sent["subject"]
    assert f"the 6 h cooldown lasts until {second['cooldown_until']}" in sent["message"]


def test_without_a_cooldown_each_retrain_gets_its_own_run_name(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_RETRAIN_COOLDOWN_HOURS", "0")
    accept_dataset()

    names = [
        retrain.handler(drift_alarm_event(), LAMBDA_CONTEXT)["execution_name"] for _ in range(2)
    ]

    assert names == ["toy-v-accepted-retrain-1", "toy-v-accepted-retrain-2"]


def test_no_accepted_dataset_means_a_notification_and_no_run(aws: dict[str, Any]) -> None:
    result = retrain.handler(drift_alarm_event(), LAMBDA_CONTEXT)

    assert result == {"started": False, "reason": "no accepted dataset version"}
    (sent,) = notifications(aws["queue"])
    assert sent["subject"] == "Driftline local: cannot retrain toy"


def test_a_failed_start_gives_the_cooldown_slot_back(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    accept_dataset()
    monkeypatch.setenv("DRIFTLINE_STATE_MACHINE_ARN", STATE_MACHINE_ARN + "-missing")
    settings_module.retrain_settings.cache_clear()
    with pytest.raises(Exception, match=r"StateMachineDoesNotExist|does not exist"):
        retrain.handler(drift_alarm_event(), LAMBDA_CONTEXT)
    monkeypatch.setenv("DRIFTLINE_STATE_MACHINE_ARN", STATE_MACHINE_ARN)
    settings_module.retrain_settings.cache_clear()

    result = retrain.handler(drift_alarm_event(), LAMBDA_CONTEXT)

    assert result["started"] and result["execution_name"] == "toy-v-accepted-retrain-2"


# -- driftline drift status ---------------------------------------------------------------------


@pytest.fixture
def data_stack(deployed: dict[str, Any]) -> dict[str, Any]:
    """A `Driftline-local-Data` stack whose outputs name the artifacts bucket, as deployed."""
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"ArtifactsBucketName": {"Value": ARTIFACTS}},
    }
    clients.client("cloudformation").create_stack(
        StackName="Driftline-local-Data", TemplateBody=json.dumps(template)
    )
    return deployed


def test_drift_status_summarises_the_latest_check_and_exits_1_on_drift(
    data_stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from driftline.cli import main

    current = toy_frame(300, seed=23, shift=2.0)
    put_served(data_stack["model"], current)
    checked = drift_monitor.handler({"trigger": "schedule"}, LAMBDA_CONTEXT)["checked"][0]
    capsys.readouterr()

    code = main(["drift", "status", "--model", MODEL, "--json"])

    document = json.loads(capsys.readouterr().out)
    assert code == 1 and document["verdict"] == "drift"
    assert document["report_key"] == checked["report_key"]
    assert document["flagged_features"][0]["feature"] == "x1"
    assert main(["drift", "status", "--model", MODEL]) == 1
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["FEATURE", "STATUS", "PSI", "KS", "REASON"]
    assert f"model {MODEL} v1 at " in table and checked["html_key"] in table


def test_drift_status_of_a_model_never_checked_is_a_one_line_usage_error(
    data_stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from driftline.cli import main

    code = main(["drift", "status", "--model", "ghost"])

    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert error.startswith("driftline: no drift check of model 'ghost' yet")
    assert f"s3://{ARTIFACTS}/reports/drift/ghost/latest.json" in error
