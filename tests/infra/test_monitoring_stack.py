"""The Monitoring stack: drift alarms per model and env, the closed loop's rules, operations."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra.config import EnvConfig, load_env_config
from tests.infra.conftest import SynthesizedEnv, cdk_context

pytestmark = pytest.mark.infra

MODEL = "breast_cancer"


def config_of(env: SynthesizedEnv) -> EnvConfig:
    return load_env_config(cdk_context(), env.name)


def topic_import(env: SynthesizedEnv) -> dict[str, str]:
    (reference,) = next(
        value
        for value in env.template_json("Monitoring")["Resources"].values()
        if value["Type"] == "AWS::CloudWatch::CompositeAlarm"
    )["Properties"]["AlarmActions"]
    assert "AlertsTopic" in reference["Fn::ImportValue"]
    return {"Fn::ImportValue": str(reference["Fn::ImportValue"])}


def test_drift_alarms_use_the_envs_thresholds_and_check_period(each_env: SynthesizedEnv) -> None:
    config = config_of(each_env)
    expected = {
        "MaxFeaturePSI": config.thresholds.psi,
        "DriftedShare": config.thresholds.drifted_share,
        "PredictionPSI": config.thresholds.prediction_psi,
    }
    alarms = {
        props["MetricName"]: props
        for props in each_env.properties("Monitoring", "AWS::CloudWatch::Alarm").values()
        if props.get("Namespace") == "Driftline" and props["MetricName"] in expected
    }

    assert set(alarms) == set(expected)
    for metric, threshold in expected.items():
        props = alarms[metric]
        assert props["Threshold"] == threshold, metric
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["TreatMissingData"] == "notBreaching"
        assert props["Statistic"] == "Maximum"
        assert props["Period"] == config.schedules.drift_check_minutes * 60
        assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (2, 1)
        assert props["Dimensions"] == [{"Name": "Model", "Value": MODEL}]
        assert "AlarmActions" not in props  # the composite notifies once for all three


def test_composite_drift_alarm_fires_on_any_child_and_notifies_the_topic(
    local: SynthesizedEnv,
) -> None:
    _, props = local.only("Monitoring", "AWS::CloudWatch::CompositeAlarm", "DriftAlarm")
    parts = props["AlarmRule"]["Fn::Join"][1]
    children = [part["Fn::GetAtt"][0] for part in parts if isinstance(part, dict)]
    text = "".join(part if isinstance(part, str) else "<arn>" for part in parts)

    assert text == '(ALARM("<arn>") OR ALARM("<arn>") OR ALARM("<arn>"))'
    assert sorted(child.removeprefix("DriftBreastCancer")[:-8] for child in children) == [
        "DriftedShareAlarm",
        "FeaturePsiAlarm",
        "PredictionPsiAlarm",
    ]
    assert props["AlarmActions"] == props["OKActions"] == [topic_import(local)]


def test_concept_drift_alarm_watches_the_primary_metric_at_the_gate_threshold(
    local: SynthesizedEnv,
) -> None:
    _, props = local.only("Monitoring", "AWS::CloudWatch::Alarm", "ConceptDriftAlarm")

    # models/breast_cancer.yaml: primary metric roc_auc, gate threshold 0.95
    assert (props["MetricName"], props["Threshold"]) == ("LiveRocAuc", 0.95)
    assert (props["ComparisonOperator"], props["Statistic"]) == ("LessThanThreshold", "Minimum")
    assert props["TreatMissingData"] == "notBreaching"
    assert props["AlarmActions"] == [topic_import(local)]


def test_drift_checks_run_on_the_envs_schedule_and_when_captures_land(
    each_env: SynthesizedEnv,
) -> None:
    minutes = config_of(each_env).schedules.drift_check_minutes
    _, schedule = each_env.only("Monitoring", "AWS::Events::Rule", "DriftSchedule")
    _, capture = each_env.only("Monitoring", "AWS::Events::Rule", "OnCapture")
    _, feedback = each_env.only("Monitoring", "AWS::Events::Rule", "OnFeedback")

    assert schedule["ScheduleExpression"] == f"rate({minutes} minutes)"
    assert json.loads(schedule["Targets"][0]["Input"]) == {"trigger": "schedule"}
    pattern = capture["EventPattern"]
    assert (pattern["source"], pattern["detail-type"]) == (["aws.s3"], ["Object Created"])
    assert pattern["detail"]["object"] == {"key": [{"prefix": "captures/"}]}
    assert "ArtifactsBucket" in pattern["detail"]["bucket"]["name"][0]["Fn::ImportValue"]
    transformer = capture["Targets"][0]["InputTransformer"]
    assert transformer["InputTemplate"] == '{"trigger":"capture","key":<detail-object-key>}'
    assert feedback["EventPattern"]["detail"]["object"] == {"key": [{"prefix": "feedback/"}]}
    assert (
        "DatasetsBucket"
        in (feedback["EventPattern"]["detail"]["bucket"]["name"][0]["Fn::ImportValue"])
    )
    for rule in (schedule, capture, feedback):
        assert rule["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"] == 2
        assert "DeadLetterConfig" in rule["Targets"][0]


def test_drift_alarm_goes_to_the_notifier_and_drift_or_concept_drift_to_retrain(
    local: SynthesizedEnv,
) -> None:
    composite, _ = local.only("Monitoring", "AWS::CloudWatch::CompositeAlarm", "DriftAlarm")
    concept, _ = local.only("Monitoring", "AWS::CloudWatch::Alarm", "ConceptDriftAlarm")
    _, notify = local.only("Monitoring", "AWS::Events::Rule", "NotifyDrift")
    _, retrain = local.only("Monitoring", "AWS::Events::Rule", "RetrainOnAlarm")

    for rule, alarms in ((notify, [composite]), (retrain, [composite, concept])):
        pattern = rule["EventPattern"]
        assert pattern["source"] == ["aws.cloudwatch"]
        assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
        assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
        assert pattern["resources"] == [{"Fn::GetAtt": [alarm, "Arn"]} for alarm in alarms]
    notify_input = notify["Targets"][0]["InputTransformer"]["InputTemplate"]
    retrain_input = retrain["Targets"][0]["InputTransformer"]["InputTemplate"]
    assert notify_input.startswith('{"model":"breast_cancer","alarm":<detail-alarmName>')
    assert retrain_input == (
        '{"model":"breast_cancer","cause":"alarm","alarm":<detail-alarmName>,'
        '"reason":<detail-state-reason>}'
    )
    assert "Notifier" in notify["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    assert "Retrain" in retrain["Targets"][0]["Arn"]["Fn::GetAtt"][0]


def test_cooldown_and_scheduled_retraining_follow_the_env(each_env: SynthesizedEnv) -> None:
    schedules = config_of(each_env).schedules
    variables = each_env.function_properties("Monitoring", "retrain")["Environment"]["Variables"]
    scheduled = [
        k for k in each_env.resources("Monitoring", "AWS::Events::Rule") if "ScheduledRetrain" in k
    ]

    assert float(variables["DRIFTLINE_RETRAIN_COOLDOWN_HOURS"]) == schedules.retrain_cooldown_hours
    assert "StateMachine" in json.dumps(variables["DRIFTLINE_STATE_MACHINE_ARN"])
    if schedules.scheduled_retrain_days is None:
        assert scheduled == []
    else:
        _, rule = each_env.only("Monitoring", "AWS::Events::Rule", "ScheduledRetrain")
        assert rule["ScheduleExpression"] == f"rate({schedules.scheduled_retrain_days} days)"
        assert json.loads(rule["Targets"][0]["Input"]) == {"model": MODEL, "cause": "schedule"}


def test_drift_monitor_gets_the_envs_thresholds_and_window(each_env: SynthesizedEnv) -> None:
    thresholds = config_of(each_env).thresholds
    variables = each_env.function_properties("Monitoring", "drift_monitor")["Environment"][
        "Variables"
    ]

    assert float(variables["DRIFTLINE_PSI"]) == thresholds.psi
    assert float(variables["DRIFTLINE_KS_STATISTIC"]) == thresholds.ks_statistic
    assert float(variables["DRIFTLINE_DRIFTED_SHARE"]) == thresholds.drifted_share
    assert float(variables["DRIFTLINE_PREDICTION_PSI"]) == thresholds.prediction_psi
    assert int(variables["DRIFTLINE_MIN_SAMPLES"]) == thresholds.min_samples
    assert variables["DRIFTLINE_DRIFT_WINDOW_MINUTES"] == "60"


def test_operational_alarms_cover_pipeline_queues_endpoints_and_functions(
    local: SynthesizedEnv,
) -> None:
    topic = topic_import(local)
    alarms = [props for props in local.properties("Monitoring", "AWS::CloudWatch::Alarm").values()]
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for props in alarms:
        if "MetricName" in props:  # the fleet drift alarm is a Metrics Insights query
            by_metric.setdefault(props["MetricName"], []).append(props)

    (failed,) = by_metric["ExecutionsFailed"]
    assert failed["Namespace"] == "AWS/States" and failed["Statistic"] == "Sum"
    assert "TrainingStateMachine" in failed["Dimensions"][0]["Value"]["Fn::ImportValue"]
    queues = by_metric["ApproximateNumberOfMessagesVisible"]
    assert len(queues) == 1  # the monitoring events' (the uploads' is in the Pipeline stack)
    throttled = by_metric["Throttles"]
    assert len(throttled) == 2  # the dedicated endpoint's and the shared endpoint's
    for throttles in throttled:
        assert {d["Name"] for d in throttles["Dimensions"]} == {"FunctionName", "Resource"}
    assert len(by_metric["Errors"]) == 4  # each monitoring function (see test_undelivered_events)
    for props in [failed, *queues, *throttled, *by_metric["Errors"]]:
        assert props["Threshold"] == 1
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert props["TreatMissingData"] == "notBreaching"
        assert props["AlarmActions"] == [topic]


def test_dashboard_shows_runs_drift_per_feature_endpoints_and_alarm_states(
    local: SynthesizedEnv,
) -> None:
    _, props = local.only("Monitoring", "AWS::CloudWatch::Dashboard", "Dashboard")
    body = "".join(
        part if isinstance(part, str) else "<ref>" for part in props["DashboardBody"]["Fn::Join"][1]
    )
    widgets = json.loads(body)["widgets"]
    titles = {w["properties"].get("title") for w in widgets}

    assert {
        "Pipeline runs",
        "Dead-letter queues",
        f"Drift: {MODEL}",
        f"Feature PSI: {MODEL}",
        f"Endpoint latency: {MODEL}",
        f"Endpoint invocations and errors: {MODEL}",
        "Alarm states",
    } <= titles
    (feature_psi,) = [w for w in widgets if w["properties"].get("title") == f"Feature PSI: {MODEL}"]
    (search,) = feature_psi["properties"]["metrics"]
    assert search[0]["expression"].startswith(
        'SEARCH(\'{Driftline,Feature,Model} MetricName="FeaturePSI" Model="breast_cancer"\''
    )
    (states,) = [w for w in widgets if w["properties"].get("title") == "Alarm states"]
    assert (
        len(states["properties"]["alarms"])
        == len(local.resources("Monitoring", "AWS::CloudWatch::Alarm")) + 1 + 5 + 2
    )  # + the composite drift alarm, + the dedicated endpoint's 2 and the shared endpoint's 3,
    # + the Pipeline stack's uploads queue and StartRun errors
    outputs = local.template_json("Monitoring")["Outputs"]
    assert "DashboardName" in outputs and "DriftMonitorFunctionName" in outputs


def test_monitoring_functions_get_only_the_access_they_use(local: SynthesizedEnv) -> None:
    template = local.template("Monitoring")
    policies = {
        key: json.dumps(value["Properties"]["PolicyDocument"])
        for key, value in local.resources("Monitoring", "AWS::IAM::Policy").items()
    }
    notifier = next(text for key, text in policies.items() if "Notifier" in key)
    retrain = next(text for key, text in policies.items() if "Retrain" in key)

    assert '"/reports/*"' in notifier and "s3:PutObject" not in notifier
    assert '"sns:Publish"' in notifier and "dynamodb:" not in notifier
    assert '"states:StartExecution"' in retrain and "s3:" not in retrain
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Action": "states:StartExecution"})]
                )
            }
        },
    )


# --- the dashboard on-call reads, and the runbook every alarm points at ----------------------

REPO = Path(__file__).resolve().parents[2]


def dashboard(env: SynthesizedEnv) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    _, props = env.only("Monitoring", "AWS::CloudWatch::Dashboard", "Dashboard")
    body = "".join(
        part if isinstance(part, str) else "<ref>" for part in props["DashboardBody"]["Fn::Join"][1]
    )
    widgets: list[dict[str, Any]] = json.loads(body)["widgets"]
    return props, widgets


def widget(widgets: list[dict[str, Any]], title: str) -> dict[str, Any]:
    (found,) = [w for w in widgets if w["properties"].get("title") == title]
    return found


def test_the_dashboard_is_named_for_its_env(each_env: SynthesizedEnv) -> None:
    props, _ = dashboard(each_env)

    assert props["DashboardName"] == f"Driftline-{each_env.name}"


def test_drift_share_and_the_live_metric_have_their_threshold_lines(local: SynthesizedEnv) -> None:
    thresholds = config_of(local).thresholds
    _, widgets = dashboard(local)

    drift = widget(widgets, f"Drift: {MODEL}")["properties"]
    lines = {(a["value"], a.get("yAxis", "left")) for a in drift["annotations"]["horizontal"]}
    assert (thresholds.psi, "left") in lines
    assert (thresholds.drifted_share, "right") in lines
    (share,) = [m for m in drift["metrics"] if "DriftedShare" in m]
    assert share[-1]["yAxis"] == "right"
    live = widget(widgets, f"Samples and live metrics: {MODEL}")["properties"]
    # models/breast_cancer.yaml: roc_auc gated at 0.95, the concept-drift alarm's threshold
    assert [a["value"] for a in live["annotations"]["horizontal"]] == [0.95]
    assert any("CorruptCaptures" in json.dumps(metric) for metric in live["metrics"])


def test_each_pipeline_step_shows_its_errors_and_longest_duration(local: SynthesizedEnv) -> None:
    _, widgets = dashboard(local)
    steps = {
        "validate", "prepare", "train", "evaluate", "gate", "register", "record_outcome",
        "start_run", "list_parts", "validate_part", "merge_parts",
    }  # fmt: skip

    for title, metric_name, statistic in (
        ("Pipeline step errors", "Errors", "Sum"),
        ("Pipeline step duration (longest, ms)", "Duration", "Maximum"),
    ):
        metrics = widget(widgets, title)["properties"]["metrics"]
        labels = {metric[-1]["label"] for metric in metrics}
        assert labels == steps
        for metric in metrics:
            assert metric[:2] == ["AWS/Lambda", metric_name]
            assert metric[-1]["stat"] == statistic


def test_run_outcomes_and_function_errors_come_from_logs_insights(local: SynthesizedEnv) -> None:
    _, widgets = dashboard(local)
    queries = {w["properties"]["title"]: w["properties"] for w in widgets if w["type"] == "log"}

    outcomes = queries["Run outcomes (DatasetRejected = quarantined upload, GateRejected)"]
    assert "ExecutionFailed" in outcomes["query"] and "details.error" in outcomes["query"]
    assert outcomes["view"] == "bar"
    errors = queries["Pipeline function errors (latest 50)"]
    assert errors["query"].count("SOURCE") == 11  # one log group per pipeline step function
    assert "level = 'ERROR'" in errors["query"]
    props, _ = dashboard(local)
    assert "ExecutionLogs" in json.dumps(props["DashboardBody"])  # the state machine's log


def test_the_dashboard_says_where_the_latest_drift_report_and_the_runbook_are(
    local: SynthesizedEnv,
) -> None:
    _, widgets = dashboard(local)
    texts = " ".join(w["properties"]["markdown"] for w in widgets if w["type"] == "text")

    assert "docs/runbook.md" in texts
    assert f"reports/drift/{MODEL}/latest.json" in texts
    assert f"driftline drift status --model {MODEL} --env local" in texts


def runbook_anchors() -> set[str]:
    """GitHub's heading anchors of docs/runbook.md."""
    anchors = set()
    for line in (REPO / "docs" / "runbook.md").read_text().splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", text).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("part", ["Pipeline", "Serving", "Monitoring"])
def test_every_alarm_names_its_runbook_section_and_the_section_exists(
    local: SynthesizedEnv, part: str
) -> None:
    anchors = runbook_anchors()
    found = {
        key: value["Properties"].get("AlarmDescription")
        for key, value in local.template_json(part)["Resources"].items()
        if value["Type"] in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
    }
    assert found
    for logical_id, description in found.items():
        text = json.dumps(description)
        match = re.search(r"Runbook: docs/runbook\.md#([a-z0-9-]+)", text)
        assert match, (logical_id, text)
        assert match.group(1) in anchors, (logical_id, match.group(1))
