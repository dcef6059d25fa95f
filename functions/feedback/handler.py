"""Grade captured predictions with ground-truth labels uploaded to `feedback/<model>/...`.

A label file (CSV with a `request_id,label[,row]` header, or JSON lines with those keys) in the
datasets bucket is joined by request id with the model's captures of the last
`DRIFTLINE_FEEDBACK_LOOKBACK_DAYS` days. With at least `DRIFTLINE_FEEDBACK_MIN_SAMPLES` graded
rows, the live metrics (accuracy and F1, or RMSE and MAE, plus the model config's other
metrics the captures allow) go out as `Live*` EMF metrics; the concept-drift alarm compares the
primary one with the config's gate threshold. A file that cannot be read is reported to SNS and
not retried: the same bytes would fail again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from functions.shared import storage
from functions.shared.capture_store import list_objects, read_captures
from functions.shared.configs import resolve_model_config
from functions.shared.emf import publish_metrics
from functions.shared.notifications import notify
from functions.shared.registry_reads import serving_version_record
from functions.shared.settings import FeedbackSettings, feedback_settings, parse_event
from functions.shared.state import json_safe
from pipelines.keys import (
    capture_day_prefixes,
    feedback_report_key,
    model_of_feedback_key,
    request_id_of_capture_key,
)
from pipelines.metric_names import FEEDBACK_SAMPLES, LIVE_METRIC_NAMES
from pipelines.model_config import ModelConfigError, Task
from pipelines.monitoring import (
    CaptureReading,
    FeedbackError,
    LiveMetricAlarm,
    feedback_report,
    join_feedback,
    live_metric_alarm,
    live_metric_names,
    live_metrics,
    parse_feedback,
)

logger = Logger()


class _Bucket(BaseModel):
    name: str = Field(min_length=1)


class _Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    key: str = Field(min_length=1)
    version_id: str | None = Field(default=None, alias="version-id")


class _Detail(BaseModel):
    bucket: _Bucket
    object: _Object


class FeedbackUpload(BaseModel):
    """EventBridge's S3 "Object Created" event, the fields this function reads."""

    model_config = ConfigDict(extra="ignore")

    detail: _Detail


@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    upload = parse_event(FeedbackUpload, event, what="feedback event")
    return run(upload, feedback_settings(), datetime.now(UTC))


def run(upload: FeedbackUpload, settings: FeedbackSettings, now: datetime) -> dict[str, Any]:
    bucket, key = upload.detail.bucket.name, upload.detail.object.key
    source = f"s3://{bucket}/{key}"
    model = model_of_feedback_key(key)
    if model is None:
        logger.info("not a feedback file: skipped", extra={"key": key})
        return {"graded": 0, "reason": "key is not feedback/<model>/<file>"}
    logger.append_keys(model=model, key=key)
    record = serving_version_record(settings.models_table, settings.endpoints_table, model)
    if record is None:
        logger.info("feedback for an unknown model skipped")
        return {"model": model, "graded": 0, "reason": "unknown model"}
    try:
        text = storage.get_bytes(bucket, key, upload.detail.object.version_id).decode("utf-8")
        labels = parse_feedback(text, source=source)
    except (FeedbackError, UnicodeDecodeError) as error:
        problem = str(error) if isinstance(error, FeedbackError) else f"{source}: not UTF-8"
        logger.error("feedback file rejected", extra={"problem": problem})
        notify(
            settings.alerts_topic_arn,
            f"Driftline {settings.env}: feedback file rejected for {model}",
            f"{problem}\nExpected CSV with a request_id,label[,row] header or JSON lines with "
            "those keys.",
        )
        return {"model": model, "graded": 0, "reason": problem}

    task, classes, metric_names, alarm = _model_facts(model, record, settings)
    wanted = {label.request_id for label in labels}
    listed = list_objects(
        settings.artifacts_bucket,
        capture_day_prefixes(model, now, settings.feedback_lookback_days),
    )
    keys = [entry.key for entry in listed if request_id_of_capture_key(entry.key) in wanted]
    batch = read_captures(settings.artifacts_bucket, keys)
    for capture_key, problem in batch.corrupt.items():
        logger.warning(
            "corrupt capture skipped", extra={"capture": capture_key, "problem": problem}
        )
    joined = join_feedback(labels, batch.records)
    graded = len(joined.labels)
    names = live_metric_names(task, metric_names)
    values = (
        live_metrics(joined, task=task, metric_names=names, classes=classes)
        if graded >= settings.feedback_min_samples
        else {}
    )
    publish_metrics(
        {"Model": model},
        {
            FEEDBACK_SAMPLES: (float(graded), MetricUnit.Count),
            **{
                LIVE_METRIC_NAMES[name]: (value, MetricUnit.NoUnit)
                for name, value in values.items()
            },
        },
    )
    degraded = None
    if alarm is not None and alarm.metric in values:
        degraded = alarm.degraded(values[alarm.metric])
    report = json_safe(
        feedback_report(
            model=model,
            version=record.get("version"),
            env=settings.env,
            now=now,
            source=source,
            labels=len(labels),
            joined=joined,
            reading=CaptureReading(batch.files, list(batch.corrupt), 0),
            min_samples=settings.feedback_min_samples,
            metrics=values,
            alarm=alarm,
            degraded=degraded,
        )
    )
    report_key = feedback_report_key(model, now)
    storage.put_json(settings.artifacts_bucket, report_key, report)
    logger.info(
        "feedback graded",
        extra={"graded": graded, "unmatched": joined.unmatched, "metrics": values},
    )
    return {
        "model": model,
        "graded": graded,
        "unmatched": joined.unmatched,
        "metrics": values,
        "degraded": degraded,
        "report_key": report_key,
    }


def _model_facts(
    model: str, record: dict[str, Any], settings: FeedbackSettings
) -> tuple[Task, list[Any] | None, tuple[str, ...], LiveMetricAlarm | None]:
    """Task, classes, configured metrics and concept-drift alarm of the serving version.

    The archive's metadata says what the model is; the model config (an uploaded override or
    the packaged one, through the shared configs adapter) says which metrics matter and where
    the gate draws the line. A config that no longer fits the model leaves the metadata's
    metrics and no threshold.
    """
    from pipelines.model_io import read_metadata

    metadata = read_metadata(storage.get_bytes(settings.artifacts_bucket, str(record["model_key"])))
    task: Task = "classification" if metadata.task == "classification" else "regression"
    columns = {**metadata.feature_types, metadata.target: "string"}
    try:
        resolved = resolve_model_config(model, columns, datasets_bucket=settings.datasets_bucket)
    except ModelConfigError as error:
        logger.warning("model config unusable: metadata metrics only", extra={"error": str(error)})
        test_metrics = tuple((metadata.metrics.get("test") or {}).keys())
        return task, metadata.classes, test_metrics, None
    return task, metadata.classes, resolved.config.metric_names, live_metric_alarm(resolved.config)
