"""Every Driftline metric an alarm or a dashboard watches is one the handlers publish.

The names live in `pipelines/metric_names.py`; this reads them back out of the synthesized
templates (alarm metrics, Metrics Insights queries, dashboard bodies), so a construct that
spells a metric its own way, or watches one nobody publishes, fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from pipelines import metric_names
from tests.infra.conftest import SynthesizedEnv

pytestmark = pytest.mark.infra

PUBLISHED = {
    value
    for name, value in vars(metric_names).items()
    if name.isupper() and isinstance(value, str) and not name.endswith("DIMENSION")
} | set(metric_names.LIVE_METRIC_NAMES.values())
PUBLISHED.discard(metric_names.NAMESPACE)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _text(node: Any) -> str:
    """A template value as text: Fn::Join parts joined, other tokens as their JSON."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and "Fn::Join" in node:
        return "".join(_text(part) for part in node["Fn::Join"][1])
    return json.dumps(node)


def watched_metrics(template: dict[str, Any]) -> set[str]:
    """Names of Driftline-namespace metrics the template's alarms and dashboards reference."""
    found: set[str] = set()
    namespace = metric_names.NAMESPACE
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            if properties.get("Namespace") == namespace:
                found.add(properties["MetricName"])
            for node in _walk(properties.get("Metrics", [])):
                metric = node.get("Metric")
                if isinstance(metric, dict) and metric.get("Namespace") == namespace:
                    found.add(metric["MetricName"])
                expression = node.get("Expression")
                if isinstance(expression, str) and f'"{namespace}"' in expression:
                    found.update(re.findall(r"SELECT \w+\((\w+)\)", expression))
        if resource["Type"] == "AWS::CloudWatch::Dashboard":
            body = _text(properties["DashboardBody"])
            for widget in re.findall(rf'\\?"{namespace}\\?",\\?"(\w+)\\?"', body):
                found.add(widget)
            found.update(re.findall(r'MetricName=\\*"(\w+)\\*"', body))
    return found


@pytest.mark.parametrize("part", ["Serving", "Monitoring"])
def test_alarms_and_dashboards_watch_only_published_metrics(
    local: SynthesizedEnv, part: str
) -> None:
    watched = watched_metrics(local.template_json(part))

    assert watched, f"no Driftline metric found in the {part} stack: the reader is broken"
    assert watched <= PUBLISHED, watched - PUBLISHED


def test_the_drift_alarms_watch_the_drift_monitors_metrics(local: SynthesizedEnv) -> None:
    watched = watched_metrics(local.template_json("Monitoring"))

    assert {
        metric_names.MAX_FEATURE_PSI,
        metric_names.DRIFTED_SHARE,
        metric_names.PREDICTION_PSI,
        metric_names.DRIFT_SCORE,
    } <= watched
    assert metric_names.MODEL_ERRORS in watched_metrics(local.template_json("Serving"))
