"""Section 6b: embedded metric format — log lines that CloudWatch Logs turns into metrics."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from driftline.twin.adapters.base import LOG, patch

_EMF_MAX_VALUES = 100


def _emf_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def emf_metric_data(message: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, MetricData) for each directive of an EMF log line; [] for any other line.

    Follows CloudWatch's embedded metric format: `_aws.Timestamp` (epoch ms) and
    `_aws.CloudWatchMetrics` directives, each with a Namespace, DimensionSets (lists of
    root keys holding string values) and Metrics (root keys holding a number or up to 100
    numbers). A directive CloudWatch would reject (a dimension value missing or not a string,
    too many values) is skipped as a whole, as CloudWatch skips it; a metric whose root key is
    absent is skipped alone.
    """
    text = message.strip()
    if not text.startswith("{") or '"_aws"' not in text:
        return []
    try:
        document = json.loads(text)
    except ValueError:
        return []
    meta = document.get("_aws") if isinstance(document, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("CloudWatchMetrics"), list):
        return []
    stamp: Any = meta.get("Timestamp")
    if not _emf_number(stamp):
        return []
    # moto keeps naive UTC datetimes, as its own PutMetricData parsing does.
    moment = datetime.fromtimestamp(float(stamp) / 1000, UTC).replace(tzinfo=None)
    found: list[tuple[str, list[dict[str, Any]]]] = []
    for directive in meta["CloudWatchMetrics"]:
        data = _emf_directive(document, directive, moment)
        if data is not None:
            found.append(data)
    return found


def _emf_directive(
    document: Mapping[str, Any], directive: Any, moment: datetime
) -> tuple[str, list[dict[str, Any]]] | None:
    if not isinstance(directive, dict):
        return None
    namespace = directive.get("Namespace")
    dimension_sets = directive.get("Dimensions")
    metrics = directive.get("Metrics")
    if not isinstance(namespace, str) or not namespace:
        return None
    if not isinstance(dimension_sets, list) or not isinstance(metrics, list):
        return None
    resolved: list[list[dict[str, str]]] = []
    for names in dimension_sets or [[]]:
        if not isinstance(names, list):
            return None
        dimensions = []
        for name in names:
            value = document.get(name) if isinstance(name, str) else None
            if not isinstance(value, str) or not value:
                return None
            dimensions.append({"Name": name, "Value": value})
        resolved.append(dimensions)
    data: list[dict[str, Any]] = []
    for metric in metrics:
        name = metric.get("Name") if isinstance(metric, dict) else None
        if not isinstance(name, str) or name not in document:
            continue
        value = document[name]
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > _EMF_MAX_VALUES or not all(map(_emf_number, values)):
            return None
        unit = metric.get("Unit")
        for dimensions in resolved:
            datum: dict[str, Any] = {
                "MetricName": name,
                "Dimensions": dimensions,
                "Timestamp": moment,
            }
            if isinstance(unit, str) and unit:
                datum["Unit"] = unit
            if len(values) == 1:
                datum["Value"] = float(values[0])
            else:
                datum["Values"] = [float(v) for v in values]
            data.append(datum)
    return (namespace, data) if data else None


def adapt_emf_metrics() -> None:
    """moto 5.2.5 stores log events but never extracts embedded-metric-format metrics.

    On AWS, CloudWatch Logs turns every EMF line a Lambda prints (Powertools Metrics does
    that) into metric datapoints. Wraps `LogsBackend.put_log_events`, the point both the
    PutLogEvents API and the twin's Lambda log shipping go through, to hand each EMF line's
    datapoints to `CloudWatchBackend.put_metric_data`, so the alarm evaluation of
    `adapt_cloudwatch_alarms` runs on them. A line that is not EMF is only stored.
    """
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.logs.models import LogsBackend

    put_log_events = LogsBackend.put_log_events

    def put_and_extract_metrics(
        self: Any, log_group_name: str, log_stream_name: str, log_events: list[dict[str, Any]]
    ) -> Any:
        result = put_log_events(self, log_group_name, log_stream_name, log_events)
        for event in log_events:
            for namespace, metric_data in emf_metric_data(str(event.get("message", ""))):
                try:
                    backend = cloudwatch_backends[self.account_id][self.region_name]
                    backend.put_metric_data(namespace, metric_data)
                except Exception as error:  # metrics must never fail the log write
                    LOG.warning("EMF metrics in %s: %s", log_group_name, error)
        return result

    patch(LogsBackend, "put_log_events", put_and_extract_metrics)
