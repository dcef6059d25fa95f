"""End to end on the twin: an S3 upload runs the real state machine and handlers.

Given the `local` stacks deployed unmodified on the twin,
when a dataset version is uploaded to `datasets/<name>/`,
then the run ends as the contract and the gate decide, and its effects are in S3/DynamoDB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.loop import step_results, upload_dataset, wait_for_execution
from tests.twin.conftest import RunningTwin

pytestmark = [pytest.mark.twin, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BREAST_CANCER = REPO / "examples" / "breast_cancer.csv"


@pytest.fixture(scope="module")
def alerts(twin: RunningTwin) -> Iterator[Any]:
    """An SQS queue subscribed to the alerts topic, to read what operators would be sent."""
    sqs, sns = twin.client("sqs"), twin.client("sns")
    queue_url = sqs.create_queue(QueueName="e2e-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=twin.outputs["AlertsTopicArn"], Protocol="sqs", Endpoint=queue_arn)
    yield lambda: _drain(sqs, queue_url)


def _drain(sqs: Any, queue_url: str) -> list[str]:
    messages: list[str] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            body = json.loads(message["Body"])
            messages.append(body.get("Message", message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def table(twin: RunningTwin, output: str) -> Any:
    return twin.session().resource("dynamodb").Table(twin.outputs[output])


def test_an_upload_trains_gates_and_registers_a_model_traced_to_its_version(
    twin: RunningTwin, alerts: Any
) -> None:
    upload = upload_dataset(twin.outputs["DatasetsBucketName"], "breast_cancer", BREAST_CANCER)

    execution = wait_for_execution(
        twin.outputs["TrainingStateMachineArn"], upload.execution_name, timeout=240
    )

    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution.get("error")
    output = json.loads(execution["output"])
    registered = output["registered"]
    assert registered["model"] == "breast_cancer"
    assert registered["status"] == "Approved"
    assert output["gate"]["passed"] is True
    assert output["evaluation"]["metrics"]["roc_auc"] >= 0.95

    version = table(twin, "ModelsTableName").get_item(
        Key={"pk": "model#breast_cancer", "sk": f"version#{registered['version']:06d}"}
    )["Item"]
    assert version["lineage"]["s3_version_id"] == upload.version_id
    assert version["lineage"]["dataset"] == "breast_cancer"
    assert version["lineage"]["manifest_sha256"] == output["validation"]["manifest_sha256"]

    s3 = twin.client("s3")
    artifacts = twin.outputs["ArtifactsBucketName"]
    manifest = json.loads(
        s3.get_object(Bucket=artifacts, Key=output["validation"]["manifest_key"])["Body"].read()
    )
    assert manifest["version_id"] == upload.version_id
    assert manifest["rows"] == 569
    model_zip = s3.head_object(Bucket=artifacts, Key=registered["model_key"])
    assert model_zip["ContentLength"] > 0

    states = [
        step.state
        for step in step_results(twin.outputs["TrainingStateMachineArn"], upload.execution_name)
    ]
    assert states[:7] == [
        "StartRunRecord",
        "MultiPart?",
        "Validate",
        "DatasetAccepted?",
        "Prepare",
        "Train",
        "Evaluate",
    ]
    assert any("breast_cancer" in message for message in alerts())


def test_a_rejected_upload_is_quarantined_reported_and_never_trained(
    twin: RunningTwin, alerts: Any, tmp_path: Path
) -> None:
    alerts()
    bad = tmp_path / "broken.csv"
    bad.write_text(BREAST_CANCER.read_text().replace("\n17.99,", "\nnot-a-number,", 1))
    upload = upload_dataset(twin.outputs["DatasetsBucketName"], "breast_cancer", bad)

    execution = wait_for_execution(
        twin.outputs["TrainingStateMachineArn"], upload.execution_name, timeout=120
    )

    assert execution["status"] == "FAILED"
    assert execution["error"] == "DatasetRejected"
    assert "report" in execution["cause"]
    states = [
        s.state
        for s in step_results(twin.outputs["TrainingStateMachineArn"], upload.execution_name)
    ]
    assert "Prepare" not in states
    tags = twin.client("s3").get_object_tagging(
        Bucket=upload.bucket, Key=upload.key, VersionId=upload.version_id
    )["TagSet"]
    assert {"Key": "driftline:quarantined", "Value": "true"} in tags
    still_there = twin.client("s3").get_object(
        Bucket=upload.bucket, Key=upload.key, VersionId=upload.version_id
    )
    assert still_there["Body"].read() == bad.read_bytes()
    assert any(upload.version_id in message for message in alerts())


def test_a_duplicate_delivery_of_one_version_starts_one_run(twin: RunningTwin) -> None:
    upload = upload_dataset(
        twin.outputs["DatasetsBucketName"], "breast_cancer", BREAST_CANCER, file_name="dup.csv"
    )
    event = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": upload.bucket},
            "object": {"key": upload.key, "version-id": upload.version_id, "size": 1},
        },
    }
    function = _function_name(twin, "start_run")
    response = twin.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    second = json.loads(response["Payload"].read())

    wait_for_execution(twin.outputs["TrainingStateMachineArn"], upload.execution_name, timeout=240)
    assert second["started"] is False
    assert second["reason"] == "duplicate"
    executions = twin.client("stepfunctions").list_executions(
        stateMachineArn=twin.outputs["TrainingStateMachineArn"]
    )["executions"]
    assert [e["name"] for e in executions].count(upload.execution_name) == 1


def test_two_versions_uploaded_within_a_second_are_both_processed(twin: RunningTwin) -> None:
    bucket = twin.outputs["DatasetsBucketName"]
    first = upload_dataset(bucket, "breast_cancer", BREAST_CANCER, file_name="burst.csv")
    second = upload_dataset(bucket, "breast_cancer", BREAST_CANCER, file_name="burst.csv")
    assert first.version_id != second.version_id

    outputs = []
    for upload in (first, second):
        execution = wait_for_execution(
            twin.outputs["TrainingStateMachineArn"], upload.execution_name, timeout=300
        )
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        outputs.append(json.loads(execution["output"]))

    assert [o["validation"]["version_id"] for o in outputs] == [first.version_id, second.version_id]
    versions = [o["registered"]["version"] for o in outputs]
    assert len(set(versions)) == 2


def _function_name(twin: RunningTwin, handler_module: str) -> str:
    lambda_client = twin.client("lambda")
    for page in lambda_client.get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            if (function.get("Environment") or {}).get("Variables", {}).get(
                "DRIFTLINE_FUNCTION"
            ) == handler_module:
                return str(function["FunctionName"])
    raise AssertionError(f"no function for {handler_module}")
