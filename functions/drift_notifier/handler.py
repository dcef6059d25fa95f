"""Publish a drift notification that names the drifted features, their scores and the report.

CloudWatch's own alarm message can only say that a metric crossed a threshold. An EventBridge
rule per model sends this function the composite drift alarm's state changes, transformed to
`AlarmChange` (the model name is a constant of the rule's target), and it adds what the
latest drift report knows.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from functions.shared import storage
from functions.shared.notifications import notify
from functions.shared.settings import notifier_settings, parse_event
from pipelines.keys import latest_report_key
from pipelines.monitoring import drift_alert

logger = Logger()


class AlarmChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str = Field(min_length=1)
    alarm: str = Field(min_length=1)
    state: str = Field(min_length=1)
    previous_state: str | None = None
    reason: str = ""
    time: str | None = None


@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    change = parse_event(AlarmChange, event, what="drift notifier input")
    return run(change)


def run(change: AlarmChange) -> dict[str, Any]:
    settings = notifier_settings()
    bucket = settings.artifacts_bucket
    latest: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    try:
        latest = storage.get_json(bucket, latest_report_key(change.model))
        document = storage.get_json(bucket, str(latest["report_key"]))
        report = document.get("report")
    except storage.ObjectNotFound as error:
        logger.warning("no drift report to quote", extra={"error": str(error)})
    subject, message = drift_alert(
        env=settings.env,
        model=change.model,
        state=change.state,
        alarm=change.alarm,
        reason=change.reason,
        latest=latest,
        report=report,
    )
    message_id = notify(settings.alerts_topic_arn, subject, message)
    logger.info("drift notification sent", extra={"model": change.model, "state": change.state})
    return {
        "model": change.model,
        "state": change.state,
        "message_id": message_id,
        "subject": subject,
        "report_uri": latest.get("report_uri") if latest else None,
    }
