"""Section 6 of the adapters: CloudWatch alarms from templates are evaluated, act, and drive
composite alarms.

On the bare `moto_server` of tests/twin/conftest.py (one per module, no stacks deployed).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.twin.moto_server import MotoServer, eventually

pytestmark = [pytest.mark.twin]


def test_alarm_from_template_evaluates_acts_and_drives_composites(moto_server: MotoServer) -> None:
    namespace = f"Driftline/{uuid.uuid4().hex[:6]}"
    role = {"Fn::GetAtt": ["Role", "Arn"]}
    outputs = moto_server.deploy(
        {
            "Resources": {
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
                "Alerts": {"Type": "AWS::SNS::Topic"},
                "Inbox": {"Type": "AWS::SQS::Queue"},
                "InboxSubscription": {
                    "Type": "AWS::SNS::Subscription",
                    "Properties": {
                        "TopicArn": {"Ref": "Alerts"},
                        "Protocol": "sqs",
                        "Endpoint": {"Fn::GetAtt": ["Inbox", "Arn"]},
                        "RawMessageDelivery": True,
                    },
                },
                "Drift": {
                    "Type": "AWS::CloudWatch::Alarm",
                    "Properties": {
                        "Namespace": namespace,
                        "MetricName": "PSI",
                        "Dimensions": [{"Name": "Model", "Value": "churn"}],
                        "Statistic": "Maximum",
                        "Period": 60,
                        "EvaluationPeriods": 3,
                        "DatapointsToAlarm": 1,
                        "ComparisonOperator": "GreaterThanThreshold",
                        "Threshold": 0.2,
                        "TreatMissingData": "notBreaching",
                        "AlarmActions": [{"Ref": "Alerts"}],
                        "OKActions": [{"Ref": "Alerts"}],
                    },
                },
                "Latency": {
                    "Type": "AWS::CloudWatch::Alarm",
                    "Properties": {
                        "Namespace": namespace,
                        "MetricName": "Latency",
                        "ExtendedStatistic": "p90",
                        "Period": 60,
                        "EvaluationPeriods": 1,
                        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                        "Threshold": 100,
                    },
                },
                "Retrain": {
                    "Type": "AWS::CloudWatch::CompositeAlarm",
                    "Properties": {
                        "AlarmRule": {
                            "Fn::Join": [
                                "",
                                [
                                    'ALARM("',
                                    {"Fn::GetAtt": ["Drift", "Arn"]},
                                    '") AND NOT (ALARM(',
                                    {"Ref": "Latency"},
                                    "))",
                                ],
                            ]
                        },
                    },
                },
                "Retraining": {
                    "Type": "AWS::StepFunctions::StateMachine",
                    "Properties": {
                        "RoleArn": role,
                        "DefinitionString": json.dumps(
                            {"StartAt": "Go", "States": {"Go": {"Type": "Pass", "End": True}}}
                        ),
                    },
                },
                "OnRetrain": {
                    "Type": "AWS::Events::Rule",
                    "Properties": {
                        "EventPattern": {
                            "source": ["aws.cloudwatch"],
                            "detail-type": ["CloudWatch Alarm State Change"],
                            "resources": [{"Fn::GetAtt": ["Retrain", "Arn"]}],
                            "detail": {"state": {"value": ["ALARM"]}},
                        },
                        "Targets": [{"Id": "sfn", "Arn": {"Ref": "Retraining"}, "RoleArn": role}],
                    },
                },
            },
            "Outputs": {
                "Drift": {"Value": {"Ref": "Drift"}},
                "Latency": {"Value": {"Ref": "Latency"}},
                "Retrain": {"Value": {"Ref": "Retrain"}},
                "RetrainArn": {"Value": {"Fn::GetAtt": ["Retrain", "Arn"]}},
                "Inbox": {"Value": {"Ref": "Inbox"}},
                "Machine": {"Value": {"Ref": "Retraining"}},
            },
        }
    )
    cloudwatch, sqs = moto_server.client("cloudwatch"), moto_server.client("sqs")

    def state(name: str) -> str:
        found = cloudwatch.describe_alarms(AlarmNames=[name])
        (alarm,) = found["MetricAlarms"] + found["CompositeAlarms"]
        return str(alarm["StateValue"])

    assert state(outputs["Drift"]) == "OK"  # notBreaching: no data is good data
    assert state(outputs["Latency"]) == "INSUFFICIENT_DATA"
    assert outputs["RetrainArn"].endswith(f":alarm:{outputs['Retrain']}")

    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {"MetricName": "PSI", "Dimensions": [{"Name": "Other", "Value": "x"}], "Value": 9.0},
            {
                "MetricName": "PSI",
                "Dimensions": [{"Name": "Model", "Value": "churn"}],
                "Value": 0.1,
            },
            {
                "MetricName": "PSI",
                "Dimensions": [{"Name": "Model", "Value": "churn"}],
                "Value": 0.35,
            },
            {"MetricName": "Latency", "Values": [10, 20, 30, 40, 50, 60, 70, 80, 90, 500]},
        ],
    )

    assert state(outputs["Drift"]) == "ALARM"  # Maximum 0.35 > 0.2 for the churn model only
    assert state(outputs["Latency"]) == "OK"  # p90 of the ten values is 90 < 100
    assert state(outputs["Retrain"]) == "ALARM"
    received: list[dict[str, Any]] = []

    def alarm_message() -> dict[str, Any] | None:
        batch = sqs.receive_message(QueueUrl=outputs["Inbox"], MaxNumberOfMessages=10)
        received.extend(json.loads(m["Body"]) for m in batch.get("Messages", []))
        return next((m for m in received if m["NewStateValue"] == "ALARM"), None)

    message = eventually(alarm_message)
    assert received[0]["NewStateValue"] == "OK"  # the OK action ran at creation
    assert message["AlarmName"] == outputs["Drift"]
    assert (message["OldStateValue"], message["NewStateValue"]) == ("OK", "ALARM")
    assert (
        message["Trigger"]["MetricName"] == "PSI" and message["Trigger"]["Namespace"] == namespace
    )
    assert message["Trigger"]["Dimensions"] == [{"value": "churn", "name": "Model"}]
    assert message["NewStateReason"].startswith("Threshold Crossed")
    sfn = moto_server.client("stepfunctions")
    started = eventually(
        lambda: sfn.list_executions(stateMachineArn=outputs["Machine"])["executions"]
    )
    event = json.loads(moto_server.finished(started[0]["executionArn"])["input"])
    assert event["detail"]["alarmName"] == outputs["Retrain"]
    assert (event["detail"]["previousState"]["value"], event["detail"]["state"]["value"]) == (
        "OK",
        "ALARM",
    )
    history = cloudwatch.describe_alarm_history(AlarmName=outputs["Drift"])["AlarmHistoryItems"]
    assert history[0]["HistoryItemType"] == "StateUpdate"
    assert history[0]["HistorySummary"] == "Alarm updated from OK to ALARM"

    cloudwatch.set_alarm_state(
        AlarmName=outputs["Latency"], StateValue="ALARM", StateReason="manual"
    )

    assert state(outputs["Retrain"]) == "OK"  # ALARM(drift) AND NOT ALARM(latency)


@pytest.mark.parametrize(
    ("statistic", "treat_missing", "values", "expected"),
    [
        ("Average", "missing", [1.0, 5.0], "ALARM"),  # average 3 > 2
        ("Sum", "missing", [1.0, 0.5], "OK"),
        ("Minimum", "missing", [3.0, 2.5], "ALARM"),
        ("SampleCount", "missing", [0.0, 0.0, 0.0], "ALARM"),
        ("p50", "missing", [1.0, 2.0, 9.0], "OK"),
        ("Average", "missing", [], "INSUFFICIENT_DATA"),
        ("Average", "breaching", [], "ALARM"),
        ("Average", "notBreaching", [], "OK"),
        ("Average", "ignore", [], "INSUFFICIENT_DATA"),  # keeps its (initial) state
    ],
)
def test_alarm_statistics_and_missing_data_decide_the_state(
    moto_server: MotoServer, statistic: str, treat_missing: str, values: list[float], expected: str
) -> None:
    cloudwatch = moto_server.client("cloudwatch")
    namespace, name = f"N/{uuid.uuid4().hex[:6]}", f"a-{uuid.uuid4().hex[:6]}"
    stat = (
        {"ExtendedStatistic": statistic} if statistic.startswith("p") else {"Statistic": statistic}
    )
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace=namespace,
        MetricName="m",
        Period=60,
        EvaluationPeriods=1,
        Threshold=2.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData=treat_missing,
        **stat,
    )
    if values:
        cloudwatch.put_metric_data(
            Namespace=namespace, MetricData=[{"MetricName": "m", "Value": v} for v in values]
        )

    assert (
        cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] == expected
    )


def test_alarm_on_an_anomaly_band_is_rejected_clearly(moto_server: MotoServer) -> None:
    cloudwatch = moto_server.client("cloudwatch")

    with pytest.raises(cloudwatch.exceptions.ClientError, match="anomaly detection"):
        cloudwatch.put_metric_alarm(
            AlarmName=f"a-{uuid.uuid4().hex[:6]}",
            Namespace="N",
            MetricName="m",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            Statistic="Average",
            ComparisonOperator="LessThanLowerOrGreaterThanUpperThreshold",
        )
