"""The training pipeline under faults, end to end on the twin.

Given the `local` stacks deployed unmodified on the twin,
when a step fails transiently, or a run cannot train (a bad model config, a constant target),
then the state machine retries what is worth retrying, and fails the rest at Prepare with one
clear cause: recorded on the run, sent to the alerts topic, and nothing registered.

Datasets other than breast_cancer come with their own contract and model config uploaded as
overrides (`contracts/<name>.yaml`, `models/<name>.yaml` in the datasets bucket). Concurrent
runs of one dataset and rejected uploads are covered in test_training_e2e.py.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.conditions import Key

from driftline.loop import (
    Upload,
    execution_arn,
    step_results,
    upload_dataset,
    upload_text,
    wait_for_execution,
)
from driftline.twin.adapters import clear_faults, inject_faults, pending_faults
from tests.twin.conftest import RunningTwin

pytestmark = [pytest.mark.twin, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BREAST_CANCER = REPO / "examples" / "breast_cancer.csv"
CONTRACT = (REPO / "contracts" / "breast_cancer.yaml").read_text()
MODEL_CONFIG = (REPO / "models" / "breast_cancer.yaml").read_text()
ESTIMATOR = "sklearn.ensemble.HistGradientBoostingClassifier"


@pytest.fixture(scope="module")
def alerts(twin: RunningTwin) -> Iterator[Callable[[], list[str]]]:
    """An SQS queue subscribed to the alerts topic: what operators would be sent."""
    sqs, sns = twin.client("sqs"), twin.client("sns")
    queue_url = sqs.create_queue(QueueName="fault-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=twin.outputs["AlertsTopicArn"], Protocol="sqs", Endpoint=queue_arn)

    def drain() -> list[str]:
        messages: list[str] = []
        while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                messages.append(json.loads(message["Body"]).get("Message", message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    yield drain


@pytest.fixture(autouse=True)
def no_leftover_faults() -> Iterator[None]:
    clear_faults()
    yield
    clear_faults()


def _with_overrides(twin: RunningTwin, dataset: str, *, model_config: str = MODEL_CONFIG) -> None:
    """Give `dataset` breast_cancer's contract (renamed) and the model config given."""
    bucket = twin.outputs["DatasetsBucketName"]
    contract = CONTRACT.replace("dataset: breast_cancer", f"dataset: {dataset}", 1)
    upload_text(bucket, f"contracts/{dataset}.yaml", contract)
    upload_text(bucket, f"models/{dataset}.yaml", model_config)


def _run(twin: RunningTwin, dataset: str, path: Path) -> tuple[Upload, dict[str, Any]]:
    upload = upload_dataset(twin.outputs["DatasetsBucketName"], dataset, path)
    execution = wait_for_execution(
        twin.outputs["TrainingStateMachineArn"], upload.execution_name, timeout=240
    )
    return upload, execution


def _run_record(twin: RunningTwin, run_id: str) -> dict[str, Any]:
    runs = twin.session().resource("dynamodb").Table(twin.outputs["RunsTableName"])
    item: dict[str, Any] = runs.get_item(Key={"pk": f"run#{run_id}", "sk": "run"})["Item"]
    return item


def _registered_versions(twin: RunningTwin, model: str) -> list[dict[str, Any]]:
    models = twin.session().resource("dynamodb").Table(twin.outputs["ModelsTableName"])
    items = models.query(KeyConditionExpression=Key("pk").eq(f"model#{model}"))["Items"]
    return [item for item in items if str(item["sk"]).startswith("version#")]


def _task_attempts(twin: RunningTwin, execution_name: str) -> list[tuple[str, str | None]]:
    """(state, error or None) for every Lambda invocation of the execution, in history order.

    payload_response_only tasks name the function as their resource, so the history records
    each attempt as LambdaFunctionSucceeded/LambdaFunctionFailed.
    """
    arn = execution_arn(twin.outputs["TrainingStateMachineArn"], execution_name)
    history = twin.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)[
        "events"
    ]
    attempts: list[tuple[str, str | None]] = []
    state = ""
    for event in history:
        if "stateEnteredEventDetails" in event:
            state = event["stateEnteredEventDetails"]["name"]
        elif event["type"] == "LambdaFunctionSucceeded":
            attempts.append((state, None))
        elif event["type"] == "LambdaFunctionFailed":
            attempts.append((state, event["lambdaFunctionFailedEventDetails"]["error"]))
    return attempts


