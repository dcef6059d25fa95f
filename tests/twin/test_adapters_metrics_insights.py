"""Metrics Insights alarms on the twin: one alarm, one contributor per model.

On the bare `moto_server` of tests/twin/conftest.py (one per module). An alarm on
`SELECT ... GROUP BY Model` judges each model's series on its own; every contributor transition
reaches EventBridge (read back through a rule to an SQS queue) and the SNS actions, even while
the alarm itself stays in ALARM.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.cloudwatch.models import cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from driftline.twin.adapters import evaluate_alarms
from tests.twin.moto_server import REGION, MotoServer, eventually

pytestmark = [pytest.mark.twin]

CONTRIBUTOR_CHANGE = "CloudWatch Alarm Contributor State Change"
ALARM_CHANGE = "CloudWatch Alarm State Change"


def _namespace() -> str:
    return f"Driftline/{uuid.uuid4().hex[:8]}"


def _drift(model: str, value: float, **dimensions: str) -> dict[str, Any]:
    pairs = {"Model": model, **dimensions} if model else dimensions
    return {
        "MetricName": "DriftScore",
        "Dimensions": [{"Name": k, "Value": v} for k, v in pairs.items()],
        "Value": value,
        "Timestamp": datetime.now(UTC),
    }


def _insights_alarm(moto_server: MotoServer, expression: str, **overrides: Any) -> str:
    name = f"mi-{uuid.uuid4().hex[:8]}"
    settings: dict[str, Any] = {
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 1.0,
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 1,
        "TreatMissingData": "notBreaching",
        **overrides,
    }
    moto_server.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Metrics=[{"Id": "q", "Expression": expression, "Period": 300, "ReturnData": True}],
        **settings,
    )
    return name


def _in_alarm(moto_server: MotoServer, name: str) -> list[dict[str, str]]:
    """Attributes of the alarm's contributors in ALARM (DescribeAlarmContributors)."""
    found = moto_server.client("cloudwatch").describe_alarm_contributors(AlarmName=name)
    return sorted(
        (c["ContributorAttributes"] for c in found["AlarmContributors"]),
        key=lambda attributes: sorted(attributes.items()),
    )


def _state(moto_server: MotoServer, name: str) -> str:
    found = moto_server.client("cloudwatch").describe_alarms(
        AlarmNames=[name], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )
    (alarm,) = found["MetricAlarms"] + found["CompositeAlarms"]
    return str(alarm["StateValue"])


class Inbox:
    """Everything an SQS queue has received so far, decoded."""

    def __init__(self, moto_server: MotoServer, url: str) -> None:
        self.sqs, self.url = moto_server.client("sqs"), url
        self.received: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        while batch := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            self.received.extend(json.loads(m["Body"]) for m in batch)
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
                ],
            )
        return self.received


