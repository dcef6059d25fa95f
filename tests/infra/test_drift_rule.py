"""The deployed drift alarms decide like the report (`pipelines.drift.report_drifts`)."""

from __future__ import annotations

import pytest

from pipelines.drift import DriftThresholds, report_drifts
from pipelines.drift_thresholds import over
from tests.infra.conftest import SynthesizedEnv

pytestmark = pytest.mark.infra

OPERATORS = {"GreaterThanThreshold": over}


def test_a_single_drifted_feature_crosses_the_drifted_share_alarm_in_every_env(
    each_env: SynthesizedEnv,
) -> None:
    (alarm,) = [
        props
        for props in each_env.properties("Monitoring", "AWS::CloudWatch::Alarm").values()
        if props.get("Namespace") == "Driftline" and props.get("MetricName") == "DriftedShare"
    ]
    alarm_fires = OPERATORS[alarm["ComparisonOperator"]]
    limits = DriftThresholds(drifted_share=float(alarm["Threshold"]))
    for drifted, total in [(0, 5), (1, 5), (1, 20), (5, 5)]:
        share = drifted / total
        assert alarm_fires(share, alarm["Threshold"]) == report_drifts(share, False, limits)
    assert alarm_fires(1 / 20, alarm["Threshold"])  # one of twenty features pages


def test_every_drift_alarm_compares_as_the_report_does(each_env: SynthesizedEnv) -> None:
    alarms = [
        props
        for props in each_env.properties("Monitoring", "AWS::CloudWatch::Alarm").values()
        if props.get("MetricName") in {"MaxFeaturePSI", "DriftedShare", "PredictionPSI"}
    ]
    assert alarms and {a["ComparisonOperator"] for a in alarms} == {"GreaterThanThreshold"}
