"""A dataset the repo does not ship, end to end on the twin, by uploads alone.

Given the `local` stacks on the twin (nothing about `digits` in `models/` or `contracts/`),
when a team uploads scikit-learn's digits (10 classes, 64 features) with a contract from
`driftline contracts infer` and a model config of its own,
then the run succeeds, registers v1 with lineage to the upload's S3 VersionId and deploys it to
the shared endpoint; `driftline predict` answers with it and captures are written; drifted
traffic puts the model's contributor of the fleet drift alarm into ALARM, which names the model
in a notification and retrains it; and v2 answers on the shared endpoint afterwards.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driftline.cli import main
from driftline.loop import upload_dataset, wait_for_execution
from pipelines.monitoring import retrain_execution_name
from tests.twin.conftest import RunningTwin

pytestmark = [pytest.mark.twin, pytest.mark.slow]

DATASET = "digits"
MODEL_CONFIG = """\
task: classification
target: target
estimator:
  class_path: sklearn.ensemble.HistGradientBoostingClassifier
  params: {max_iter: 30, max_leaf_nodes: 15, early_stopping: false}
metrics: [accuracy, f1]
split: {test_fraction: 0.2, validation_fraction: 0.2, seed: 7}
gate:
  thresholds: {accuracy: 0.85}
  max_regression: {accuracy: 0.02}
"""


def cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def digits_frame() -> Any:
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    frame.columns = [name.replace("pixel_", "p") for name in frame.columns]
    return frame


def inbox(twin: RunningTwin) -> Callable[[], list[dict[str, Any]]]:
    """An SQS queue subscribed to the alerts topic: what on-call would receive."""
    sqs, sns = twin.client("sqs"), twin.client("sns")
    url = sqs.create_queue(QueueName="digits-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=twin.outputs["AlertsTopicArn"], Protocol="sqs", Endpoint=arn)

    def read() -> list[dict[str, Any]]:
        found = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    return read


def predict(
    rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> dict[str, Any]:
    code, out, err = cli(
        ["predict", "--model", DATASET], monkeypatch, capsys, json.dumps({"rows": rows})
    )
    assert code == 0, err
    answer: dict[str, Any] = json.loads(out)
    return answer


def test_an_uploaded_dataset_is_trained_served_watched_and_retrained(
    twin: RunningTwin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    frame = digits_frame()
    data = tmp_path / "digits.csv"
    frame.to_csv(data, index=False)
    code, contract, err = cli(
        ["contracts", "infer", str(data), "--dataset", DATASET], monkeypatch, capsys
    )
    assert code == 0, err
    s3 = twin.client("s3")
    bucket = twin.outputs["DatasetsBucketName"]
    s3.put_object(Bucket=bucket, Key=f"contracts/{DATASET}.yaml", Body=contract.encode())
    s3.put_object(Bucket=bucket, Key=f"models/{DATASET}.yaml", Body=MODEL_CONFIG.encode())
    alerts = inbox(twin)

    # When the data lands, the run trains, registers and deploys with no stack change.
    upload = upload_dataset(bucket, DATASET, data)
    machine = twin.outputs["TrainingStateMachineArn"]
    execution = wait_for_execution(machine, upload.execution_name, timeout=300)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert output["registered"]["version"] == 1
    assert (output["deployment"]["status"], output["deployment"]["endpoint"]) == (
        "Succeeded",
        "shared",
    )
    code, out, err = cli(["models", "show", DATASET, "--json"], monkeypatch, capsys)
    assert code == 0, err
    shown = json.loads(out)
    version_record = shown["versions"][0] if "versions" in shown else shown
    assert upload.version_id in json.dumps(version_record)  # lineage to the S3 object version
    code, out, err = cli(["runs", "show", upload.execution_name, "--json"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out)["deployment_status"] == "Deployed"

    # Then the shared endpoint answers for it, and captures what it answered.
    features = frame.drop(columns="target")
    healthy = features.head(300).to_dict(orient="records")
    answer = predict(healthy[:5], monkeypatch, capsys)
    assert (answer["model"], answer["model_version"]) == (DATASET, 1)
    assert set(answer["predictions"]) <= set(range(10))
    assert len(answer["classes"]) == 10
    code, out, err = cli(
        ["predict", "--model", DATASET, "--url"],
        monkeypatch,
        capsys,
        json.dumps({"rows": healthy[5:8]}),
    )  # a SigV4-signed POST to <shared endpoint URL>/models/digits
    assert code == 0, err
    assert (json.loads(out)["model"], len(json.loads(out)["predictions"])) == (DATASET, 3)
    artifacts = twin.outputs["ArtifactsBucketName"]
    captured = s3.list_objects_v2(Bucket=artifacts, Prefix=f"captures/{DATASET}/")
    assert captured.get("KeyCount", 0) >= 1

    # When drifted traffic arrives (pixel intensities inverted) and the monitor checks it,
    drifted = (16 - features.tail(400)).to_dict(orient="records")
    predict(drifted[:200], monkeypatch, capsys)
    predict(drifted[200:], monkeypatch, capsys)
    response = twin.client("lambda").invoke(
        FunctionName=twin.outputs["DriftMonitorFunctionName"],
        Payload=json.dumps({"trigger": "manual", "model": DATASET}).encode(),
    )
    checked = json.loads(response["Payload"].read())
    assert checked["checked"][0]["verdict"] == "drift", checked

    # then the fleet alarm flags digits (a contributor of its own), on-call hears of it,
    cloudwatch = twin.client("cloudwatch")
    deadline = time.monotonic() + 60
    contributors: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not contributors:
        alarms = cloudwatch.describe_alarms()["MetricAlarms"]
        fleet = [a for a in alarms if "FleetDriftAlarm" in a["AlarmName"]]
        assert len(fleet) == 1
        contributors = cloudwatch.describe_alarm_contributors(AlarmName=fleet[0]["AlarmName"])[
            "AlarmContributors"
        ]
        time.sleep(1)
    assert [c["ContributorAttributes"] for c in contributors] == [{"Model": DATASET}]
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        DATASET in m.get("Subject", "") and "drift" in m.get("Subject", "").lower()
        for m in messages
    ):
        messages += alerts()
        time.sleep(1)
    assert any(DATASET in m.get("Subject", "") for m in messages), [
        m.get("Subject") for m in messages
    ]

    # and the retrain it started puts v2 behind the same shared endpoint.
    retrain = wait_for_execution(
        machine, retrain_execution_name(DATASET, upload.version_id, 1), timeout=300
    )
    assert retrain["status"] == "SUCCEEDED", retrain.get("cause")
    assert json.loads(retrain["output"])["registered"]["version"] == 2
    # A warm endpoint re-reads a model's route within DRIFTLINE_ROUTE_TTL_SECONDS (10 s).
    deadline = time.monotonic() + 20
    while predict(healthy[:3], monkeypatch, capsys)["model_version"] != 2:
        assert time.monotonic() < deadline, "v2 never answered on the shared endpoint"
        time.sleep(1)