def test_each_model_is_a_contributor_with_its_own_events_and_actions(
    moto_server: MotoServer,
) -> None:
    namespace = _namespace()
    query = f'SELECT MAX(DriftScore) FROM SCHEMA("{namespace}", Model) GROUP BY Model'
    outputs = moto_server.deploy(
        {
            "Resources": {
                "Alerts": {"Type": "AWS::SNS::Topic"},
                "Mail": {"Type": "AWS::SQS::Queue"},
                "MailSubscription": {
                    "Type": "AWS::SNS::Subscription",
                    "Properties": {
                        "TopicArn": {"Ref": "Alerts"},
                        "Protocol": "sqs",
                        "Endpoint": {"Fn::GetAtt": ["Mail", "Arn"]},
                        "RawMessageDelivery": True,
                    },
                },
                "Drift": {
                    "Type": "AWS::CloudWatch::Alarm",
                    "Properties": {
                        "Metrics": [
                            {
                                "Id": "expr_1",
                                "Expression": query,
                                "Label": "Drift score per model",
                                "Period": 300,
                                "ReturnData": True,
                            }
                        ],
                        "ComparisonOperator": "GreaterThanThreshold",
                        "Threshold": 1,
                        "EvaluationPeriods": 2,
                        "DatapointsToAlarm": 1,
                        "TreatMissingData": "notBreaching",
                        "AlarmActions": [{"Ref": "Alerts"}],
                        "OKActions": [{"Ref": "Alerts"}],
                    },
                },
                "Retrain": {
                    "Type": "AWS::CloudWatch::CompositeAlarm",
                    "Properties": {
                        "AlarmRule": {"Fn::Join": ["", ["ALARM(", {"Ref": "Drift"}, ")"]]}
                    },
                },
                "Events": {"Type": "AWS::SQS::Queue"},
                "OnDrift": {
                    "Type": "AWS::Events::Rule",
                    "Properties": {
                        "EventPattern": {
                            "source": ["aws.cloudwatch"],
                            "detail-type": [CONTRIBUTOR_CHANGE, ALARM_CHANGE],
                            "resources": [{"Fn::GetAtt": ["Drift", "Arn"]}],
                        },
                        "Targets": [{"Id": "queue", "Arn": {"Fn::GetAtt": ["Events", "Arn"]}}],
                    },
                },
            },
            "Outputs": {
                "Drift": {"Value": {"Ref": "Drift"}},
                "DriftArn": {"Value": {"Fn::GetAtt": ["Drift", "Arn"]}},
                "Retrain": {"Value": {"Ref": "Retrain"}},
                "Mail": {"Value": {"Ref": "Mail"}},
                "Events": {"Value": {"Ref": "Events"}},
            },
        }
    )
    cloudwatch = moto_server.client("cloudwatch")
    name = outputs["Drift"]
    events, mail = Inbox(moto_server, outputs["Events"]), Inbox(moto_server, outputs["Mail"])
    (described,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert described["Metrics"][0]["Expression"] == query
    assert described["StateValue"] == "OK"  # no series yet, and missing data is not breaching

    cloudwatch.put_metric_data(
        Namespace=namespace, MetricData=[_drift("digits", 3.0), _drift("iris", 0.2)]
    )

    assert _state(moto_server, name) == "ALARM"
    assert _in_alarm(moto_server, name) == [{"Model": "digits"}]
    assert _state(moto_server, outputs["Retrain"]) == "ALARM"
    received = eventually(lambda: len(events.drain()) >= 2 and events.received)
    first, alarm_event = received
    assert first["detail-type"] == CONTRIBUTOR_CHANGE
    assert first["source"] == "aws.cloudwatch"
    assert first["resources"] == [outputs["DriftArn"]]
    detail = first["detail"]
    assert detail["alarmName"] == name
    assert detail["alarmContributor"]["attributes"] == {"Model": "digits"}
    assert len(detail["alarmContributor"]["id"]) == 16
    assert detail["state"]["value"] == "ALARM"
    assert detail["state"]["reason"].startswith("Threshold Crossed: 1 datapoint was greater than")
    assert "3.0" in detail["state"]["reason"]
    assert detail["configuration"]["metrics"] == [
        {"id": "expr_1", "expression": query, "returnData": True, "period": 300}
    ]
    assert alarm_event["detail-type"] == ALARM_CHANGE
    assert alarm_event["detail"]["previousState"]["value"] == "OK"
    assert alarm_event["detail"]["state"]["value"] == "ALARM"
    assert alarm_event["detail"]["state"]["reason"] == "1 out of 2 time series evaluated to ALARM"
    digits_id = detail["alarmContributor"]["id"]
    messages = eventually(lambda: len(mail.drain()) >= 2 and mail.received)
    contributor_message = next(m for m in messages if "AlarmContributorId" in m)
    assert contributor_message["AlarmContributorAttributes"] == {"Model": "digits"}
    assert contributor_message["AlarmContributorId"] == digits_id
    assert (contributor_message["OldStateValue"], contributor_message["NewStateValue"]) == (
        "OK",
        "ALARM",
    )
    assert contributor_message["Trigger"]["Metrics"][0]["Expression"] == query

    # The second model breaches while the alarm is already in ALARM: its own event and message.
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[_drift("iris", 4.0)])

    assert _in_alarm(moto_server, name) == [{"Model": "digits"}, {"Model": "iris"}]
    later = eventually(lambda: len(events.drain()) >= 3 and events.received[2:])
    assert [e["detail-type"] for e in later] == [CONTRIBUTOR_CHANGE]  # no alarm-level change
    assert later[0]["detail"]["alarmContributor"]["attributes"] == {"Model": "iris"}
    assert later[0]["detail"]["state"]["value"] == "ALARM"
    iris = {"Model": "iris"}
    iris_messages = eventually(
        lambda: [m for m in mail.drain() if m.get("AlarmContributorAttributes") == iris]
    )
    assert iris_messages[0]["NewStateValue"] == "ALARM"
    (described,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert (described["StateValue"], described["StateReason"]) == (
        "ALARM",
        "2 out of 2 time series evaluated to ALARM",
    )
    history = cloudwatch.describe_alarm_history(
        AlarmName=name, HistoryItemType="AlarmContributorStateUpdate"
    )["AlarmHistoryItems"]
    assert sorted(h["AlarmContributorAttributes"]["Model"] for h in history) == ["digits", "iris"]
    parent = cloudwatch.describe_alarm_history(AlarmName=name)["AlarmHistoryItems"]
    assert [h["HistorySummary"] for h in parent] == [
        "Alarm updated from OK to ALARM",
        "Alarm updated from INSUFFICIENT_DATA to OK",  # at creation
    ]

    # The models stop reporting: with notBreaching each series goes back to OK, then the alarm.
    backend = cloudwatch_backends[DEFAULT_ACCOUNT_ID][REGION]
    evaluate_alarms(backend, {namespace}, now=datetime.now(UTC) + timedelta(minutes=15))

    assert _state(moto_server, name) == "OK"
    assert _in_alarm(moto_server, name) == []
    assert _state(moto_server, outputs["Retrain"]) == "OK"
    recovered = eventually(lambda: len(events.drain()) >= 6 and events.received[3:])
    assert [(e["detail-type"], e["detail"]["state"]["value"]) for e in recovered] == [
        (CONTRIBUTOR_CHANGE, "OK"),
        (CONTRIBUTOR_CHANGE, "OK"),
        (ALARM_CHANGE, "OK"),
    ]
    assert recovered[0]["detail"]["alarmContributor"]["id"] == digits_id
    assert "previousState" not in recovered[0]["detail"]  # as CloudWatch's documented event


def test_schema_keeps_only_metrics_with_exactly_its_dimensions(moto_server: MotoServer) -> None:
    namespace = _namespace()
    schema = _insights_alarm(
        moto_server, f'SELECT MAX(DriftScore) FROM SCHEMA("{namespace}", Model) GROUP BY Model'
    )
    everything = _insights_alarm(
        moto_server, f'SELECT MAX("DriftScore") FROM "{namespace}" GROUP BY "Model"'
    )

    moto_server.client("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            _drift("digits", 9.0, Version="2"),  # one dimension too many for the SCHEMA
            _drift("", 7.0),  # no dimensions: grouped as Model "Other" without SCHEMA
            _drift("iris", 0.5),
            _drift("wine", 2.0),
        ],
    )

    assert _in_alarm(moto_server, schema) == [{"Model": "wine"}]
    assert _in_alarm(moto_server, everything) == [
        {"Model": "Other"},
        {"Model": "digits"},
        {"Model": "wine"},
    ]


