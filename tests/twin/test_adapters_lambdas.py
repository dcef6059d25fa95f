"""Section 1 of the adapters: Lambda without Docker (warm workers, images, async invokes,
failures and timeouts shaped like Lambda's).

On the bare `moto_server` of tests/twin/conftest.py (one per module, no stacks deployed).
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from driftline.twin.adapters import (
    worker_thread_settings,
)
from tests.twin.moto_server import REGION, MotoServer, eventually, zipped

pytestmark = [pytest.mark.twin]


PROBE_HANDLER = """
import json, os, time
import boto3

STARTED = time.time()
print("init", os.getpid())
s3 = boto3.client("s3")

def handler(event, context):
    print("event", json.dumps(event))
    if event.get("write"):
        s3.put_object(Bucket=event["write"], Key=context.aws_request_id, Body=b"done")
    return {
        "pid": os.getpid(),
        "started": STARTED,
        "function_name": context.function_name,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
        "stage": os.environ["STAGE"],
        "endpoint": os.environ["AWS_ENDPOINT_URL"],
        "openmp": {k: v for k, v in os.environ.items() if k.startswith("OMP_")},
        "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]],
    }
"""


def test_lambda_runs_in_a_warm_worker_with_context_environment_and_logs(
    moto_server: MotoServer,
) -> None:
    lam = moto_server.client("lambda")
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    name = moto_server.zip_function(
        PROBE_HANDLER,
        Timeout=7,
        MemorySize=256,
        Environment={"Variables": {"STAGE": "test"}},
        LoggingConfig={"LogGroup": f"/custom/{bucket}"},
    )

    first = lam.invoke(FunctionName=name, Payload=b'{"n": 1}')
    second = lam.invoke(FunctionName=name, Payload=b'{"n": 2}', LogType="Tail")
    one, two = (json.loads(r["Payload"].read()) for r in (first, second))

    assert "FunctionError" not in second
    assert two["pid"] == one["pid"] and two["started"] == one["started"]  # warm, init once
    assert two["function_name"] == name and two["arn"].endswith(f":function:{name}")
    assert two["memory"] == 256 and 0 < two["remaining"] <= 7000
    assert two["stage"] == "test" and two["endpoint"] == f"http://127.0.0.1:{moto_server.port}"
    assert bucket in two["buckets"]  # the handler's own boto3 reaches the twin
    # A bounded OpenMP team (256 MB is less than one Lambda vCPU), and no PASSIVE wait policy,
    # which makes HistGradientBoosting about 10x slower.
    assert two["openmp"] == {"OMP_NUM_THREADS": "1"}
    assert 'event {"n": 2}' in base64.b64decode(second["LogResult"]).decode()

    queued = lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps({"write": bucket})
    )
    assert queued["StatusCode"] == 202
    eventually(lambda: moto_server.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount"))

    logs = moto_server.client("logs")
    streams = logs.describe_log_streams(logGroupName=f"/custom/{bucket}")["logStreams"]
    messages = [
        event["message"]
        for stream in streams
        for event in logs.get_log_events(
            logGroupName=f"/custom/{bucket}", logStreamName=stream["logStreamName"]
        )["events"]
    ]
    assert any(m.startswith("init ") for m in messages)
    assert any(m.startswith("REPORT RequestId:") for m in messages)

    lam.update_function_code(
        FunctionName=name, ZipFile=zipped({"index.py": PROBE_HANDLER.replace("init", "new code")})
    )
    third = json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    assert third["pid"] != two["pid"]  # new code, new execution environment


@pytest.mark.parametrize(
    ("memory_mb", "host_cores", "threads"),
    [(3008, 2, "1"), (3008, 8, "2"), (10240, 64, "6"), (128, 1, "1"), (1769, 16, "1")],
)
def test_worker_openmp_threads_are_lambda_vcpus_bounded_by_the_host_less_one(
    monkeypatch: pytest.MonkeyPatch, memory_mb: int, host_cores: int, threads: str
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(host_cores)))

    assert worker_thread_settings(memory_mb) == {"OMP_NUM_THREADS": threads}


def test_image_function_runs_its_command_from_the_staged_folder(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    package = tmp_path / "functions" / "scorer"
    package.mkdir(parents=True)
    (tmp_path / "functions" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "handler.py").write_text(
        "def handler(event, context):\n    return {'score': event['x'] * 2}\n"
    )
    image_uri = f"000000000000.dkr.ecr.{REGION}.amazonaws.com/repo:{uuid.uuid4().hex}"
    moto_server.images[image_uri] = tmp_path
    outputs = moto_server.deploy(
        {
            "Resources": {
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
                "Scorer": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "PackageType": "Image",
                        "Code": {"ImageUri": image_uri},
                        "ImageConfig": {"Command": ["functions.scorer.handler.handler"]},
                        "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    },
                },
            },
            "Outputs": {"Scorer": {"Value": {"Ref": "Scorer"}}},
        }
    )

    response = moto_server.client("lambda").invoke(
        FunctionName=outputs["Scorer"], Payload=b'{"x": 21}'
    )

    assert json.loads(response["Payload"].read()) == {"score": 42}


S3_SUBSCRIBER = """
import time
import boto3

