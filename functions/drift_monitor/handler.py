"""Compare each deployed model's recent captured traffic with its training baseline.

Two EventBridge rules invoke it, each with an explicit input (see `MonitorRequest`):
`{"trigger": "schedule"}` every N minutes checks every deployed model, and
`{"trigger": "capture", "key": <object key>}` when a capture object lands checks that object's
model, at most once per `DRIFTLINE_CAPTURE_CHECK_INTERVAL_SECONDS` (captures arrive one per
request; the window is the same either way). `{"trigger": "manual", "model": M}` checks one
model now. Each check writes `reports/drift/<model>/<stamp>.{json,html}` and `latest.json`,
and publishes the model's drift metrics as EMF (see `pipelines.monitoring`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from functions.drift_monitor.baseline import Baseline, BaselineError, load_baseline
from functions.shared import storage
from functions.shared.capture_store import list_objects, read_captures
from functions.shared.emf import publish_metrics
from functions.shared.loop_state import claim_drift_check, record_drift_check
from functions.shared.registry_reads import deployed_models, deployed_version, model_version_record
from functions.shared.settings import DriftMonitorSettings, drift_monitor_settings, parse_event
from functions.shared.state import json_safe
from pipelines.keys import (
    capture_hour_prefixes,
    drift_report_keys,
    latest_report_key,
    model_of_capture_key,
)
from pipelines.metric_names import (
    CORRUPT_CAPTURES,
    DRIFT_SAMPLES,
    DRIFT_SCORE,
    DRIFTED_SHARE,
    FEATURE_DIMENSION,
    FEATURE_PSI,
    MAX_FEATURE_PSI,
    MODEL_DIMENSION,
    PREDICTION_PSI,
)
from pipelines.monitoring import (
    MAX_CAPTURE_FILES,
    CaptureReading,
    CaptureRecord,
    DriftMetrics,
    current_frame,
    drift_check_document,
    drift_metrics,
    iso,
    latest_summary,
    prediction_kind,
    select_records,
)

if TYPE_CHECKING:  # scipy and the statistics load on the first check, not at import
    from pipelines.drift import DriftReport

logger = Logger()


class MonitorRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    trigger: Literal["schedule", "capture", "manual"]
    key: str | None = None
    model: str | None = None


class DriftCheckError(RuntimeError):
    """At least one model could not be checked; the others were."""


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(MonitorRequest, event, what="drift monitor input")
    return run(request, drift_monitor_settings(), datetime.now(UTC))


def run(request: MonitorRequest, settings: DriftMonitorSettings, now: datetime) -> dict[str, Any]:
    checked: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    failed: dict[str, str] = {}
    for model in _models(request, settings, skipped):
        try:
            outcome = check(model, request, settings, now)
        except (BaselineError, ValueError) as error:
            logger.exception("drift check failed", extra={"model": model})
            failed[model] = str(error)
            continue
        (checked if "report_key" in outcome else skipped).append(outcome)
    summary = {"trigger": request.trigger, "checked": checked, "skipped": skipped}
    if failed:
        problems = "; ".join(f"{model}: {reason}" for model, reason in failed.items())
        raise DriftCheckError(f"drift check failed for {len(failed)} model(s): {problems}")
    return summary


def _models(
    request: MonitorRequest, settings: DriftMonitorSettings, skipped: list[dict[str, str]]
) -> list[str]:
    if request.trigger == "capture":
        model = model_of_capture_key(request.key or "")
        if model is None:
            logger.info("not a capture object: skipped", extra={"key": request.key})
            skipped.append({"key": str(request.key), "reason": "not a capture object"})
            return []
        return [model]
    if request.model is not None:
        return [request.model]
    return deployed_models(settings.endpoints_table)


def check(
    model: str, request: MonitorRequest, settings: DriftMonitorSettings, now: datetime
) -> dict[str, Any]:
    """One model's drift check; a dict with `report_key` when a report was written."""
    version = deployed_version(settings.endpoints_table, model)
    if version is None:
        logger.info("captures for an unknown model skipped", extra={"model": model})
        return {"model": model, "reason": "no deployed version (unknown model)"}
    record = model_version_record(settings.models_table, model, version)
    if record is None:
        logger.info("deployed version not in the registry: skipped", extra={"model": model})
        return {"model": model, "reason": f"version {version} is not in the model registry"}
    if request.trigger == "capture":
        interval = settings.capture_check_interval_seconds
        if not claim_drift_check(settings.runs_table, model, now, interval):
            logger.debug("checked recently: skipped", extra={"model": model})
            return {"model": model, "reason": f"checked within the last {interval} s"}
    else:
        record_drift_check(settings.runs_table, model, now)

    baseline = load_baseline(settings.artifacts_bucket, record)
    start = now - timedelta(minutes=settings.drift_window_minutes)
    listed = list_objects(
        settings.artifacts_bucket, capture_hour_prefixes(model, start, now), modified_after=start
    )
    listed.sort(key=lambda entry: entry.last_modified, reverse=True)
    unread = max(0, len(listed) - MAX_CAPTURE_FILES)
    batch = read_captures(
        settings.artifacts_bucket, [entry.key for entry in listed[:MAX_CAPTURE_FILES]]
    )
    for key, problem in batch.corrupt.items():
        logger.warning("corrupt capture skipped", extra={"key": key, "problem": problem})
    selection = select_records(batch.records, start=start, end=now, model_version=version)
    report = _compare(baseline, selection.records, settings)
    metrics = drift_metrics(report)
    _publish(model, metrics, corrupt=len(batch.corrupt))

    report_key, html_key = drift_report_keys(model, now)
    document = json_safe(
        drift_check_document(
            model=model,
            version=version,
            env=settings.env,
            trigger=request.trigger,
            now=now,
            window_start=start,
            window_minutes=settings.drift_window_minutes,
            baseline={"key": baseline.key, "run_id": baseline.run_id, "rows": len(baseline.frame)},
            reading=CaptureReading(batch.files, list(batch.corrupt), unread),
            selection=selection,
            metrics=metrics,
            report=report,
            html_key=html_key,
        )
    )
    from pipelines.drift_html import render_html

    bucket = settings.artifacts_bucket
    storage.put_json(bucket, report_key, document)
    storage.put_text(
        bucket,
        html_key,
        render_html(document["report"], title=f"Drift report: {model} v{version} ({iso(now)})"),
        content_type="text/html",
    )
    storage.put_json(
        bucket,
        latest_report_key(model),
        latest_summary(document, bucket=bucket, report_key=report_key, html_key=html_key),
    )
    logger.info(
        "drift checked",
        extra={
            "model": model,
            "version": version,
            "verdict": report.verdict,
            "samples": metrics.samples,
            "corrupt_captures": len(batch.corrupt),
            "report_key": report_key,
        },
    )
    return {
        "model": model,
        "version": version,
        "verdict": report.verdict,
        "samples": metrics.samples,
        "corrupt_captures": len(batch.corrupt),
        "drifted_features": report.drifted_features,
        "report_key": report_key,
        "html_key": html_key,
    }