def _assert_failed_at_prepare(
    twin: RunningTwin,
    upload: Upload,
    execution: dict[str, Any],
    alerts: Callable[[], list[str]],
    dataset: str,
) -> str:
    """Pin the failure path's effects; return the execution's cause."""
    assert execution["status"] == "FAILED"
    assert execution["error"] == "PipelineFailed"
    cause = str(execution["cause"])
    assert cause.startswith("Prepare failed: ") and "\n" not in cause
    states = [
        step.state
        for step in step_results(twin.outputs["TrainingStateMachineArn"], upload.execution_name)
    ]
    assert "Prepare" in states and "Train" not in states
    assert states[-2:] == ["RecordFailure", "NotifyFailure"]
    run = _run_record(twin, upload.execution_name)
    assert run["status"] == "Failed"
    assert run["failed_step"] == "Prepare"
    assert run["cause"] == cause
    assert _registered_versions(twin, dataset) == []
    notices = [message for message in alerts() if upload.execution_name in message]
    assert len(notices) == 1 and f"Cause: {cause}" in notices[0]
    return cause


def test_a_transient_train_failure_is_retried_and_the_run_succeeds(
    twin: RunningTwin, alerts: Callable[[], list[str]]
) -> None:
    alerts()
    inject_faults("train", count=1)

    upload, execution = _run(twin, "breast_cancer", BREAST_CANCER)

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert pending_faults() == 0
    attempts = _task_attempts(twin, upload.execution_name)
    assert [error for state, error in attempts if state == "Train"] == ["TransientError", None]
    assert [error for state, error in attempts if error is not None] == ["TransientError"]
    registered = json.loads(execution["output"])["registered"]
    assert _run_record(twin, upload.execution_name)["status"] == "Succeeded"
    assert registered["version"] in [
        int(v["version"]) for v in _registered_versions(twin, "breast_cancer")
    ]


@pytest.mark.parametrize(
    ("dataset", "broken", "complaint"),
    [
        (
            "bc_unknown_estimator",
            (ESTIMATOR, "sklearn.ensemble.NoSuchForest"),
            "key 'estimator.class_path': 'sklearn.ensemble' has no 'NoSuchForest'",
        ),
        (
            "bc_unknown_target",
            ("target: target", "target: diagnosis"),
            "key 'target': 'diagnosis' is not a column of the data contract",
        ),
        (
            "bc_unknown_metric",
            ("metrics: [roc_auc, accuracy, f1]", "metrics: [roc_auc, bogus]"),
            "key 'metrics[1]': unknown metric 'bogus'",
        ),
    ],
)
def test_an_invalid_model_config_fails_the_run_at_prepare_naming_the_key(
    twin: RunningTwin,
    alerts: Callable[[], list[str]],
    dataset: str,
    broken: tuple[str, str],
    complaint: str,
) -> None:
    alerts()
    _with_overrides(twin, dataset, model_config=MODEL_CONFIG.replace(*broken, 1))

    upload, execution = _run(twin, dataset, BREAST_CANCER)

    cause = _assert_failed_at_prepare(twin, upload, execution, alerts, dataset)
    assert f"s3://{twin.outputs['DatasetsBucketName']}/models/{dataset}.yaml" in cause
    assert complaint in cause


def test_a_constant_target_fails_the_run_before_training(
    twin: RunningTwin, alerts: Callable[[], list[str]], tmp_path: Path
) -> None:
    alerts()
    dataset = "bc_one_class"
    _with_overrides(twin, dataset)
    rows = list(csv.DictReader(io.StringIO(BREAST_CANCER.read_text())))
    constant = tmp_path / "one_class.csv"
    with constant.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "target": "1"} for row in rows)

    upload, execution = _run(twin, dataset, constant)

    cause = _assert_failed_at_prepare(twin, upload, execution, alerts, dataset)
    assert "TrainingError: target 'target' has only one class (1)" in cause


def test_an_upload_whose_starter_fails_is_kept_and_listed_as_never_started(
    twin: RunningTwin, capsys: pytest.CaptureFixture[str]
) -> None:
    """StartRun failing (after Lambda's retries on AWS; one attempt on the twin) loses nothing:
    the S3 event waits in the undelivered-uploads queue and `runs list` names the upload."""
    from driftline.cli import main

    dataset = "bc_never_started"
    sqs, queue_url = twin.client("sqs"), twin.outputs["UndeliveredUploadsQueueUrl"]
    inject_faults("start_run", error_type="StatesThrottled", message="starter is down")

    upload = upload_dataset(twin.outputs["DatasetsBucketName"], dataset, BREAST_CANCER)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _queued(sqs, queue_url):
        time.sleep(0.2)
    try:
        assert main(["runs", "list", "--dataset", dataset, "--json"]) == 0
        (listed,) = json.loads(capsys.readouterr().out)
        assert (listed["run_id"], listed["status"]) == (upload.execution_name, "NotStarted")
        assert (listed["key"], listed["version_id"]) == (upload.key, upload.version_id)
        assert "StatesThrottled: starter is down" in listed["cause"]
        stepfunctions = twin.client("stepfunctions")
        with pytest.raises(stepfunctions.exceptions.ExecutionDoesNotExist):
            stepfunctions.describe_execution(
                executionArn=execution_arn(
                    twin.outputs["TrainingStateMachineArn"], upload.execution_name
                )
            )
    finally:
        sqs.purge_queue(QueueUrl=queue_url)


def _queued(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])