def handler(event, context):
    # Waits for a "release" object the test writes only after its PutObject returned: were
    # the notification delivered synchronously, the upload would wait on this handler, the
    # release would never come in time and the journal would say so.
    record = event["Records"][0]["s3"]
    journal = record["bucket"]["name"] + "-journal"
    s3 = boto3.client("s3")
    deadline = time.monotonic() + 8
    released = False
    while not released and time.monotonic() < deadline:
        released = bool(s3.list_objects_v2(Bucket=journal, Prefix="release").get("KeyCount"))
        time.sleep(0.05)
    body = b"seen after the upload returned" if released else b"the upload waited for me"
    s3.put_object(Bucket=journal, Key=record["object"]["key"], Body=body)
"""


def test_s3_notification_invokes_lambda_without_blocking_the_upload(
    moto_server: MotoServer,
) -> None:
    s3, lam = moto_server.client("s3"), moto_server.client("lambda")
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    journal = f"{bucket}-journal"
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=journal)
    name = moto_server.zip_function(S3_SUBSCRIBER, Timeout=10)
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )

    s3.put_object(Bucket=bucket, Key="upload.csv", Body=b"x")
    s3.put_object(Bucket=journal, Key="release", Body=b"")

    eventually(lambda: s3.list_objects_v2(Bucket=journal, Prefix="upload.csv").get("KeyCount"))
    entry = s3.get_object(Bucket=journal, Key="upload.csv")["Body"].read()
    assert entry == b"seen after the upload returned"


FAULTY_HANDLER = """
import os, time
import boto3

def handler(event, context):
    if event["mode"] == "raise":
        raise ValueError("bad row 7")
    s3 = boto3.client("s3")
    s3.put_object(Bucket=event["bucket"], Key=context.function_name, Body=str(os.getpid()))
    time.sleep(60)
"""


def test_raising_handler_gives_a_lambda_shaped_task_failure_and_the_server_keeps_serving(
    moto_server: MotoServer,
) -> None:
    name = moto_server.zip_function(FAULTY_HANDLER, Timeout=5)
    arn = moto_server.state_machine(
        {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": name, "Payload.$": "$"},
                    "End": True,
                }
            },
        },
    )

    execution = moto_server.run(arn, {"mode": "raise"})

    assert execution["status"] == "FAILED" and execution["error"] == "ValueError"
    failed = [
        e for e in moto_server.history(execution["executionArn"]) if e["type"] == "TaskFailed"
    ]
    cause = json.loads(failed[0]["taskFailedEventDetails"]["cause"])
    assert cause["errorType"] == "ValueError" and cause["errorMessage"] == "bad row 7"
    assert any("in handler" in frame for frame in cause["stackTrace"])
    direct = moto_server.client("lambda").invoke(FunctionName=name, Payload=b'{"mode": "raise"}')
    assert direct["FunctionError"] == "Unhandled"
    broken = moto_server.zip_function("import no_such_module\n")
    failed_init = moto_server.client("lambda").invoke(FunctionName=broken, Payload=b"{}")
    assert json.loads(failed_init["Payload"].read())["errorType"] == "Runtime.ImportModuleError"
    assert moto_server.client("s3").list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_hanging_handler_is_killed_at_its_timeout_and_the_failure_is_catchable(
    moto_server: MotoServer,
) -> None:
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    name = moto_server.zip_function(FAULTY_HANDLER, Timeout=1)
    slow = moto_server.zip_function(FAULTY_HANDLER, Timeout=30)

    def guarded(function: str, task_timeout: int | None) -> dict[str, Any]:
        call: dict[str, Any] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": function, "Payload.$": "$"},
            "Catch": [
                {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "TimedOut"},
                {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Failed"},
            ],
            "End": True,
        }
        if task_timeout:
            call["TimeoutSeconds"] = task_timeout
        return {
            "StartAt": "Call",
            "States": {
                "Call": call,
                "TimedOut": {
                    "Type": "Pass",
                    "Result": "task timeout",
                    "ResultPath": "$.path",
                    "End": True,
                },
                "Failed": {
                    "Type": "Pass",
                    "Result": "task failed",
                    "ResultPath": "$.path",
                    "End": True,
                },
            },
        }

    started = time.monotonic()
    by_lambda = moto_server.run(
        moto_server.state_machine(guarded(name, None)), {"mode": "hang", "bucket": bucket}
    )
    elapsed = time.monotonic() - started
    by_task = moto_server.run(
        moto_server.state_machine(guarded(slow, 1)), {"mode": "hang", "bucket": bucket}
    )

    lambda_output, task_output = json.loads(by_lambda["output"]), json.loads(by_task["output"])
    assert lambda_output["path"] == "task failed"  # AWS: Sandbox.Timedout matches States.TaskFailed
    assert lambda_output["error"]["Error"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in lambda_output["error"]["Cause"]
    assert elapsed < 10
    assert (
        task_output["path"] == "task timeout" and task_output["error"]["Error"] == "States.Timeout"
    )
    pid = int(moto_server.client("s3").get_object(Bucket=bucket, Key=name)["Body"].read())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the hung worker of the 1 s function is gone
