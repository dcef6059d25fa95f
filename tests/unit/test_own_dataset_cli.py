"""`driftline upload` and `driftline runs wait|logs|rerun` on in-process moto.

The stacks hold what the commands find through stack outputs: a versioned datasets bucket,
the Datasets and Runs tables, a Lambda function with its own log group, and the training
state machine's ARN. The state machine is a small stand-in with the pipeline's step names
whose path is chosen by the execution input (moto runs it), so each verdict `runs wait` must
tell apart is a real execution history: deployed, registered but not deployed, dataset
rejected, gate failed, a failed step, a run still going.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from driftline import run_follow
from driftline.cli import main
from driftline.commands import upload
from functions.shared.registry import to_attributes
from tests.unit.conftest import registry_table_resource

pytestmark = pytest.mark.unit

DATASETS, DATASETS_TABLE, RUNS_TABLE = "datasets-bucket", "datasets-table", "runs-table"
MACHINE = "training"
MACHINE_ARN = f"arn:aws:states:us-east-1:123456789012:stateMachine:{MACHINE}"

CONTRACT = """\
dataset: wine
columns:
  alcohol: {type: float}
  color_intensity: {type: float}
  target: {type: int, allowed: [0, 1, 2]}
target: target
"""
MODEL_CONFIG = """\
task: classification
target: target
estimator:
  class_path: sklearn.linear_model.LogisticRegression
  params: {max_iter: 500}
metrics: [accuracy, f1]
"""


DATA_TEMPLATE = {
    "Resources": {
        "Datasets": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "BucketName": DATASETS,
                "VersioningConfiguration": {"Status": "Enabled"},
            },
        },
        "DatasetsTable": registry_table_resource(DATASETS_TABLE),
        "RunsTable": registry_table_resource(RUNS_TABLE),
    },
    "Outputs": {
        "DatasetsBucketName": {"Value": {"Ref": "Datasets"}},
        "DatasetsTableName": {"Value": {"Ref": "DatasetsTable"}},
        "RunsTableName": {"Value": {"Ref": "RunsTable"}},
    },
}
# moto's interpreter does not see state machines CloudFormation creates, so the Pipeline stack
# carries the function and its log group, and its output names the machine made by the API.
PIPELINE_TEMPLATE = {
    "Resources": {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}},
        },
        "RecordLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {}},
        "RecordFunction": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.11",
                "Handler": "index.handler",
                "Code": {"ZipFile": "def handler(event, context):\n    return event\n"},
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "LoggingConfig": {"LogGroup": {"Ref": "RecordLogs"}},
            },
        },
    },
    "Outputs": {
        "TrainingStateMachineArn": {"Value": MACHINE_ARN},
        "RecordFunctionArn": {"Value": {"Fn::GetAtt": ["RecordFunction", "Arn"]}},
        "RecordLogGroup": {"Value": {"Ref": "RecordLogs"}},
    },
}


def sdk_step(name: str, result: dict[str, Any], result_path: str, next_: str) -> dict[str, Any]:
    """A Task state that succeeds when the bucket at `$.<name>_bucket` exists."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:s3:headBucket",
        "Parameters": {"Bucket.$": f"$.{name.lower()}_bucket"},
        "ResultSelector": result,
        "ResultPath": result_path,
        "Next": next_,
    }


