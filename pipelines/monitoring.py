"""What the drift monitor, the drift notifier, the feedback join and the retrainer decide.

Pure functions over captured inference records, drift reports, label files and timestamps; the
Lambda handlers in `functions/` only fetch the inputs and ship the outputs.

Why a few things are decided the way they are:

* A capture object is one inference request (`captures/<model>/date=/hour=/<request-id>.jsonl`).
  A file that fails to parse anywhere is skipped as a whole and counted: half a request is not
  evidence, and one bad writer must never block the check of everything else.
* Metrics are published only when the comparison had at least ``min_samples`` rows on each
  side. Below that, only ``DriftSamples`` goes out, so an alarm on PSI sees *missing* data
  (treated as not breaching) rather than a noisy PSI from a trickle of traffic: no flapping.
* A feature's PSI is published only when its own status is decided (drift / no drift); a
  feature that lacks non-null values has a PSI computed from too few points to alarm on.
* One decision rule (`pipelines.drift`: a statistic drifts when strictly over its threshold,
  the report when any feature or the prediction drifts by default): `MaxFeaturePSI` and
  `PredictionPSI` leave out a PSI over its threshold that the report's significance step did
  not confirm (that feature's own PSI is still published), so the PSI alarms, `DriftedShare > 0`
  and `DriftScore > 1` fire exactly when the report says drift on a feature or on the
  prediction's PSI. The notifier names the features the report calls drifted and, from older
  reports, those whose PSI is over the threshold.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipelines.drift_thresholds import over
from pipelines.metric_names import LIVE_METRIC_NAMES
from pipelines.model_config import METRICS, FeatureKind, ModelConfig, Task, feature_kind

if TYPE_CHECKING:  # pandas loads only where frames are built (the notifier never needs it)
    import numpy.typing as npt
    import pandas as pd

    from pipelines.drift import DriftReport, DriftThresholds, FeatureDrift

MAX_BASELINE_ROWS = 50_000
MAX_CURRENT_ROWS = 50_000
# Newest capture objects a check reads: one object per request, so this bounds a check's time
# under heavy traffic; the rows kept are capped at MAX_CURRENT_ROWS anyway.
MAX_CAPTURE_FILES = 5_000
FEEDBACK_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")


# Always published, whatever the model config lists: the live metrics per task.
BASE_LIVE_METRICS: Mapping[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "f1"),
    "regression": ("rmse", "mae"),
}


class CaptureError(ValueError):
    """A capture object that cannot be read; the message names the key, line and field."""


class FeedbackError(ValueError):
    """A label file that cannot be read; the message names the key, line and column."""


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a `Z`, sortable as text (the registry's format)."""
    return _utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO 8601 timestamp (`Z` or offset) as an aware UTC datetime; ValueError otherwise."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return _utc(moment)


# --------------------------------------------------------------------------- captures


@dataclass(frozen=True)
class CaptureRecord:
    """One scored row as the inference function captured it."""

    request_id: str
    row: int
    features: Mapping[str, Any]
    prediction: Any
    probabilities: Mapping[str, float] | Sequence[float] | None
    model_version: int | None
    timestamp: datetime


