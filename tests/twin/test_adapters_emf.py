"""The monitoring loop's adapters: EMF metrics reach alarms; schedule rules match no events.

On the bare `moto_server` of tests/twin/conftest.py (one per module): a zip Lambda
prints Powertools EMF lines, and the alarm created from a template on that metric moves; an
S3 upload reaches the rule whose pattern matches it and not the rule that only has a schedule.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

from driftline.twin.adapters import emf_metric_data
from tests.twin.moto_server import MotoServer

pytestmark = [pytest.mark.twin]

EMF_HANDLER = """
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

def handler(event, context):
    print("not a metric line")
    provider = AmazonCloudWatchEMFProvider(namespace=event["namespace"], service="")
    provider.add_dimension(name="Model", value=event["model"])
    provider.add_metric(name="MaxFeaturePSI", unit=MetricUnit.NoUnit, value=event["psi"])
    provider.add_metric(name="DriftSamples", unit=MetricUnit.Count, value=500)
    provider.flush_metrics()
    return {"ok": True}
"""


def powertools_line(namespace: str, dimensions: dict[str, str], **values: float) -> str:
    """What Powertools prints for one blob, captured from stdout."""
    provider = AmazonCloudWatchEMFProvider(namespace=namespace, service="")
    for name, value in dimensions.items():
        provider.add_dimension(name=name, value=value)
    for name, number in values.items():
        provider.add_metric(name=name, unit=MetricUnit.NoUnit, value=number)
    output = io.StringIO()
    with redirect_stdout(output):
        provider.flush_metrics()
    return output.getvalue().strip()


def test_powertools_emf_line_becomes_metric_data_per_dimension_set() -> None:
    line = powertools_line("Driftline", {"Model": "churn", "Feature": "age"}, FeaturePSI=0.31)

    ((namespace, data),) = emf_metric_data(line)

    assert namespace == "Driftline"
    (datum,) = data
    assert datum["MetricName"] == "FeaturePSI" and datum["Value"] == 0.31
    assert datum["Unit"] == "None"
    assert sorted((d["Name"], d["Value"]) for d in datum["Dimensions"]) == [
        ("Feature", "age"),
        ("Model", "churn"),
    ]
    assert abs(datum["Timestamp"] - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=1)


def test_value_arrays_and_several_dimension_sets_and_directives_are_all_kept() -> None:
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 1_700_000_000_000,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "A",
                        "Dimensions": [["Model"], []],
                        "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}],
                    },
                    {"Namespace": "B", "Dimensions": [["Model"]], "Metrics": [{"Name": "Hits"}]},
                ],
            },
            "Model": "churn",
            "Latency": [1, 2.5, 3],
            "Hits": 4,
        }
    )

    parsed = dict(emf_metric_data(line))

    assert [d["Dimensions"] for d in parsed["A"]] == [[{"Name": "Model", "Value": "churn"}], []]
    assert all(d["Values"] == [1.0, 2.5, 3.0] and d["Unit"] == "Milliseconds" for d in parsed["A"])
    assert parsed["B"][0]["Value"] == 4.0 and "Unit" not in parsed["B"][0]
    assert parsed["A"][0]["Timestamp"] == datetime(2023, 11, 14, 22, 13, 20)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("START RequestId: 1 Version: $LATEST", "plain text"),
        ('{"level": "INFO", "message": "drift checked"}', "a JSON log line without _aws"),
        ('{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [', "truncated JSON"),
        (
            '{"_aws": {"CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [], '
            '"Metrics": [{"Name": "M"}]}]}, "M": 1}',
            "no Timestamp",
        ),
        (
            '{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", '
            '"Dimensions": [["Model"]], "Metrics": [{"Name": "M"}]}]}, "M": 1}',
            "a dimension without its value",
        ),
        (
            '{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", '
            '"Dimensions": [], "Metrics": [{"Name": "M"}]}]}, "M": "high"}',
            "a value that is not a number",
        ),
        (
            '{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", '
            '"Dimensions": [], "Metrics": [{"Name": "Absent"}]}]}}',
            "a metric whose value is absent",
        ),
    ],
)
def test_lines_cloudwatch_would_not_turn_into_metrics_give_none(line: str, why: str) -> None:
    assert emf_metric_data(line) == [], why


# -- on a moto server with the adapters ---------------------------------------------------------


def test_emf_printed_by_a_lambda_is_a_metric_that_moves_its_alarm(
    moto_server: MotoServer,
) -> None:
    namespace = f"Driftline/{uuid.uuid4().hex[:6]}"
    name = f"emf-{uuid.uuid4().hex[:8]}"
    moto_server.zip_function(EMF_HANDLER, name=name, Timeout=30)
    cloudformation = moto_server.client("cloudformation")
    template = {
        "Resources": {
            "FeaturePsi": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    "Namespace": namespace,
                    "MetricName": "MaxFeaturePSI",
                    "Dimensions": [{"Name": "Model", "Value": "churn"}],
                    "Statistic": "Maximum",
                    "Period": 300,
                    "EvaluationPeriods": 2,
                    "DatapointsToAlarm": 1,
                    "ComparisonOperator": "GreaterThanThreshold",
                    "Threshold": 0.2,
                    "TreatMissingData": "notBreaching",
                },
            }
        },
        "Outputs": {"Alarm": {"Value": {"Ref": "FeaturePsi"}}},
    }
    stack = f"emf-{uuid.uuid4().hex[:8]}"
    cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    (output,) = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
    alarm_name = output["OutputValue"]
    cloudwatch = moto_server.client("cloudwatch")

    def state() -> str:
        (alarm,) = cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"]
        return str(alarm["StateValue"])

    calm = {"namespace": namespace, "model": "churn", "psi": 0.05}
    response = moto_server.client("lambda").invoke(FunctionName=name, Payload=json.dumps(calm))
    assert "FunctionError" not in response
    assert state() == "OK"

    drifted = {**calm, "psi": 0.45}
    moto_server.client("lambda").invoke(FunctionName=name, Payload=json.dumps(drifted))
    assert state() == "ALARM"

    now = datetime.now(UTC)
    statistics = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName="MaxFeaturePSI",
        Dimensions=[{"Name": "Model", "Value": "churn"}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=600,
        Statistics=["Maximum", "SampleCount"],
    )["Datapoints"]
    assert [(p["Maximum"], p["SampleCount"]) for p in statistics] == [(0.45, 2.0)]
    samples = cloudwatch.list_metrics(Namespace=namespace, MetricName="DriftSamples")["Metrics"]
    assert [m["Dimensions"] for m in samples] == [[{"Name": "Model", "Value": "churn"}]]


def test_emf_sent_through_put_log_events_is_extracted_too(moto_server: MotoServer) -> None:
    namespace = f"Driftline/{uuid.uuid4().hex[:6]}"
    logs = moto_server.client("logs")
    group = f"/app/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    line = powertools_line(namespace, {"Model": "churn"}, DriftedShare=0.5)
    logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": line}],
    )

    metrics = moto_server.client("cloudwatch").list_metrics(Namespace=namespace)["Metrics"]

    assert [(m["MetricName"], m["Dimensions"]) for m in metrics] == [
        ("DriftedShare", [{"Name": "Model", "Value": "churn"}])
    ]


RECORDING_HANDLER = """
import boto3, json, uuid