def test_where_filters_and_order_by_limit_picks_the_top_series(moto_server: MotoServer) -> None:
    namespace = _namespace()
    where = _insights_alarm(
        moto_server,
        f'select max(DriftScore) from schema("{namespace}", Model, Stage) '
        "where Stage = 'live' and Model != 'iris' group by Model",
    )
    top = _insights_alarm(
        moto_server,
        f'SELECT MAX(DriftScore) FROM SCHEMA("{namespace}", Model, Stage) '
        "GROUP BY Model ORDER BY MAX() DESC LIMIT 1",
    )

    moto_server.client("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            _drift("digits", 0.5, Stage="live"),
            _drift("digits", 7.0, Stage="canary"),
            _drift("iris", 8.0, Stage="live"),
            _drift("wine", 3.0, Stage="live"),
        ],
    )

    assert _in_alarm(moto_server, where) == [{"Model": "wine"}]
    assert _in_alarm(moto_server, top) == [{"Model": "iris"}]
    (described,) = moto_server.client("cloudwatch").describe_alarms(AlarmNames=[where])[
        "MetricAlarms"
    ]
    assert described["StateReason"] == "1 out of 2 time series evaluated to ALARM"


def test_query_without_group_by_is_one_series_with_normal_states(moto_server: MotoServer) -> None:
    namespace = _namespace()
    name = _insights_alarm(
        moto_server,
        f'SELECT AVG(DriftScore) FROM "{namespace}"',
        EvaluationPeriods=1,
        TreatMissingData="missing",
    )
    assert _state(moto_server, name) == "INSUFFICIENT_DATA"

    moto_server.client("cloudwatch").put_metric_data(
        Namespace=namespace, MetricData=[_drift("digits", 0.5), _drift("iris", 2.5)]
    )

    assert _state(moto_server, name) == "ALARM"  # the average over both models is 1.5
    assert _in_alarm(moto_server, name) == []
    history = moto_server.client("cloudwatch").describe_alarm_history(
        AlarmName=name, HistoryItemType="AlarmContributorStateUpdate"
    )
    assert history["AlarmHistoryItems"] == []


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("SELECT MAX(DriftScore) FROM Driftline WHERE Model = 'a' OR Model = 'b'", "'OR'"),
        ("SELECT MEDIAN(DriftScore) FROM Driftline", "one of AVG"),
        ("SELECT MAX(DriftScore) FROM Driftline WHERE tag.env = 'prod'", "cannot parse"),
        ("SELECT MAX(DriftScore) FROM Driftline GROUP BY", "ends early"),
        ("SELECT MAX(DriftScore) FROM Driftline WHERE Model = digits", "single-quoted"),
    ],
)
def test_query_outside_the_subset_is_rejected_in_one_line(
    moto_server: MotoServer, expression: str, problem: str
) -> None:
    cloudwatch = moto_server.client("cloudwatch")
    name = f"mi-{uuid.uuid4().hex[:8]}"

    with pytest.raises(cloudwatch.exceptions.ClientError) as raised:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Metrics=[{"Id": "q", "Expression": expression, "Period": 300, "ReturnData": True}],
            ComparisonOperator="GreaterThanThreshold",
            Threshold=1.0,
            EvaluationPeriods=1,
        )

    message = str(raised.value.response["Error"]["Message"])
    assert f"alarm {name}: Metrics Insights query" in message
    assert problem in message
    assert "the twin evaluates SELECT" in message and "\n" not in message
    assert cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []


def test_metric_math_that_is_not_a_select_keeps_its_rejection(moto_server: MotoServer) -> None:
    cloudwatch = moto_server.client("cloudwatch")
    stat = {
        "Metric": {"Namespace": "Driftline", "MetricName": "DriftScore"},
        "Period": 300,
        "Stat": "Maximum",
    }

    with pytest.raises(cloudwatch.exceptions.ClientError, match="metric math"):
        cloudwatch.put_metric_alarm(
            AlarmName=f"mm-{uuid.uuid4().hex[:8]}",
            Metrics=[
                {"Id": "m1", "MetricStat": stat, "ReturnData": False},
                {"Id": "e1", "Expression": "m1 * 2", "ReturnData": True},
            ],
            ComparisonOperator="GreaterThanThreshold",
            Threshold=1.0,
            EvaluationPeriods=1,
        )
    with pytest.raises(cloudwatch.exceptions.ClientError, match="ResourceNotFound"):
        cloudwatch.describe_alarm_contributors(AlarmName="no-such-alarm")