def definition(record_function_arn: str) -> dict[str, Any]:
    states: dict[str, Any] = {
        "Hold": {"Type": "Wait", "SecondsPath": "$.hold_seconds", "Next": "Validate"},
        "Validate": sdk_step(
            "Validate",
            {"status.$": "$$.Execution.Input.validation_status", "rows": 178},
            "$.validation",
            "DatasetAccepted?",
        ),
        "DatasetAccepted?": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$.validation.status",
                    "StringEquals": "rejected",
                    "Next": "DatasetRejected",
                }
            ],
            "Default": "Prepare",
        },
        "DatasetRejected": {
            "Type": "Fail",
            "Error": "DatasetRejected",
            "Cause": "3 violation(s); report s3://artifacts/datasets/wine/v1/report.json",
        },
        "Prepare": sdk_step("Prepare", {"rows": 178, "features": 2}, "$.prepared", "Gate"),
        "Gate": sdk_step(
            "Gate",
            {"passed.$": "$$.Execution.Input.gate_passed", "reasons": ["accuracy 0.61 < 0.9"]},
            "$.gate",
            "GatePassed?",
        ),
        "GatePassed?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.gate.passed", "BooleanEquals": True, "Next": "Register"}],
            "Default": "GateRejected",
        },
        "GateRejected": {
            "Type": "Fail",
            "Error": "GateRejected",
            "Cause": "gate rejected the model: accuracy 0.61 < 0.9",
        },
        "Register": sdk_step(
            "Register",
            {"model": "wine", "version": 1, "status": "Approved"},
            "$.registered",
            "Deploy",
        ),
        "Deploy": {
            **sdk_step(
                "Deploy",
                {"status.$": "$$.Execution.Input.deploy_status", "endpoint": "shared"},
                "$.deployment",
                "Record?",
            ),
            "Catch": [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.deployment", "Next": "Record?"}
            ],
        },
        # The one Lambda step, taken when the input asks for it (the logs tests): moto prints
        # its failure to start Docker on stdout while it runs.
        "Record?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.record", "BooleanEquals": True, "Next": "RecordSuccess"}],
            "Default": "Done",
        },
        "RecordSuccess": {
            "Type": "Task",
            "Resource": record_function_arn,
            "ResultPath": "$.outcome",
            # moto runs no Lambda code here (no Docker): the invocation fails and is caught.
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.outcome", "Next": "Done"}],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    }
    for name in ("Validate", "Gate", "Register"):
        states[name]["Parameters"] = {"Bucket": DATASETS}
    return {"StartAt": "Hold", "States": states}


@pytest.fixture(scope="module")
def stacks(emulated_aws: None) -> dict[str, str]:
    cloudformation = boto3.client("cloudformation")
    for part, template in (("Data", DATA_TEMPLATE), ("Pipeline", PIPELINE_TEMPLATE)):
        cloudformation.create_stack(
            StackName=f"Driftline-local-{part}", TemplateBody=json.dumps(template)
        )
    # moto's CloudFormation drops VersioningConfiguration (the twin has an adapter for it).
    boto3.client("s3").put_bucket_versioning(
        Bucket=DATASETS, VersioningConfiguration={"Status": "Enabled"}
    )
    outputs = {
        output["OutputKey"]: output["OutputValue"]
        for output in cloudformation.describe_stacks(StackName="Driftline-local-Pipeline")[
            "Stacks"
        ][0]["Outputs"]
    }
    boto3.client("stepfunctions").create_state_machine(
        name=MACHINE,
        definition=json.dumps(definition(outputs["RecordFunctionArn"])),
        roleArn="arn:aws:iam::123456789012:role/training",
    )
    return outputs


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_follow, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(upload, "START_SECONDS", 0.1)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what moto printed before the command ran
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


_counter = iter(range(1, 1_000_000))


def start(**overrides: Any) -> str:
    """Start an execution named like an upload's run; returns the run id."""
    version_id = overrides.pop("version_id", f"v{next(_counter)}")
    name = f"wine-{version_id}"
    document = {
        "dataset": "wine",
        "bucket": DATASETS,
        "key": "datasets/wine/wine.csv",
        "version_id": version_id,
        "trigger": "upload",
        "validation_status": "accepted",
        "validate_bucket": DATASETS,
        "prepare_bucket": DATASETS,
        "gate_passed": True,
        "deploy_bucket": DATASETS,
        "deploy_status": "Succeeded",
        "hold_seconds": 0,
        "record": False,
        **overrides,
    }
    boto3.client("stepfunctions").start_execution(
        stateMachineArn=MACHINE_ARN, name=name, input=json.dumps(document)
    )
    return name


def finished(run: str) -> dict[str, Any]:
    stepfunctions = boto3.client("stepfunctions")
    arn = f"{MACHINE_ARN.replace(':stateMachine:', ':execution:')}:{run}"
    for _ in range(200):
        description: dict[str, Any] = stepfunctions.describe_execution(executionArn=arn)
        if description["status"] != "RUNNING":
            return description
        time.sleep(0.05)
    raise AssertionError(f"{run} did not finish")


# --- runs wait --------------------------------------------------------------------------------


def test_wait_prints_one_line_per_step_and_exits_0_when_deployed(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = start()

    code, out, err = cli(capsys, "runs", "wait", run)

    lines = out.splitlines()
    assert (code, err) == (0, "")
    assert [line.split()[0] for line in lines[:-1]] == [
        "Validate",
        "Prepare",
        "Gate",
        "Register",
        "Deploy",
    ]
    assert lines[0].split()[1] == "succeeded"
    assert "accepted 178 rows" in lines[0]
    assert lines[0].split()[3] == "s"  # "<seconds> s"
    assert "wine v1 Approved" in lines[3]
    assert lines[-1].startswith(f"run {run}: SUCCEEDED in ")
    assert lines[-1].endswith("deployed wine v1: Succeeded")


def test_wait_json_is_one_document_with_steps_and_the_deployment(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = start()

    code, out, _ = cli(capsys, "runs", "wait", run, "--json")

    document = json.loads(out)
    assert code == 0
    assert (document["run"], document["status"], document["verdict"]) == (
        run,
        "SUCCEEDED",
        "deployed",
    )
    assert (document["dataset"], document["version_id"]) == ("wine", run.removeprefix("wine-"))
    assert [step["step"] for step in document["steps"]][:2] == ["Validate", "Prepare"]
    assert all(isinstance(step["seconds"], float) for step in document["steps"])
    assert document["deployment"]["deployed"] is True
    assert document["deployment"]["detail"]["endpoint"] == "shared"
    assert document["registered"] == {"model": "wine", "version": 1, "status": "Approved"}


@pytest.mark.parametrize(
    ("overrides", "verdict", "message"),
    [
        ({"deploy_bucket": "no-such-bucket"}, "not_deployed", "registered wine v1, not deployed: "),
        ({"deploy_status": "AwaitingApproval"}, "not_deployed", "not deployed: AwaitingApproval"),
        ({"validation_status": "rejected"}, "rejected", "dataset rejected: 3 violation(s)"),
        ({"gate_passed": False}, "gate_failed", "gate failed: gate rejected the model: accuracy"),
    ],
    ids=["deploy-refused", "deploy-status-not-live", "dataset-rejected", "gate-failed"],
)
def test_a_negative_verdict_exits_1_with_one_line_naming_it(
    stacks: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    overrides: dict[str, Any],
    verdict: str,
    message: str,
) -> None:
    run = start(**overrides)

    code, out, err = cli(capsys, "runs", "wait", run, "--json")

    assert code == 1
    assert json.loads(out)["verdict"] == verdict
    assert err.startswith(f"driftline: run {run}: ")
    assert message in err
    assert err.count("\n") == 1


def test_the_run_records_deployment_status_wins_over_the_deploy_output(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = start()
    boto3.client("dynamodb").put_item(
        TableName=RUNS_TABLE,
        Item=to_attributes(
            {
                "pk": f"run#{run}",
                "sk": "run",
                "run_id": run,
                "status": "Succeeded",
                "deployment_status": "NotDeployed",
                "deployment_reason": "wine v1 is PendingApproval",
            }
        ),
    )

    code, out, err = cli(capsys, "runs", "wait", run, "--json")

    document = json.loads(out)
    assert code == 1
    assert document["deployment"]["status"] == "NotDeployed"
    assert document["run_status"] == "Succeeded"
    assert "not deployed: NotDeployed (wine v1 is PendingApproval)" in err


def test_a_failed_step_exits_2_and_is_marked_in_the_steps(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = start(prepare_bucket="no-such-bucket")

    code, out, err = cli(capsys, "runs", "wait", run, "--json")

    document = json.loads(out)
    prepare = next(step for step in document["steps"] if step["step"] == "Prepare")
    assert code == 2
    assert document["verdict"] == "failed"
    assert prepare["status"] in ("failed", "stopped")
    assert prepare["error"]
    assert err.startswith(f"driftline: run {run}: ") and err.count("\n") == 1


def test_an_unknown_run_is_one_line_and_exit_2_at_once(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "runs", "wait", "wine-nope")

    assert (code, out) == (2, "")
    assert err.startswith("driftline: unknown run 'wine-nope'")


def test_a_run_still_going_at_the_timeout_exits_2(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = start(hold_seconds=30)  # far beyond the timeout, however loaded the machine

    code, _, err = cli(capsys, "runs", "wait", run, "--timeout", "0.3")

    assert code == 2
    assert err == (
        f"driftline: run '{run}' is still RUNNING after 0.3 s "
        "(wait again with a larger --timeout)\n"
    )
    boto3.client("stepfunctions").stop_execution(
        executionArn=f"{MACHINE_ARN.replace(':stateMachine:', ':execution:')}:{run}"
    )


def test_wait_accepts_the_execution_arn(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = start()
    arn = f"{MACHINE_ARN.replace(':stateMachine:', ':execution:')}:{run}"

    code, out, _ = cli(capsys, "runs", "wait", arn, "--json")

    assert (code, json.loads(out)["run"]) == (0, run)


# --- runs logs --------------------------------------------------------------------------------


def put_invocation(group: str, stream: str, request_id: str, *lines: str) -> None:
    logs = boto3.client("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    framed = [
        f"START RequestId: {request_id} Version: $LATEST",
        *lines,
        f"END RequestId: {request_id}",
        f"REPORT RequestId: {request_id}\tDuration: 12.00 ms",
    ]
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": now, "message": line} for line in framed],
    )


def test_logs_prints_the_lines_of_the_runs_own_invocations(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = start(record=True)
    finished(run)
    group = stacks["RecordLogGroup"]
    mine = json.dumps({"level": "INFO", "message": "run finished", "run_id": run})
    theirs = json.dumps({"level": "INFO", "message": "run finished", "run_id": "wine-other"})
    put_invocation(group, "2026/11/03/[$LATEST]a", "req-mine", mine)
    put_invocation(group, "2026/11/03/[$LATEST]b", "req-theirs", theirs)
    put_invocation(group, "2026/11/03/[$LATEST]c", "req-crash", "Traceback: import failed")

    code, out, _ = cli(capsys, "runs", "logs", run, "--json")

    lines = json.loads(out)
    assert code == 0
    ids = {line["request_id"] for line in lines}
    # The emulator may also log the step's real invocation (naming no run): kept, like a crash.
    assert {"req-mine", "req-crash"} <= ids and "req-theirs" not in ids
    assert {line["step"] for line in lines} == {"RecordSuccess"}
    assert [line["message"] for line in lines if line["request_id"] == "req-mine"] == [
        "START RequestId: req-mine Version: $LATEST",
        mine,
        "END RequestId: req-mine",
        "REPORT RequestId: req-mine\tDuration: 12.00 ms",
    ]

    code, out, _ = cli(capsys, "runs", "logs", run, "--step", "recordsuccess")
    assert code == 0
    assert "run finished" in out and "wine-other" not in out
    assert all(line.split()[1] == "RecordSuccess" for line in out.splitlines())


def test_logs_of_an_unknown_step_names_the_steps_there_are(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = start(record=True)
    finished(run)

    code, _, err = cli(capsys, "runs", "logs", run, "--step", "Train")

    assert code == 2
    assert err == f"driftline: run '{run}' has no Lambda step 'Train' (steps: RecordSuccess)\n"


# --- runs rerun -------------------------------------------------------------------------------


def accept(version_id: str, key: str = "datasets/wine/wine.csv") -> None:
    boto3.client("dynamodb").put_item(
        TableName=DATASETS_TABLE,
        Item=to_attributes(
            {
                "pk": "dataset#wine",
                "sk": f"accepted#2026-11-03T10:00:00.000+00:00#{version_id}",
                "dataset": "wine",
                "version_id": version_id,
                "key": key,
            }
        ),
    )


def test_rerun_starts_a_new_run_on_the_same_accepted_version(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = start(version_id="vRerun")
    finished(run)
    accept("vRerun")

    code, out, _ = cli(capsys, "runs", "rerun", run, "--json")

    started = json.loads(out)
    assert code == 0
    assert (started["run"], started["rerun_of"]) == ("wine-vRerun-rerun-1", run)
    description = boto3.client("stepfunctions").describe_execution(
        executionArn=started["execution_arn"]
    )
    given = json.loads(description["input"])
    assert {key: given[key] for key in ("dataset", "bucket", "key", "version_id", "trigger")} == {
        "dataset": "wine",
        "bucket": DATASETS,
        "key": "datasets/wine/wine.csv",
        "version_id": "vRerun",
        "trigger": "rerun",
    }
    assert given["requested_at"].endswith("Z")

    code, out, _ = cli(capsys, "runs", "rerun", run)
    assert code == 0
    assert out.splitlines()[1].split()[:2] == ["wine-vRerun-rerun-2", run]


def test_rerun_refuses_a_version_that_was_not_accepted(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = start(version_id="vQuarantined", validation_status="rejected")
    finished(run)

    code, out, err = cli(capsys, "runs", "rerun", run)

    assert (code, out) == (2, "")
    assert err == (
        f"driftline: run '{run}': dataset 'wine' version vQuarantined was not accepted "
        "(`driftline datasets show wine --version vQuarantined`); upload a corrected file to "
        "start a new run\n"
    )


# --- upload -----------------------------------------------------------------------------------


def s3_text(key: str, version_id: str | None = None) -> str:
    extra = {"VersionId": version_id} if version_id else {}
    body = boto3.client("s3").get_object(Bucket=DATASETS, Key=key, **extra)["Body"]
    return str(body.read().decode())


def keys(prefix: str) -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=DATASETS, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_upload_puts_the_file_the_contract_and_the_config_and_names_the_run(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = write(tmp_path / "wine.csv", "alcohol,color_intensity,target\n13.2,5.1,0\n")
    contract = write(tmp_path / "wine.yaml", CONTRACT)
    config = write(tmp_path / "wine-model.yaml", MODEL_CONFIG)

    code, out, _ = cli(
        capsys,
        "upload",
        str(data),
        "--dataset",
        "wine",
        "--contract",
        str(contract),
        "--model-config",
        str(config),
        "--json",
    )

    document = json.loads(out)
    assert code == 0
    assert document["key"] == "datasets/wine/wine.csv"
    assert document["run"] == f"wine-{document['version_id']}"
    assert document["run_status"] == "not started"  # no EventBridge starter in this account
    assert s3_text("datasets/wine/wine.csv", document["version_id"]).startswith("alcohol,")
    assert s3_text("contracts/wine.yaml", document["contract"]["version_id"]) == CONTRACT
    assert s3_text("models/wine.yaml", document["model_config"]["version_id"]) == MODEL_CONFIG
    assert document["model_config"]["features_checked"] is True
    assert document["contract"]["columns"] == 3

    code, out, _ = cli(capsys, "upload", str(data), "--dataset", "wine")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert code == 0
    assert rows["dataset"][0] == f"s3://{DATASETS}/datasets/wine/wine.csv"
    assert rows["run"][0] == f"wine-{rows['dataset'][1]}"


CHECKED = CONTRACT.replace("dataset: wine", "dataset: checked_wine")


@pytest.mark.parametrize(
    ("contract", "config", "message"),
    [
        (CONTRACT, None, "key 'dataset': says 'wine', expected 'checked_wine'"),
        (CHECKED.replace("type: float", "type: decimal", 1), None, "columns.alcohol.type"),
        (CHECKED, MODEL_CONFIG.replace("target: target", "target: quality"), "key 'target'"),
        (None, MODEL_CONFIG.replace("f1]", "rmse]"), "key 'metrics[1]'"),
    ],
    ids=["contract-for-another-dataset", "bad-contract", "target-not-in-contract", "bad-metric"],
)
def test_upload_checks_contract_and_config_offline_before_uploading_anything(
    stacks: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    contract: str | None,
    config: str | None,
    message: str,
) -> None:
    data = write(tmp_path / "checked.csv", "alcohol,color_intensity,target\n13.2,5.1,0\n")
    argv = ["upload", str(data), "--dataset", "checked_wine"]
    if contract is not None:
        argv += ["--contract", str(write(tmp_path / "c.yaml", contract))]
    if config is not None:
        argv += ["--model-config", str(write(tmp_path / "m.yaml", config))]

    code, out, err = cli(capsys, *argv)

    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1
    assert keys("datasets/checked_wine/") == []
    assert keys("contracts/checked_wine") == keys("models/checked_wine") == []


def test_a_config_alone_is_checked_against_the_contract_already_in_the_bucket(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    boto3.client("s3").put_object(
        Bucket=DATASETS,
        Key="contracts/red_wine.yaml",
        Body=CONTRACT.replace("dataset: wine", "dataset: red_wine").encode(),
    )
    data = write(tmp_path / "red.csv", "alcohol,color_intensity,target\n13.2,5.1,0\n")
    config = write(tmp_path / "m.yaml", MODEL_CONFIG + "features: [alcohol, hue]\n")

    code, _, err = cli(
        capsys, "upload", str(data), "--dataset", "red_wine", "--model-config", str(config)
    )

    assert code == 2
    assert "key 'features[1]': 'hue' is not a column of the data contract" in err
    assert keys("datasets/red_wine/") == []


def test_a_folder_is_uploaded_as_a_batch_whose_marker_names_the_run(
    stacks: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    for index in range(2):
        write(folder / f"part-0000{index}.csv", "alcohol,color_intensity,target\n13.2,5.1,0\n")
    write(folder / "_SUCCESS", "")
    write(folder / ".part-00000.csv.crc", "x")

    code, out, _ = cli(
        capsys, "upload", str(folder), "--dataset", "wine", "--batch", "b1", "--json"
    )

    document = json.loads(out)
    assert code == 0
    assert sorted(keys("datasets/wine/b1/")) == [
        "datasets/wine/b1/_COMPLETE",
        "datasets/wine/b1/part-00000.csv",
        "datasets/wine/b1/part-00001.csv",
    ]
    assert document["key"] == "datasets/wine/b1/_COMPLETE"
    assert document["run"] == f"wine-{document['version_id']}"
    assert [part["key"] for part in document["parts"]] == [
        "datasets/wine/b1/part-00000.csv",
        "datasets/wine/b1/part-00001.csv",
    ]

    code, _, err = cli(capsys, "upload", str(folder), "--dataset", "wine", "--batch", "b1")
    assert code == 2
    assert "already holds a batch (batches are write-once)" in err


def test_a_large_file_goes_up_in_parts_and_its_own_version_is_reported(
    stacks: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mib = 1024 * 1024
    monkeypatch.setattr(
        upload, "TRANSFER", TransferConfig(multipart_threshold=5 * mib, multipart_chunksize=5 * mib)
    )
    row = "13.2,5.1,0\n"
    data = write(
        tmp_path / "big.csv", "alcohol,color_intensity,target\n" + row * (11 * mib // len(row))
    )

    code, out, _ = cli(capsys, "upload", str(data), "--dataset", "wine", "--json")

    document = json.loads(out)
    head = boto3.client("s3").head_object(
        Bucket=DATASETS, Key="datasets/wine/big.csv", VersionId=document["version_id"]
    )
    assert code == 0
    assert head["ContentLength"] == data.stat().st_size
    assert "-" in head["ETag"]  # a multipart ETag: <md5 of part md5s>-<parts>


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["notes.txt", "--dataset", "wine"], "not one of .csv, .csv.gz, .parquet"),
        (["wine.csv", "--dataset", "../wine"], "dataset name '../wine' is not"),
        (["missing.csv", "--dataset", "wine"], "no such file or folder"),
        (["wine.csv", "--dataset", "wine", "--batch", "b"], "--batch applies to a folder"),
    ],
    ids=["suffix", "dataset-name", "missing", "batch-for-a-file"],
)
def test_unusable_upload_input_is_one_line_and_exit_2(
    stacks: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    write(tmp_path / "notes.txt", "x")
    write(tmp_path / "wine.csv", "a\n1\n")

    code, out, err = cli(capsys, "upload", str(tmp_path / argv[0]), *argv[1:])

    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("deployment", "deployed", "status", "reason"),
    [
        ({"status": "Succeeded", "endpoint": "own"}, True, "Succeeded", None),
        ({"status": "AlreadyLive"}, True, "AlreadyLive", None),
        (
            {"status": "Succeeded", "deployed": False, "reason": "canary"},
            False,
            "Succeeded",
            "canary",
        ),
        ({"deployed": True, "endpoint": "shared"}, True, "unknown", None),
        (
            {
                "Error": "DeploymentRefused",
                "Cause": json.dumps(
                    {"errorType": "DeploymentRefused", "errorMessage": "v2 is PendingApproval"}
                ),
            },
            False,
            "DeploymentRefused",
            "DeploymentRefused: v2 is PendingApproval",
        ),
        ("gone", False, "unknown", None),
    ],
    ids=["status", "already-live", "flag-wins", "flag-only", "caught-error", "not-a-mapping"],
)
def test_the_deployment_outcome_is_read_from_any_shape_the_deploy_step_gives(
    deployment: Any, deployed: bool, status: str, reason: str | None
) -> None:
    from driftline.executions import deployment_outcome

    outcome = deployment_outcome(deployment)

    assert (outcome["deployed"], outcome["status"], outcome["reason"]) == (deployed, status, reason)
