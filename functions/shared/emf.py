"""Metrics as embedded-metric-format log lines (CloudWatch Logs turns them into metrics)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

from pipelines.metric_names import NAMESPACE


def publish_metrics(
    dimensions: Mapping[str, str], values: Mapping[str, tuple[float, MetricUnit]]
) -> None:
    """One EMF blob (a log line CloudWatch turns into metrics) in the Driftline namespace.

    Alarms match a metric by its exact dimension set ({Model} or {Model, Feature}). Powertools
    adds a `service` dimension from POWERTOOLS_SERVICE_NAME, which would put every datapoint
    into a metric no alarm watches, so the service dimension is switched off here (service="").
    Each blob has its own provider: one blob holds one value per dimension name, so every
    feature needs its own.
    """
    if not values:
        return
    provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service="")
    for name, value in dimensions.items():
        provider.add_dimension(name=name, value=value)
    for metric, (number, unit) in values.items():
        provider.add_metric(name=metric, unit=unit, value=number)
    provider.flush_metrics()