def _field(document: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in document:
        raise CaptureError(f"{where}: key '{name}' is missing")
    return document[name]


def _json_objects(
    text: str, *, source: str, error: type[Exception]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, object) for each non-blank JSON-lines line; `error` names the first bad one."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            document = json.loads(line)
        except json.JSONDecodeError as decode_error:
            raise error(f"{where}: not JSON ({decode_error.msg})") from None
        if not isinstance(document, dict):
            raise error(f"{where}: expected a JSON object")
        yield where, document


def parse_capture(text: str, *, source: str) -> list[CaptureRecord]:
    """Every record of one capture object, or CaptureError naming the first bad line."""
    records = []
    for where, document in _json_objects(text, source=source, error=CaptureError):
        features = _field(document, "features", where)
        if not isinstance(features, dict):
            raise CaptureError(f"{where}: key 'features' is not an object")
        stamp = _field(document, "timestamp", where)
        try:
            timestamp = parse_time(str(stamp))
        except ValueError:
            raise CaptureError(f"{where}: key 'timestamp' is not ISO 8601: {stamp!r}") from None
        version = document.get("model_version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise CaptureError(f"{where}: key 'model_version' is not an integer: {version!r}")
        probabilities = document.get("probabilities")
        if probabilities is not None and not isinstance(probabilities, (dict, list)):
            raise CaptureError(f"{where}: key 'probabilities' is not an object, list or null")
        row = document.get("row", 0)
        records.append(
            CaptureRecord(
                request_id=str(_field(document, "request_id", where)),
                row=int(row) if isinstance(row, int) and not isinstance(row, bool) else 0,
                features=features,
                prediction=_field(document, "prediction", where),
                probabilities=probabilities,
                model_version=version,
                timestamp=timestamp,
            )
        )
    if not records:
        raise CaptureError(f"{source}: no records")
    return records


@dataclass(frozen=True)
class CaptureSelection:
    """The records a drift check compares, and why the others were left out."""

    records: list[CaptureRecord]
    outside_window: int = 0
    other_versions: int = 0
    truncated: int = 0


def select_records(
    records: Iterable[CaptureRecord],
    *,
    start: datetime,
    end: datetime,
    model_version: int | None,
    max_rows: int = MAX_CURRENT_ROWS,
) -> CaptureSelection:
    """Records inside [start, end] scored by `model_version`, newest `max_rows` kept.

    Prediction drift is only meaningful against the baseline of the version that predicted,
    so rows another version answered (a canary, a rollback) are left out and counted.
    """
    kept: list[CaptureRecord] = []
    outside = other = 0
    low, high = _utc(start), _utc(end)
    for record in records:
        if not low <= record.timestamp <= high:
            outside += 1
        elif model_version is not None and record.model_version not in (None, model_version):
            other += 1
        else:
            kept.append(record)
    kept.sort(key=lambda record: (record.timestamp, record.request_id, record.row))
    truncated = max(0, len(kept) - max_rows)
    return CaptureSelection(
        records=kept[truncated:],
        outside_window=outside,
        other_versions=other,
        truncated=truncated,
    )


# --------------------------------------------------------------------------- frames


def prediction_column(features: Iterable[str]) -> str:
    """`prediction`, unless a feature is called that; then a name no feature has."""
    names = set(features)
    name = "prediction"
    while name in names:
        name = f"_{name}"
    return name


def feature_kinds(feature_types: Mapping[str, str]) -> dict[str, FeatureKind]:
    """Contract type strings (as recorded with the model) → numeric/categorical."""
    return {name: feature_kind(type_string) for name, type_string in feature_types.items()}


def prediction_kind(task: str) -> FeatureKind:
    return "categorical" if task == "classification" else "numeric"


def coerce_frame(frame: pd.DataFrame, kinds: Mapping[str, FeatureKind]) -> pd.DataFrame:
    """Numbers as float (unparseable → null), categories as strings; absent columns stay absent.

    Both sides of a comparison go through here, so a category read as 1 from Parquet and "1"
    from a JSON capture is one category, and a feature the captures never carry stays missing
    (which the drift report calls drift) instead of becoming a column of nulls.
    """
    import numpy as np
    import pandas as pd

    columns: dict[str, pd.Series] = {}
    for name, kind in kinds.items():
        if name not in frame.columns:
            continue
        column = frame[name]
        if kind == "numeric":
            if pd.api.types.is_bool_dtype(column):
                column = column.astype("float64")
            columns[name] = pd.to_numeric(column, errors="coerce").astype("float64")
        else:
            text = column.astype("object").map(str, na_action="ignore")
            columns[name] = text.where(column.notna(), np.nan).astype("object")
    return pd.DataFrame(columns, index=frame.index)


def sample_rows(frame: pd.DataFrame, max_rows: int, *, seed: int = 0) -> pd.DataFrame:
    """At most `max_rows` rows, drawn without replacement with a fixed seed, in original order."""
    if len(frame) <= max_rows:
        return frame.reset_index(drop=True)
    return frame.sample(n=max_rows, random_state=seed).sort_index().reset_index(drop=True)


def reference_predictions(model: Any, features: pd.DataFrame, task: str) -> npt.NDArray[Any]:
    """What the model answers for the baseline rows, the way the inference function answers.

    A classifier's label is its most probable class (as served), so reference and captured
    predictions come from the same rule.
    """
    import numpy as np

    if task == "classification" and hasattr(model, "predict_proba"):
        probabilities = np.asarray(model.predict_proba(features))
        classes = np.asarray(model.classes_)
        labels: npt.NDArray[Any] = classes[np.argmax(probabilities, axis=1)]
        return labels
    return np.asarray(model.predict(features))


def baseline_frame(
    training: pd.DataFrame,
    *,
    kinds: Mapping[str, FeatureKind],
    max_rows: int = MAX_BASELINE_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """The model's features from its training data, sampled to `max_rows` and coerced."""
    present = [name for name in kinds if name in training.columns]
    if not present:
        raise ValueError("training data has none of the model's features")
    return coerce_frame(sample_rows(training[present], max_rows, seed=seed), kinds)


def current_frame(
    records: Sequence[CaptureRecord],
    *,
    kinds: Mapping[str, FeatureKind],
    prediction: str,
    task: str,
) -> pd.DataFrame:
    """One row per captured record: the model's features (as captured) and the prediction."""
    import pandas as pd

    if records:
        # object dtype keeps each value as sent: a category 7 next to a null stays "7", not "7.0"
        raw = pd.DataFrame([dict(record.features) for record in records], dtype="object")
    else:  # no traffic is "too few rows", not "every feature missing"
        raw = pd.DataFrame({name: pd.Series([], dtype="object") for name in kinds})
    frame = coerce_frame(raw, kinds)
    values = pd.Series([record.prediction for record in records], dtype="object")
    frame[prediction] = coerce_frame(
        pd.DataFrame({prediction: values}), {prediction: prediction_kind(task)}
    )[prediction]
    return frame


# --------------------------------------------------------------------------- drift metrics


@dataclass(frozen=True)
class DriftMetrics:
    """What one check publishes to CloudWatch; `sufficient` False means DriftSamples only."""

    samples: int
    sufficient: bool
    feature_psi: dict[str, float] = field(default_factory=dict)
    max_feature_psi: float | None = None
    drifted_share: float | None = None
    prediction_psi: float | None = None
    drift_score: float | None = None


def drift_score(
    thresholds: DriftThresholds,
    *,
    max_feature_psi: float | None,
    drifted_share: float | None,
    prediction_psi: float | None,
) -> float | None:
    """The largest of the three drift statistics as a multiple of its threshold.

    Above 1.0 exactly when one of the per-statistic drift alarms would fire (each statistic
    `over` its threshold, CloudWatch's `>`), so one metric (dimension `Model`) can stand for all
    three behind one alarm that watches every model. A zero threshold (`drifted_share`'s
    default: any drifted feature) scores 1 + the value when the value is over it, else 0.
    """
    ratios = [
        _ratio(value, limit)
        for value, limit in (
            (max_feature_psi, thresholds.psi),
            (drifted_share, thresholds.drifted_share),
            (prediction_psi, thresholds.prediction_psi),
        )
        if value is not None
    ]
    return max(ratios) if ratios else None


def _ratio(value: float, limit: float) -> float:
    """value as a multiple of limit: > 1 exactly when `over(value, limit)`."""
    if limit <= 0:
        return 1.0 + value if over(value, limit) else 0.0
    ratio = value / limit  # rounding must not move it across 1
    return max(ratio, math.nextafter(1.0, 2.0)) if over(value, limit) else min(ratio, 1.0)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _agrees(psi: float, feature: FeatureDrift, threshold: float) -> bool:
    """Whether an alarm on this PSI would agree with the report: the PSI is over its threshold
    only where the report calls the feature drifted (not where the significance step did not
    confirm it), so the PSI alarms fire exactly when the report's rule finds drift."""
    return feature.status == "drift" or not over(psi, threshold)


def drift_metrics(report: DriftReport) -> DriftMetrics:
    """The CloudWatch view of a report (see the module docstring for what is left out)."""
    sufficient = min(report.n_reference, report.n_current) >= report.thresholds.min_samples
    if not sufficient:
        return DriftMetrics(samples=report.n_current, sufficient=False)
    feature_psi = {
        feature.name: psi
        for feature in report.features
        if feature.status != "insufficient_data" and (psi := _finite(feature.psi)) is not None
    }
    prediction_psi = None
    prediction = report.prediction
    if prediction is not None and prediction.status != "insufficient_data":
        psi = _finite(prediction.psi)
        if psi is not None and _agrees(psi, prediction, report.thresholds.prediction_psi):
            prediction_psi = psi
    thresholds = report.thresholds
    agreeing = [
        psi
        for feature in report.features
        if (psi := feature_psi.get(feature.name)) is not None
        and _agrees(psi, feature, thresholds.psi)
    ]
    max_feature_psi = max(agreeing) if agreeing else None
    drifted_share = report.drifted_share if report.features else None
    return DriftMetrics(
        samples=report.n_current,
        sufficient=True,
        feature_psi=feature_psi,
        max_feature_psi=max_feature_psi,
        drifted_share=drifted_share,
        prediction_psi=prediction_psi,
        drift_score=drift_score(
            report.thresholds,
            max_feature_psi=max_feature_psi,
            drifted_share=drifted_share,
            prediction_psi=prediction_psi,
        ),
    )


@dataclass(frozen=True)
class CaptureReading:
    """What a check read: capture files, the corrupt ones, and the files it left unread."""

    files: int
    corrupt_keys: Sequence[str]
    unread: int


def drift_check_document(
    *,
    model: str,
    version: int,
    env: str,
    trigger: str,
    now: datetime,
    window_start: datetime,
    window_minutes: int,
    baseline: Mapping[str, Any],
    reading: CaptureReading,
    selection: CaptureSelection,
    metrics: DriftMetrics,
    report: DriftReport,
    html_key: str,
) -> dict[str, Any]:
    """The JSON report one drift check writes (`reports/drift/<model>/<stamp>.json`);
    `baseline` is its key, run id and row count."""
    return {
        "model": model,
        "model_version": version,
        "env": env,
        "generated_at": iso(now),
        "trigger": trigger,
        "window": {"start": iso(window_start), "end": iso(now), "minutes": window_minutes},
        "baseline": dict(baseline),
        "captures": {
            "files": reading.files,
            "corrupt_files": len(reading.corrupt_keys),
            "corrupt_keys": sorted(reading.corrupt_keys)[:50],
            "rows": len(selection.records),
            "other_versions": selection.other_versions,
            "outside_window": selection.outside_window,
            "truncated": selection.truncated,
            "files_not_read": reading.unread,
        },
        "metrics": {
            "published": metrics.sufficient,
            "samples": metrics.samples,
            "max_feature_psi": metrics.max_feature_psi,
            "drifted_share": metrics.drifted_share,
            "prediction_psi": metrics.prediction_psi,
        },
        "report": report.to_dict(),
        "html_key": html_key,
    }


def latest_summary(
    document: Mapping[str, Any], *, bucket: str, report_key: str, html_key: str
) -> dict[str, Any]:
    """The `latest.json` pointer: where the newest report is, and its headline numbers."""
    report = document.get("report") or {}
    metrics = document.get("metrics") or {}
    return {
        "model": document.get("model"),
        "model_version": document.get("model_version"),
        "generated_at": document.get("generated_at"),
        "trigger": document.get("trigger"),
        "verdict": report.get("verdict"),
        "summary": report.get("summary"),
        "drifted_features": report.get("drifted_features", []),
        "n_reference": report.get("n_reference"),
        "n_current": report.get("n_current"),
        "max_feature_psi": metrics.get("max_feature_psi"),
        "drifted_share": metrics.get("drifted_share"),
        "prediction_psi": metrics.get("prediction_psi"),
        "report_uri": f"s3://{bucket}/{report_key}",
        "html_uri": f"s3://{bucket}/{html_key}",
        "report_key": report_key,
        "html_key": html_key,
    }


# --------------------------------------------------------------------------- notifications


@dataclass(frozen=True)
class FeatureScore:
    name: str
    status: str
    psi: float | None
    ks_statistic: float | None
    reason: str


def flagged_features(report: Mapping[str, Any]) -> list[FeatureScore]:
    """Features the report calls drifted or whose PSI crosses the PSI threshold, worst first."""
    psi_threshold = float((report.get("thresholds") or {}).get("psi", math.inf))
    flagged = []
    for name, entry in (report.get("features") or {}).items():
        psi = entry.get("psi")
        if entry.get("status") == "drift" or (psi is not None and over(psi, psi_threshold)):
            flagged.append(
                FeatureScore(
                    name=str(name),
                    status=str(entry.get("status")),
                    psi=psi,
                    ks_statistic=entry.get("ks_statistic"),
                    reason=str(entry.get("reason", "")),
                )
            )
    flagged.sort(key=lambda score: (-(score.psi if score.psi is not None else -1.0), score.name))
    return flagged


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def drift_alert(
    *,
    env: str,
    model: str,
    state: str,
    alarm: str,
    reason: str,
    latest: Mapping[str, Any] | None,
    report: Mapping[str, Any] | None,
    max_listed: int = 20,
) -> tuple[str, str]:
    """(subject, message) naming the model, its drifted features with scores and the report."""
    drifting = state == "ALARM"
    headline = "drift detected" if drifting else f"drift alarm {state}"
    subject = f"Driftline {env}: {headline} on model {model}"[:100]
    lines = [
        f"Model {model}: {headline}.",
        f"Alarm {alarm} is {state}: {reason}" if reason else f"Alarm {alarm} is {state}.",
        "",
    ]
    if latest is None or report is None:
        lines.append("No drift report found for this model yet.")
        return subject, "\n".join(lines)
    lines.append(
        f"Latest check {latest.get('generated_at')} (model version "
        f"{latest.get('model_version')}): {report.get('verdict')} - {report.get('summary')}"
    )
    flagged = flagged_features(report)
    if flagged:
        lines.append("")
        lines.append(f"Drifted features ({len(flagged)}), worst first:")
        for score in flagged[:max_listed]:
            lines.append(
                f"  - {score.name}: PSI {_score(score.psi)}, KS {_score(score.ks_statistic)}, "
                f"{score.status} ({score.reason})"
            )
        if len(flagged) > max_listed:
            lines.append(f"  ... and {len(flagged) - max_listed} more (see the report)")
    else:
        lines.append("No feature is over its threshold in the latest check.")
    prediction = report.get("prediction")
    if prediction:
        lines.append(
            f"Prediction: PSI {_score(prediction.get('psi'))}, {prediction.get('status')} "
            f"({prediction.get('reason', '')})"
        )
    lines += ["", f"Report: {latest.get('report_uri')}", f"HTML:   {latest.get('html_uri')}"]
    return subject, "\n".join(lines)


# --------------------------------------------------------------------------- feedback


@dataclass(frozen=True)
class FeedbackLabel:
    request_id: str
    label: Any
    row: int | None = None


def _label_row(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        row = int(str(value))
    except ValueError:
        raise FeedbackError(f"{where}: 'row' must be a whole number, got {value!r}") from None
    if row < 0:
        raise FeedbackError(f"{where}: 'row' must be >= 0, got {row}")
    return row


def _label(document: Mapping[str, Any], where: str) -> FeedbackLabel:
    request_id = document.get("request_id")
    if request_id is None or str(request_id).strip() == "":
        raise FeedbackError(f"{where}: 'request_id' is missing or empty")
    if "label" not in document or document["label"] is None or document["label"] == "":
        raise FeedbackError(f"{where}: 'label' is missing or empty")
    return FeedbackLabel(
        request_id=str(request_id).strip(),
        label=document["label"],
        row=_label_row(document.get("row"), where),
    )


def parse_feedback(text: str, *, source: str) -> list[FeedbackLabel]:
    """Labels from a CSV (header with request_id,label[,row]) or JSON-lines file."""
    lowered = source.lower()
    if not lowered.endswith(FEEDBACK_SUFFIXES):
        raise FeedbackError(f"{source}: expected one of {', '.join(FEEDBACK_SUFFIXES)}")
    labels: list[FeedbackLabel] = []
    if lowered.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        for column in ("request_id", "label"):
            if column not in header:
                raise FeedbackError(f"{source}: header has no column '{column}'")
        for number, row in enumerate(reader, start=2):
            labels.append(_label(row, f"{source} line {number}"))
        return labels
    for where, document in _json_objects(text, source=source, error=FeedbackError):
        labels.append(_label(document, where))
    return labels


@dataclass(frozen=True)
class JoinedFeedback:
    """Labels matched to the predictions they grade, in label order."""

    labels: list[Any]
    predictions: list[Any]
    probabilities: list[Mapping[str, float] | Sequence[float] | None]
    unmatched: int
    ambiguous: int
    duplicates: int


def join_feedback(
    labels: Sequence[FeedbackLabel], records: Iterable[CaptureRecord]
) -> JoinedFeedback:
    """Join by request id (and row, when given); a label without a row needs a one-row request.

    A repeated (request id, row) is graded once, with its first label.
    """
    by_request: dict[str, dict[int, CaptureRecord]] = {}
    for record in records:
        by_request.setdefault(record.request_id, {})[record.row] = record
    seen: set[tuple[str, int]] = set()
    truth: list[Any] = []
    predicted: list[Any] = []
    scores: list[Mapping[str, float] | Sequence[float] | None] = []
    unmatched = ambiguous = duplicates = 0
    for label in labels:
        rows = by_request.get(label.request_id)
        if not rows:
            unmatched += 1
            continue
        if label.row is None:
            if len(rows) != 1:
                ambiguous += 1
                continue
            record = next(iter(rows.values()))
        elif label.row in rows:
            record = rows[label.row]
        else:
            unmatched += 1
            continue
        identity = (record.request_id, record.row)
        if identity in seen:
            duplicates += 1
            continue
        seen.add(identity)
        truth.append(label.label)
        predicted.append(record.prediction)
        scores.append(record.probabilities)
    return JoinedFeedback(truth, predicted, scores, unmatched, ambiguous, duplicates)


def live_metric_names(task: Task, configured: Iterable[str]) -> tuple[str, ...]:
    """The issue's base live metrics for the task, then the config's other metrics."""
    names = list(BASE_LIVE_METRICS[task])
    for name in configured:
        spec = METRICS.get(name)
        if spec is not None and spec.task == task and name not in names:
            names.append(name)
    return tuple(names)


def _class_scores(
    probabilities: Sequence[Mapping[str, float] | Sequence[float] | None], classes: Sequence[str]
) -> npt.NDArray[Any] | None:
    """Per-class probabilities in `classes` order, or None unless every row has them."""
    import numpy as np

    matrix = []
    for entry in probabilities:
        if isinstance(entry, Mapping):
            if not all(label in entry for label in classes):
                return None
            matrix.append([float(entry[label]) for label in classes])
        elif isinstance(entry, Sequence) and len(entry) == len(classes):
            matrix.append([float(value) for value in entry])
        else:
            return None
    return np.asarray(matrix, dtype="float64") if matrix else None


def live_metrics(
    joined: JoinedFeedback,
    *,
    task: Task,
    metric_names: Sequence[str],
    classes: Sequence[Any] | None,
) -> dict[str, float]:
    """Each live metric as a finite float; a metric the rows cannot define is left out.

    Labels and predictions of a classifier are compared as strings (a CSV label "1" grades a
    captured prediction 1); a regressor's as floats, with unparseable labels dropped.
    """
    import numpy as np

    from pipelines.training import compute_metrics

    if not joined.labels:
        return {}
    if task == "classification":
        y_true = np.asarray([str(value) for value in joined.labels], dtype=object)
        y_pred = np.asarray([str(value) for value in joined.predictions], dtype=object)
        labels = [str(value) for value in classes] if classes else []
        if not labels:
            labels = sorted(set(y_true) | set(y_pred))
        scores = _class_scores(joined.probabilities, labels)
        values = compute_metrics(
            metric_names, task=task, y_true=y_true, y_pred=y_pred, scores=scores, classes=labels
        )
    else:
        pairs = [
            (truth, guess)
            for truth, guess in (
                (_as_float(a), _as_float(b))
                for a, b in zip(joined.labels, joined.predictions, strict=True)
            )
            if truth is not None and guess is not None
        ]
        if not pairs:
            return {}
        values = compute_metrics(
            metric_names,
            task=task,
            y_true=np.asarray([truth for truth, _ in pairs]),
            y_pred=np.asarray([guess for _, guess in pairs]),
        )
    return {name: value for name, value in values.items() if math.isfinite(value)}


def _as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class LiveMetricAlarm:
    """The concept-drift alarm of one model: its primary metric past its gate threshold."""

    metric: str
    metric_name: str
    threshold: float
    higher_is_better: bool

    def degraded(self, value: float) -> bool:
        return value < self.threshold if self.higher_is_better else value > self.threshold


def live_metric_alarm(config: ModelConfig) -> LiveMetricAlarm | None:
    """The primary metric and its gate threshold; else the first gated metric; else None."""
    gated = [name for name in config.metric_names if name in config.gate.thresholds]
    ordered = sorted(gated, key=lambda name: name != config.primary_metric)
    if not ordered:
        return None
    metric = ordered[0]
    return LiveMetricAlarm(
        metric=metric,
        metric_name=LIVE_METRIC_NAMES[metric],
        threshold=float(config.gate.thresholds[metric]),
        higher_is_better=METRICS[metric].higher_is_better,
    )


def feedback_report(
    *,
    model: str,
    version: Any,
    env: str,
    now: datetime,
    source: str,
    labels: int,
    joined: JoinedFeedback,
    reading: CaptureReading,
    min_samples: int,
    metrics: Mapping[str, float],
    alarm: LiveMetricAlarm | None,
    degraded: bool | None,
) -> dict[str, Any]:
    """The JSON report one graded feedback file writes (`reports/feedback/<model>/<stamp>.json`)."""
    return {
        "model": model,
        "model_version": version,
        "env": env,
        "generated_at": iso(now),
        "source": source,
        "labels": labels,
        "graded": len(joined.labels),
        "unmatched": joined.unmatched,
        "ambiguous": joined.ambiguous,
        "duplicates": joined.duplicates,
        "capture_files": reading.files,
        "corrupt_captures": len(reading.corrupt_keys),
        "min_samples": min_samples,
        "metrics": dict(metrics),
        "alarm": (
            {
                "metric": alarm.metric,
                "metric_name": alarm.metric_name,
                "threshold": alarm.threshold,
                "higher_is_better": alarm.higher_is_better,
                "degraded": degraded,
            }
            if alarm is not None
            else None
        ),
    }


# --------------------------------------------------------------------------- retraining


def retrain_execution_name(dataset: str, version_id: str, number: int) -> str:
    """The execution name of the `number`-th retrain of a dataset version (the upload's own
    run is `pipelines.uploads.execution_name`)."""
    from pipelines.uploads import later_execution_name

    return later_execution_name(dataset, version_id, "retrain", number)


def cooldown_cutoff(now: datetime, hours: float) -> str:
    """The last start time that no longer blocks a retrain (ISO text, compared as text)."""
    return iso(_utc(now) - timedelta(hours=hours))


def cooldown_until(last_started_at: str, hours: float) -> str:
    return iso(parse_time(last_started_at) + timedelta(hours=hours))
