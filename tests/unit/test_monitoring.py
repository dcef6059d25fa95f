"""Monitoring decisions as pure functions: captures, drift metrics, alerts, feedback, retrains."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.drift import DriftThresholds, compute_drift
from pipelines.keys import (
    capture_day_prefixes,
    capture_hour_prefixes,
    drift_report_keys,
    model_of_capture_key,
    model_of_feedback_key,
    request_id_of_capture_key,
)
from pipelines.model_config import parse_model_config
from pipelines.monitoring import (
    CaptureError,
    CaptureRecord,
    FeedbackError,
    FeedbackLabel,
    cooldown_cutoff,
    cooldown_until,
    current_frame,
    drift_alert,
    drift_metrics,
    flagged_features,
    join_feedback,
    live_metric_alarm,
    live_metric_names,
    live_metrics,
    parse_capture,
    parse_feedback,
    prediction_column,
    retrain_execution_name,
    select_records,
)
from pipelines.uploads import execution_name

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
KINDS: dict[str, Any] = {"x": "numeric", "color": "categorical"}


def capture_line(request_id: str = "r1", row: int = 0, **overrides: Any) -> str:
    record = {
        "request_id": request_id,
        "row": row,
        "features": {"x": 1.5, "color": "red"},
        "prediction": 1,
        "probabilities": {"0": 0.2, "1": 0.8},
        "model": "churn",
        "model_version": 3,
        "timestamp": "2026-11-29T12:00:00.000Z",
        **overrides,
    }
    return json.dumps(record)


def record(
    request_id: str = "r1",
    *,
    row: int = 0,
    minutes_ago: float = 5,
    version: int | None = 3,
    features: dict[str, Any] | None = None,
    prediction: Any = 1,
    probabilities: Any = None,
) -> CaptureRecord:
    return CaptureRecord(
        request_id=request_id,
        row=row,
        features=features if features is not None else {"x": 1.0, "color": "red"},
        prediction=prediction,
        probabilities=probabilities,
        model_version=version,
        timestamp=NOW - timedelta(minutes=minutes_ago),
    )


# -- captures -----------------------------------------------------------------------------------


def test_capture_lines_parse_into_records_with_aware_timestamps() -> None:
    text = capture_line() + "\n" + capture_line(row=1, probabilities=[0.3, 0.7]) + "\n\n"

    first, second = parse_capture(text, source="s3://b/captures/churn/x.jsonl")

    assert first.request_id == "r1" and (first.row, second.row) == (0, 1)
    assert first.features == {"x": 1.5, "color": "red"} and first.model_version == 3
    assert first.timestamp == datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert second.probabilities == [0.3, 0.7]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"k\.jsonl line 1: not JSON"),
        (capture_line() + "\n[1, 2]", r"line 2: expected a JSON object"),
        (json.dumps({"request_id": "r", "prediction": 1, "timestamp": "x"}), "'features' is miss"),
        (capture_line(features=[1, 2]), "'features' is not an object"),
        (capture_line(timestamp="yesterday"), "'timestamp' is not ISO 8601: 'yesterday'"),
        (capture_line(model_version="3"), "'model_version' is not an integer"),
        ("\n\n", "k.jsonl: no records"),
    ],
)
def test_a_bad_capture_is_one_error_naming_the_object_and_line(text: str, message: str) -> None:
    with pytest.raises(CaptureError, match=message):
        parse_capture(text, source="s3://b/k.jsonl")


def test_capture_keys_name_their_model_and_request() -> None:
    key = "captures/churn/date=2026-11-29/hour=12/abc-123.jsonl"
    assert model_of_capture_key(key) == "churn"
    assert request_id_of_capture_key(key) == "abc-123"
    assert model_of_capture_key("captures/churn/readme.txt") is None
    assert model_of_capture_key("reports/churn/x.jsonl") is None
    assert model_of_capture_key("captures/../x.jsonl") is None


def test_window_prefixes_cover_every_hour_across_midnight() -> None:
    start = datetime(2026, 11, 28, 23, 40, tzinfo=UTC)
    assert capture_hour_prefixes("churn", start, start + timedelta(minutes=60)) == [
        "captures/churn/date=2026-11-28/hour=23/",
        "captures/churn/date=2026-11-29/hour=00/",
    ]
    assert capture_day_prefixes("churn", NOW, 2) == [
        "captures/churn/date=2026-11-29/",
        "captures/churn/date=2026-11-28/",
    ]


def test_selection_keeps_the_window_and_the_deployed_version_newest_first_kept() -> None:
    records = [
        record("old", minutes_ago=90),
        record("canary", version=4),
        record("a", minutes_ago=30),
        record("b", minutes_ago=10),
        record("c", minutes_ago=1),
    ]

    selection = select_records(
        records, start=NOW - timedelta(minutes=60), end=NOW, model_version=3, max_rows=2
    )

    assert [r.request_id for r in selection.records] == ["b", "c"]
    assert (selection.outside_window, selection.other_versions, selection.truncated) == (1, 1, 1)


def test_no_traffic_is_too_few_rows_not_every_feature_missing() -> None:
    frame = current_frame([], kinds=KINDS, prediction="prediction", task="classification")
    assert list(frame.columns) == ["x", "color", "prediction"] and len(frame) == 0


def test_captured_values_are_coerced_like_the_baseline() -> None:
    records = [
        record(features={"x": "2.5", "color": 7}, prediction=1),
        record(features={"x": "n/a"}, prediction=0),
    ]

    frame = current_frame(records, kinds=KINDS, prediction="prediction", task="classification")

    assert frame["x"].tolist()[0] == 2.5 and np.isnan(frame["x"].tolist()[1])
    assert frame["color"].tolist()[0] == "7" and pd.isna(frame["color"].tolist()[1])
    assert frame["prediction"].tolist() == ["1", "0"]


def test_prediction_column_never_shadows_a_feature() -> None:
    assert prediction_column(["x"]) == "prediction"
    assert prediction_column(["prediction", "_prediction"]) == "__prediction"


# -- drift metrics ------------------------------------------------------------------------------


def drift_report(n_current: int, shift: float = 0.0, min_samples: int = 100) -> Any:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 2000),
            "y": rng.normal(0, 1, 2000),
            "sparse": np.where(rng.random(2000) < 0.97, np.nan, 1.0),
            "prediction": rng.choice(["0", "1"], 2000),
        }
    )
    current = pd.DataFrame(
        {
            "x": rng.normal(shift, 1, n_current),
            "y": rng.normal(0, 1, n_current),
            "sparse": np.where(rng.random(n_current) < 0.97, np.nan, 1.0),
            "prediction": rng.choice(["0", "1"], n_current, p=[0.5, 0.5]),
        }
    )
    return compute_drift(
        reference,
        current,
        features={"x": "numeric", "y": "numeric", "sparse": "numeric"},
        prediction="prediction",
        prediction_kind="categorical",
        thresholds=DriftThresholds(min_samples=min_samples),
    )


def test_too_few_rows_publish_samples_only() -> None:
    metrics = drift_metrics(drift_report(n_current=50, shift=3.0))
    assert metrics.samples == 50 and not metrics.sufficient
    assert metrics.feature_psi == {} and metrics.max_feature_psi is None
    assert metrics.drifted_share is None and metrics.prediction_psi is None


def test_drift_metrics_skip_features_without_enough_values() -> None:
    report = drift_report(n_current=1000, shift=1.5)

    metrics = drift_metrics(report)

    assert report.feature("sparse").status == "insufficient_data"
    assert set(metrics.feature_psi) == {"x", "y"}
    assert metrics.max_feature_psi == metrics.feature_psi["x"] > 0.2
    assert metrics.drifted_share == pytest.approx(1 / 3)
    assert metrics.prediction_psi is not None and metrics.prediction_psi < 0.2


def test_report_keys_sort_by_time_and_carry_no_colons() -> None:
    json_key, html_key = drift_report_keys("churn", NOW.replace(microsecond=123456))
    assert json_key == "reports/drift/churn/20261129T123000.123Z.json"
    assert html_key == json_key.replace(".json", ".html")


# -- alerts -------------------------------------------------------------------------------------


def test_alert_names_drifted_and_over_threshold_features_worst_first_with_the_report() -> None:
    report = drift_report(n_current=1000, shift=1.5).to_dict()
    report["features"]["y"]["psi"] = 0.25  # over the PSI threshold though not "drift"
    latest: dict[str, Any] = {
        "generated_at": "2026-11-29T12:30:00.000Z",
        "model_version": 3,
        "report_uri": "s3://artifacts/reports/drift/churn/20261129T123000.000Z.json",
        "html_uri": "s3://artifacts/reports/drift/churn/20261129T123000.000Z.html",
    }

    subject, message = drift_alert(
        env="dev",
        model="churn",
        state="ALARM",
        alarm="DriftAlarm",
        reason="arn(s) in ALARM: FeaturePsi",
        latest=latest,
        report=report,
    )

    assert subject == "Driftline dev: drift detected on model churn"
    assert [f.name for f in flagged_features(report)] == ["x", "y"]
    psi_x = report["features"]["x"]["psi"]
    assert f"  - x: PSI {psi_x:.3f}, KS " in message and "  - y: PSI 0.250" in message
    assert message.index("- x:") < message.index("- y:")
    assert "sparse" not in message
    assert latest["report_uri"] in message and latest["html_uri"] in message


def test_alert_without_a_report_says_so() -> None:
    _, message = drift_alert(
        env="dev", model="churn", state="ALARM", alarm="A", reason="", latest=None, report=None
    )
    assert "No drift report found for this model yet." in message


# -- feedback -----------------------------------------------------------------------------------


def test_feedback_reads_csv_and_json_lines() -> None:
    csv_labels = parse_feedback("request_id,label,row\nr1,1,\nr2,0,2\n", source="f/a.csv")
    json_labels = parse_feedback('{"request_id": "r1", "label": "yes"}\n', source="f/a.jsonl")

    assert csv_labels == [FeedbackLabel("r1", "1", None), FeedbackLabel("r2", "0", 2)]
    assert json_labels == [FeedbackLabel("r1", "yes", None)]
    assert model_of_feedback_key("feedback/churn/2026-11-29.csv") == "churn"
    assert model_of_feedback_key("feedback/churn.csv") is None


@pytest.mark.parametrize(
    ("text", "source", "message"),
    [
        ("id,label\n1,0\n", "f/a.csv", "f/a.csv: header has no column 'request_id'"),
        ("request_id,label\nr1,\n", "f/a.csv", "f/a.csv line 2: 'label' is missing or empty"),
        ("request_id,label,row\nr1,1,x\n", "f/a.csv", "line 2: 'row' must be a whole number"),
        ('{"label": 1}\n', "f/a.jsonl", "f/a.jsonl line 1: 'request_id' is missing"),
        ("nope\n", "f/a.jsonl", "f/a.jsonl line 1: not JSON"),
        ("a,b\n", "f/a.xlsx", r"f/a.xlsx: expected one of \.csv"),
    ],
)
def test_bad_label_files_are_one_error_naming_file_line_and_column(
    text: str, source: str, message: str
) -> None:
    with pytest.raises(FeedbackError, match=message):
        parse_feedback(text, source=source)


def test_labels_join_by_request_and_row_and_count_what_does_not_join() -> None:
    captured = [record("one"), record("two", row=0), record("two", row=1, prediction=0)]
    labels = [
        FeedbackLabel("one", "1"),
        FeedbackLabel("two", "0", row=1),
        FeedbackLabel("two", "1"),  # two rows, no row given: ambiguous
        FeedbackLabel("one", "0"),  # graded already
        FeedbackLabel("ghost", "1"),
        FeedbackLabel("two", "1", row=5),
    ]

    joined = join_feedback(labels, captured)

    assert (joined.labels, joined.predictions) == (["1", "0"], [1, 0])
    assert (joined.unmatched, joined.ambiguous, joined.duplicates) == (2, 1, 1)


def test_live_classifier_metrics_compare_csv_labels_with_captured_predictions() -> None:
    captured = [
        record(str(i), prediction=p, probabilities={"0": 1 - s, "1": s})
        for i, (p, s) in enumerate([(1, 0.9), (1, 0.8), (0, 0.3), (0, 0.4), (1, 0.6), (0, 0.2)])
    ]
    labels = [FeedbackLabel(str(i), y) for i, y in enumerate(["1", "0", "0", "0", "1", "1"])]
    names = live_metric_names("classification", ["roc_auc", "accuracy", "f1"])

    values = live_metrics(
        join_feedback(labels, captured), task="classification", metric_names=names, classes=[0, 1]
    )

    assert names == ("accuracy", "f1", "roc_auc")
    assert values["accuracy"] == pytest.approx(4 / 6)
    assert values["f1"] == pytest.approx(2 / 3)
    assert values["roc_auc"] == pytest.approx(5 / 9)


def test_live_regressor_metrics_drop_unparseable_labels_and_undefined_metrics() -> None:
    captured = [record(str(i), prediction=p) for i, p in enumerate([1.0, 2.0, 4.0])]
    labels = [FeedbackLabel("0", "1.5"), FeedbackLabel("1", "n/a"), FeedbackLabel("2", "")]

    values = live_metrics(
        join_feedback(labels, captured),
        task="regression",
        metric_names=live_metric_names("regression", ["r2"]),
        classes=None,
    )

    assert values == pytest.approx({"rmse": 0.5, "mae": 0.5})  # r2 needs two rows


def test_concept_alarm_uses_the_primary_metric_gate_threshold_and_direction() -> None:
    classifier = parse_model_config(
        "task: classification\ntarget: y\nmetrics: [roc_auc, accuracy]\n"
        "gate: {thresholds: {accuracy: 0.8, roc_auc: 0.9}}\n",
        source="m.yaml",
    )
    regressor = parse_model_config(
        "task: regression\ntarget: y\nmetrics: [rmse, mae]\ngate: {thresholds: {mae: 3}}\n",
        source="r.yaml",
    )
    ungated = parse_model_config("task: regression\ntarget: y\n", source="u.yaml")

    alarm = live_metric_alarm(classifier)
    fallback = live_metric_alarm(regressor)

    assert alarm is not None and (alarm.metric_name, alarm.threshold) == ("LiveRocAuc", 0.9)
    assert alarm.degraded(0.85) and not alarm.degraded(0.95)
    assert fallback is not None and fallback.metric_name == "LiveMAE"
    assert fallback.degraded(3.5) and not fallback.higher_is_better
    assert live_metric_alarm(ungated) is None


# -- retraining ---------------------------------------------------------------------------------


def test_retrain_names_never_collide_with_the_upload_run_or_each_other() -> None:
    upload = execution_name("churn", "v1abc")
    first, second = (retrain_execution_name("churn", "v1abc", n) for n in (1, 2))

    assert first == f"{upload}-retrain-1" and second == f"{upload}-retrain-2"


def test_long_retrain_names_stay_within_80_characters_and_distinct() -> None:
    version = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo" * 2
    names = {retrain_execution_name(dataset, version, 12) for dataset in ("a" * 60, "a" * 60 + "b")}

    assert len(names) == 2
    assert all(len(name) <= 80 and name.endswith("-retrain-12") for name in names)
    assert all(
        set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        for name in names
    )


def test_cooldown_times_compare_as_text() -> None:
    assert cooldown_cutoff(NOW, 6) == "2026-11-29T06:30:00.000Z"
    assert cooldown_until("2026-11-29T06:30:00.000Z", 6) == "2026-11-29T12:30:00.000Z"
    assert cooldown_cutoff(NOW, 0) == "2026-11-29T12:30:00.000Z"