def _compare(
    baseline: Baseline, records: list[CaptureRecord], settings: DriftMonitorSettings
) -> DriftReport:
    from pipelines.drift import compute_drift

    prediction = baseline.prediction
    current = current_frame(
        records,
        kinds=baseline.kinds,
        prediction=prediction or "prediction",
        task=baseline.task,
    )
    return compute_drift(
        baseline.frame,
        current,
        features={name: kind for name, kind in baseline.kinds.items() if name in baseline.frame},
        prediction=prediction,
        prediction_kind=prediction_kind(baseline.task) if prediction else None,
        thresholds=settings.thresholds(),
    )


def _publish(model: str, metrics: DriftMetrics, *, corrupt: int) -> None:
    values: dict[str, tuple[float, MetricUnit]] = {
        DRIFT_SAMPLES: (float(metrics.samples), MetricUnit.Count)
    }
    if corrupt:
        values[CORRUPT_CAPTURES] = (float(corrupt), MetricUnit.Count)
    if metrics.sufficient:
        if metrics.max_feature_psi is not None:
            values[MAX_FEATURE_PSI] = (metrics.max_feature_psi, MetricUnit.NoUnit)
        if metrics.drifted_share is not None:
            values[DRIFTED_SHARE] = (metrics.drifted_share, MetricUnit.NoUnit)
        if metrics.prediction_psi is not None:
            values[PREDICTION_PSI] = (metrics.prediction_psi, MetricUnit.NoUnit)
        if metrics.drift_score is not None:
            values[DRIFT_SCORE] = (metrics.drift_score, MetricUnit.NoUnit)
    publish_metrics({MODEL_DIMENSION: model}, values)
    for feature, psi in sorted(metrics.feature_psi.items()):
        publish_metrics(
            {MODEL_DIMENSION: model, FEATURE_DIMENSION: feature},
            {FEATURE_PSI: (psi, MetricUnit.NoUnit)},
        )
