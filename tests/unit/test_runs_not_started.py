"""`driftline runs list` shows uploads that never started a run, read from the Pipeline stack's
undelivered-uploads queue (both formats that land there), without consuming the queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from driftline.cli import main
from driftline.undelivered import QUEUE_OUTPUT, not_started_record
from functions.shared.registry import to_attributes
from pipelines.uploads import execution_name
from tests.unit.conftest import moto_account, registry_table_resource

pytestmark = pytest.mark.unit

DATASET = "breast_cancer"
TABLE = registry_table_resource("runs-table")


def s3_event(key: str, version_id: str, time: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"event-{version_id}",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "time": time,
        "region": "us-east-1",
        "detail": {
            "bucket": {"name": "datasets-bucket"},
            "object": {"key": key, "version-id": version_id, "size": 1234},
        },
    }


def destination_record(event: dict[str, Any]) -> str:
    """What Lambda sends to an on-failure destination once its async retries ran out."""
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-12-01T10:03:00.000Z",
            "requestContext": {
                "requestId": "5b0a-request",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:StartRun:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {
                "errorType": "AccessDeniedException",
                "errorMessage": "not authorized to perform states:StartExecution",
            },
        }
    )


@pytest.fixture
def queue() -> Iterator[tuple[Any, str]]:
    with pytest.MonkeyPatch.context() as patch, moto_account(patch):
        cloudformation = boto3.client("cloudformation")
        cloudformation.create_stack(
            StackName="Driftline-local-Data",
            TemplateBody=json.dumps(
                {
                    "Resources": {"RunsTable": TABLE},
                    "Outputs": {"RunsTableName": {"Value": {"Ref": "RunsTable"}}},
                }
            ),
        )
        cloudformation.create_stack(
            StackName="Driftline-local-Pipeline",
            TemplateBody=json.dumps(
                {
                    "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {}}},
                    "Outputs": {QUEUE_OUTPUT: {"Value": {"Ref": "Queue"}}},
                }
            ),
        )
        (stack,) = cloudformation.describe_stacks(StackName="Driftline-local-Pipeline")["Stacks"]
        url = stack["Outputs"][0]["OutputValue"]
        run = {
            "pk": "run#run-1",
            "sk": "run",
            "run_id": "run-1",
            "dataset": DATASET,
            "status": "Succeeded",
            "started_at": "2026-12-01T09:00:00Z",
        }
        boto3.client("dynamodb").put_item(TableName="runs-table", Item=to_attributes(run))
        yield boto3.client("sqs"), url


def test_uploads_that_never_started_are_listed_with_their_cause_and_stay_queued(
    queue: tuple[Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, url = queue
    failed = s3_event(f"datasets/{DATASET}/data.csv", "v-failed", "2026-12-01T10:00:00Z")
    undelivered = s3_event("datasets/iris/part.csv", "v-dlq", "2026-12-01T11:00:00Z")
    sqs.send_message(QueueUrl=url, MessageBody=destination_record(failed))
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps(undelivered),
        MessageAttributes={
            "ERROR_CODE": {"DataType": "String", "StringValue": "THROTTLING"},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": "Rate exceeded"},
        },
    )
    sqs.send_message(QueueUrl=url, MessageBody="not json")

    code = main(["runs", "list", "--json"])
    captured = capsys.readouterr()

    assert code == 0
    listed = json.loads(captured.out)
    assert [(r["run_id"], r["status"]) for r in listed] == [
        (execution_name("iris", "v-dlq"), "NotStarted"),
        (execution_name(DATASET, "v-failed"), "NotStarted"),
        ("run-1", "Succeeded"),
    ]
    assert listed[0]["cause"] == "EventBridge could not invoke StartRun: THROTTLING: Rate exceeded"
    assert listed[1]["cause"] == (
        "StartRun failed (RetriesExhausted, 3 attempts): AccessDeniedException: "
        "not authorized to perform states:StartExecution"
    )
    assert (listed[1]["key"], listed[1]["version_id"]) == (
        f"datasets/{DATASET}/data.csv",
        "v-failed",
    )
    assert "2 upload(s) never started a run" in captured.err
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "3"  # read, not consumed

    code = main(["runs", "list", "--dataset", DATASET])
    table = capsys.readouterr().out
    assert code == 0
    assert "NotStarted" in table and "iris" not in table


def test_an_env_without_the_queue_output_lists_runs_only(
    queue: tuple[Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("cloudformation").delete_stack(StackName="Driftline-local-Pipeline")
    assert main(["runs", "list", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == ["run-1"]


def test_messages_that_are_not_uploads_are_skipped() -> None:
    assert not_started_record({"Body": json.dumps({"source": "aws.events"})}) is None
    assert not_started_record({"Body": "[1, 2]"}) is None
    ignored = s3_event("datasets/../x.csv", "v1", "2026-12-01T10:00:00Z")
    record = not_started_record({"Body": json.dumps(ignored), "MessageId": "m"})
    assert record is not None and record["run_id"] is None  # listed, though it names no run