def handler(event, context):
    boto3.client("s3").put_object(
        Bucket=event["record_in"], Key=f"{event['via']}/{uuid.uuid4().hex}", Body=b"{}"
    )
"""


def test_a_rule_with_only_a_schedule_is_not_sent_the_bus_events(moto_server: MotoServer) -> None:
    suffix = uuid.uuid4().hex[:8]
    s3, events = moto_server.client("s3"), moto_server.client("events")
    watched, record = f"watched-{suffix}", f"record-{suffix}"
    for bucket in (watched, record):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=watched, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    name = moto_server.zip_function(RECORDING_HANDLER, name=f"record-{suffix}", Timeout=30)
    function = moto_server.client("lambda").get_function(FunctionName=name)["Configuration"][
        "FunctionArn"
    ]
    events.put_rule(Name=f"every-5-min-{suffix}", ScheduleExpression="rate(5 minutes)")
    events.put_rule(
        Name=f"uploads-{suffix}",
        EventPattern=json.dumps(
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [watched]}},
            }
        ),
    )
    for rule, via in ((f"every-5-min-{suffix}", "schedule"), (f"uploads-{suffix}", "pattern")):
        events.put_targets(
            Rule=rule,
            Targets=[
                {"Id": "t", "Arn": function, "Input": json.dumps({"via": via, "record_in": record})}
            ],
        )

    s3.put_object(Bucket=watched, Key="data/one.csv", Body=b"a,b\n1,2\n")

    deadline = time.monotonic() + 20
    recorded: list[str] = []
    while time.monotonic() < deadline and not recorded:
        recorded = [o["Key"] for o in s3.list_objects_v2(Bucket=record).get("Contents", [])]
        time.sleep(0.2)
    time.sleep(1.0)  # a delivery to the schedule's target would have landed by now
    recorded = [o["Key"] for o in s3.list_objects_v2(Bucket=record).get("Contents", [])]
    assert [key.split("/")[0] for key in recorded] == ["pattern"]
