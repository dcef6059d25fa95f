"""The twin's moto adapters, each pinned by the behaviour it adds to moto 5.2.5.

One moto server for the module, started here (not the deployed twin of conftest.py): every
test builds the few resources it needs, through boto3 or a small CloudFormation template.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from driftline.twin.adapters import (
    MOTO_VERSION,
    TwinAdapterError,
    check_moto_internals,
    install_adapters,
    render_input_template,
    shutdown_adapters,
    unsupported_resource_types,
    worker_thread_settings,
)

pytestmark = [pytest.mark.twin]

REGION = "us-east-1"
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Moto:
    """A moto server with the adapters, and helpers to build resources on it."""

    port: int
    images: dict[str, Path]

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=f"http://127.0.0.1:{self.port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=NO_RETRIES,
        )

    def deploy(self, template: dict[str, Any]) -> dict[str, str]:
        """Create a stack from `template`; return its outputs."""
        name = f"t-{uuid.uuid4().hex[:10]}"
        cloudformation = self.client("cloudformation")
        cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return {"StackName": name, **outputs}

    def role(self) -> str:
        iam = self.client("iam")
        name = f"role-{uuid.uuid4().hex[:8]}"
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"])

    def zip_function(self, code: str, **config: Any) -> str:
        name = f"fn-{uuid.uuid4().hex[:8]}"
        self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=self.role(),
            Handler="index.handler",
            Code={"ZipFile": zipped({"index.py": code})},
            **config,
        )
        return name

    def run(self, state_machine_arn: str, document: Any, timeout: float = 20.0) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        arn = sfn.start_execution(stateMachineArn=state_machine_arn, input=json.dumps(document))
        return self.finished(arn["executionArn"], timeout)

    def finished(self, execution_arn: str, timeout: float = 20.0) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if execution["status"] != "RUNNING":
                return execution
            time.sleep(0.1)
        raise AssertionError(f"execution {execution_arn} still RUNNING after {timeout}s")

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        return list(sfn.get_execution_history(executionArn=execution_arn)["events"])


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def eventually(probe: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    port = _free_port()
    images: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("MOTO_PORT", str(port))
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            environment.setenv(name, "testing")
        environment.setenv("AWS_DEFAULT_REGION", REGION)
        install_adapters(
            port=port, image_folders=images.get, work_dir=tmp_path_factory.mktemp("lambda")
        )
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield Moto(port, images)
        finally:
            shutdown_adapters()
            server.stop()


def state_machine(twin: Moto, definition: dict[str, Any]) -> str:
    sfn = twin.client("stepfunctions")
    created = sfn.create_state_machine(
        name=f"sm-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=twin.role()
    )
    return str(created["stateMachineArn"])


# -- the upgrade guard --------------------------------------------------------------------------


def test_adapters_fail_loudly_when_moto_moves_a_patched_internal(twin: Moto) -> None:
    check_moto_internals()  # every patched internal exists in the installed moto
    moved = (("moto.awslambda.models", "LambdaFunction.run_in_docker", "adapt_lambda_invoke"),)
    with pytest.raises(TwinAdapterError, match=r"LambdaFunction\.run_in_docker \(used by adapt_"):
        check_moto_internals(moved)
    assert moto.__version__ == MOTO_VERSION, (
        f"moto is {moto.__version__}, the adapters were verified on {MOTO_VERSION}: run "
        "tests/twin/test_adapters.py, port what broke, then bump MOTO_VERSION"
    )


# -- 1. Lambda without Docker -------------------------------------------------------------------

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


def test_lambda_runs_in_a_warm_worker_with_context_environment_and_logs(twin: Moto) -> None:
    lam = twin.client("lambda")
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    twin.client("s3").create_bucket(Bucket=bucket)
    name = twin.zip_function(
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
    assert two["stage"] == "test" and two["endpoint"] == f"http://127.0.0.1:{twin.port}"
    assert bucket in two["buckets"]  # the handler's own boto3 reaches the twin
    # A bounded OpenMP team (256 MB is less than one Lambda vCPU), and no PASSIVE wait policy,
    # which makes HistGradientBoosting about 10x slower.
    assert two["openmp"] == {"OMP_NUM_THREADS": "1"}
    assert 'event {"n": 2}' in base64.b64decode(second["LogResult"]).decode()

    queued = lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps({"write": bucket})
    )
    assert queued["StatusCode"] == 202
    eventually(lambda: twin.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount"))

    logs = twin.client("logs")
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


def test_image_function_runs_its_command_from_the_staged_folder(twin: Moto, tmp_path: Path) -> None:
    package = tmp_path / "functions" / "scorer"
    package.mkdir(parents=True)
    (tmp_path / "functions" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "handler.py").write_text(
        "def handler(event, context):\n    return {'score': event['x'] * 2}\n"
    )
    image_uri = f"000000000000.dkr.ecr.{REGION}.amazonaws.com/repo:{uuid.uuid4().hex}"
    twin.images[image_uri] = tmp_path
    outputs = twin.deploy(
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

    response = twin.client("lambda").invoke(FunctionName=outputs["Scorer"], Payload=b'{"x": 21}')

    assert json.loads(response["Payload"].read()) == {"score": 42}


S3_SUBSCRIBER = """
import json, time
import boto3

def handler(event, context):
    time.sleep(1)
    record = event["Records"][0]["s3"]
    target = record["bucket"]["name"] + "-journal"
    boto3.client("s3").put_object(Bucket=target, Key=record["object"]["key"], Body=b"seen")
"""


def test_s3_notification_invokes_lambda_without_blocking_the_upload(twin: Moto) -> None:
    s3, lam = twin.client("s3"), twin.client("lambda")
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=f"{bucket}-journal")
    name = twin.zip_function(S3_SUBSCRIBER, Timeout=10)
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )

    started = time.monotonic()
    s3.put_object(Bucket=bucket, Key="upload.csv", Body=b"x")
    upload_seconds = time.monotonic() - started

    eventually(lambda: s3.list_objects_v2(Bucket=f"{bucket}-journal").get("KeyCount"))
    assert upload_seconds < 0.5  # the handler's 1 s sleep did not hold up the PUT


# -- 2. Step Functions: CloudFormation's state machines execute ---------------------------------

WORKER_HANDLER = """
def handler(event, context):
    if event.get("mode") == "raise":
        raise RuntimeError("asked to fail")
    return {"n": event.get("n", 0) + 1}
"""


def test_state_machine_created_by_cloudformation_executes_every_state_kind(twin: Moto) -> None:
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "Inc",
                        "States": {
                            "Inc": {
                                "Type": "Task",
                                "Resource": "arn:aws:states:::lambda:invoke",
                                "Parameters": {"FunctionName": "${Fn}", "Payload": {"n": 1}},
                                "OutputPath": "$.Payload",
                                "End": True,
                            }
                        },
                    },
                    {
                        "StartAt": "Const",
                        "States": {"Const": {"Type": "Pass", "Result": "constant", "End": True}},
                    },
                ],
                "ResultPath": "$.parallel",
                "Next": "Each",
            },
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Item",
                    "States": {"Item": {"Type": "Task", "Resource": "${FnArn}", "End": True}},
                },
                "ResultPath": "$.mapped",
                "Next": "Tag",
            },
            "Tag": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:s3:putObjectTagging",
                "Parameters": {
                    "Bucket": "${Bucket}",
                    "Key": "data.csv",
                    "Tagging": {"TagSet": [{"Key": "validated", "Value": "true"}]},
                },
                "ResultPath": None,
                "Next": "Record",
            },
            "Record": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {"TableName": "${Table}", "Item": {"pk": {"S.$": "$.id"}}},
                "ResultPath": None,
                "Next": "Notify",
            },
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": "${Topic}", "Message.$": "$.id"},
                "ResultPath": "$.published",
                "Next": "Flaky",
            },
            "Flaky": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "${Fn}", "Payload": {"mode": "raise"}},
                "Retry": [
                    {"ErrorEquals": ["RuntimeError"], "MaxAttempts": 1, "IntervalSeconds": 1}
                ],
                "Catch": [
                    {
                        "ErrorEquals": ["States.TaskFailed"],
                        "ResultPath": "$.caught",
                        "Next": "Which",
                    }
                ],
                "Next": "Unreachable",
            },
            "Which": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.caught.Error", "StringEquals": "RuntimeError", "Next": "Done"}
                ],
                "Default": "Unreachable",
            },
            "Unreachable": {"Type": "Fail", "Error": "WrongPath"},
            "Done": {"Type": "Succeed"},
        },
    }
    role = {"Fn::GetAtt": ["Role", "Arn"]}
    outputs = twin.deploy(
        {
            "Resources": {
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
                "Data": {"Type": "AWS::S3::Bucket"},
                "Runs": {
                    "Type": "AWS::DynamoDB::Table",
                    "Properties": {
                        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                        "BillingMode": "PAY_PER_REQUEST",
                    },
                },
                "Events": {"Type": "AWS::SNS::Topic"},
                "Fn": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Runtime": "python3.11",
                        "Handler": "index.handler",
                        "Role": role,
                        "Code": {"ZipFile": WORKER_HANDLER},
                    },
                },
                "Machine": {
                    "Type": "AWS::StepFunctions::StateMachine",
                    "Properties": {
                        "RoleArn": role,
                        "DefinitionString": json.dumps(definition),
                        "DefinitionSubstitutions": {
                            "Fn": {"Ref": "Fn"},
                            "FnArn": {"Fn::GetAtt": ["Fn", "Arn"]},
                            "Bucket": {"Ref": "Data"},
                            "Table": {"Ref": "Runs"},
                            "Topic": {"Ref": "Events"},
                        },
                    },
                },
            },
            "Outputs": {
                "Machine": {"Value": {"Ref": "Machine"}},
                "Bucket": {"Value": {"Ref": "Data"}},
                "Table": {"Value": {"Ref": "Runs"}},
            },
        }
    )
    twin.client("s3").put_object(Bucket=outputs["Bucket"], Key="data.csv", Body=b"a,b\n1,2\n")

    execution = twin.run(outputs["Machine"], {"id": "run-1", "items": [{"n": 1}, {"n": 5}]})

    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["parallel"] == [{"n": 2}, "constant"]
    assert output["mapped"] == [{"n": 2}, {"n": 6}]
    assert output["caught"]["Error"] == "RuntimeError"
    assert "MessageId" in output["published"]
    tags = twin.client("s3").get_object_tagging(Bucket=outputs["Bucket"], Key="data.csv")
    assert tags["TagSet"] == [{"Key": "validated", "Value": "true"}]
    item = twin.client("dynamodb").get_item(TableName=outputs["Table"], Key={"pk": {"S": "run-1"}})
    assert "Item" in item
    failures = [e for e in twin.history(execution["executionArn"]) if e["type"] == "TaskFailed"]
    assert len(failures) == 2  # the first attempt and the one retry


def test_executions_started_without_a_name_each_get_their_own(twin: Moto) -> None:
    arn = state_machine(twin, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    sfn = twin.client("stepfunctions")

    first = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    second = sfn.start_execution(stateMachineArn=arn)["executionArn"]

    assert first != second and not first.endswith(":None")


# -- 3. EventBridge -> Step Functions -----------------------------------------------------------

NOTIFICATIONS_HANDLER = """
import json, urllib.request
import boto3

def handler(event, context):
    props = event["ResourceProperties"]
    status, reason = "SUCCESS", ""
    try:
        managed = props.get("Managed", "true").lower() == "true"  # CDK's handler does this
        config = props["NotificationConfiguration"] if event["RequestType"] != "Delete" else {}
        boto3.client("s3").put_bucket_notification_configuration(
            Bucket=props["BucketName"], NotificationConfiguration=config
        )
    except Exception as error:
        status, reason = "FAILED", str(error)
    body = json.dumps({
        "Status": status, "Reason": reason,
        "PhysicalResourceId": event["LogicalResourceId"],
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"], "Data": {"Managed": str(managed)},
    }).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT")
    urllib.request.urlopen(request).read()
"""


def test_s3_upload_starts_the_rules_state_machine_with_transformed_input(twin: Moto) -> None:
    role = {"Fn::GetAtt": ["Role", "Arn"]}
    outputs = twin.deploy(
        {
            "Resources": {
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
                "Datasets": {
                    "Type": "AWS::S3::Bucket",
                    "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
                },
                "NotificationsHandler": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Runtime": "python3.11",
                        "Handler": "index.handler",
                        "Role": role,
                        "Code": {"ZipFile": NOTIFICATIONS_HANDLER},
                    },
                },
                "Notifications": {
                    "Type": "Custom::S3BucketNotifications",
                    "Properties": {
                        "ServiceToken": {"Fn::GetAtt": ["NotificationsHandler", "Arn"]},
                        "BucketName": {"Ref": "Datasets"},
                        "NotificationConfiguration": {"EventBridgeConfiguration": {}},
                        "Managed": True,
                    },
                },
                "Training": {
                    "Type": "AWS::StepFunctions::StateMachine",
                    "Properties": {
                        "RoleArn": role,
                        "DefinitionString": json.dumps(
                            {"StartAt": "Got", "States": {"Got": {"Type": "Pass", "End": True}}}
                        ),
                    },
                },
                "OnUpload": {
                    "Type": "AWS::Events::Rule",
                    "DependsOn": "Notifications",
                    "Properties": {
                        "EventPattern": {
                            "source": ["aws.s3"],
                            "detail-type": ["Object Created"],
                            "detail": {"bucket": {"name": [{"Ref": "Datasets"}]}},
                        },
                        "Targets": [
                            {
                                "Id": "train",
                                "Arn": {"Ref": "Training"},
                                "RoleArn": role,
                                "InputTransformer": {
                                    "InputPathsMap": {
                                        "bucket": "$.detail.bucket.name",
                                        "key": "$.detail.object.key",
                                        "version": "$.detail.object.version-id",
                                    },
                                    "InputTemplate": '{"dataset": {"bucket": <bucket>, '
                                    '"key": <key>, "version": <version>}, '
                                    '"note": "new <key> (<aws.events.rule-name>)"}',
                                },
                            }
                        ],
                    },
                },
            },
            "Outputs": {
                "Bucket": {"Value": {"Ref": "Datasets"}},
                "Machine": {"Value": {"Ref": "Training"}},
                "Managed": {"Value": {"Fn::GetAtt": ["Notifications", "Managed"]}},
            },
        }
    )
    assert outputs["Managed"] == "True"  # the handler saw "true", the string CloudFormation sends

    put = twin.client("s3").put_object(Bucket=outputs["Bucket"], Key="in/day 1.csv", Body=b"x")

    sfn = twin.client("stepfunctions")
    executions = eventually(
        lambda: sfn.list_executions(stateMachineArn=outputs["Machine"])["executions"]
    )
    execution = twin.finished(executions[0]["executionArn"])
    document = json.loads(execution["input"])
    assert document["dataset"] == {
        "bucket": outputs["Bucket"],
        "key": "in/day 1.csv",
        "version": put["VersionId"],
    }
    assert document["note"].startswith("new in/day 1.csv (")


def test_input_template_quotes_values_like_eventbridge() -> None:
    values = {"key": 'a "quoted" name', "size": 3, "tags": ["x"], "gone": None}

    as_json = render_input_template(
        '{"k": <key>, "s": <size>, "t": <tags>, "g": <gone>, "msg": "<key> is <size>"}', values
    )
    as_text = render_input_template("<key> has <size> bytes", values)

    assert json.loads(as_json) == {
        "k": 'a "quoted" name',
        "s": 3,
        "t": ["x"],
        "g": None,
        "msg": 'a "quoted" name is 3',
    }
    assert as_text == 'a "quoted" name has 3 bytes'


# -- 4. CDK custom resources ----------------------------------------------------------------------

RECORDING_PROVIDER = """
import json, urllib.request
import boto3

def handler(event, context):
    props = event["ResourceProperties"]
    boto3.client("s3").put_object(
        Bucket=props["Journal"], Key=event["RequestId"],
        Body=json.dumps({"type": event["RequestType"], "props": props,
                         "old": event.get("OldResourceProperties")}),
    )
    status = "FAILED" if props.get("Fail") == "true" else "SUCCESS"
    body = json.dumps({
        "Status": status, "Reason": "provider said no",
        "PhysicalResourceId": "thing-" + props["Size"],
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": {"Kinds": ",".join(type(v).__name__ for v in props.values())},
    }).encode()
    urllib.request.urlopen(urllib.request.Request(event["ResponseURL"], data=body, method="PUT"))
"""


def _provider_template(journal: str, size: int, fail: bool = False) -> dict[str, Any]:
    return {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
            "Provider": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.11",
                    "Handler": "index.handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"ZipFile": RECORDING_PROVIDER},
                },
            },
            "Thing": {
                "Type": "Custom::Thing",
                "Properties": {
                    "ServiceToken": {"Fn::GetAtt": ["Provider", "Arn"]},
                    "Journal": journal,
                    "Size": size,
                    "Enabled": True,
                    "Fail": fail,
                },
            },
            "After": {"Type": "AWS::SNS::Topic", "DependsOn": "Thing"},
        },
        "Outputs": {
            "Thing": {"Value": {"Ref": "Thing"}},
            "Kinds": {"Value": {"Fn::GetAtt": ["Thing", "Kinds"]}},
        },
    }


def test_custom_resource_runs_create_update_delete_with_string_properties(twin: Moto) -> None:
    s3, cloudformation = twin.client("s3"), twin.client("cloudformation")
    journal = f"journal-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=journal)

    outputs = twin.deploy(_provider_template(journal, 3))
    assert outputs["Thing"] == "thing-3"  # the provider's PhysicalResourceId, at once
    assert outputs["Kinds"] == "str,str,str,str,str"  # True and 3 arrived as "true" and "3"

    stack = outputs["StackName"]
    cloudformation.update_stack(
        StackName=stack, TemplateBody=json.dumps(_provider_template(journal, 4))
    )
    cloudformation.delete_stack(StackName=stack)

    requests = [
        json.loads(s3.get_object(Bucket=journal, Key=o["Key"])["Body"].read())
        for o in s3.list_objects_v2(Bucket=journal)["Contents"]
    ]
    by_type = {r["type"]: r for r in requests}
    assert sorted(by_type) == ["Create", "Delete", "Update"]
    assert by_type["Create"]["props"]["Enabled"] == "true"
    assert by_type["Update"]["old"]["Size"] == "3" and by_type["Update"]["props"]["Size"] == "4"


def test_failed_custom_resource_fails_the_stack_naming_the_resource(twin: Moto) -> None:
    journal = f"journal-{uuid.uuid4().hex[:8]}"
    twin.client("s3").create_bucket(Bucket=journal)
    cloudformation = twin.client("cloudformation")

    with pytest.raises(
        cloudformation.exceptions.ClientError, match=r"Thing \(Custom::Thing\).*provider said no"
    ):
        cloudformation.create_stack(
            StackName=f"t-{uuid.uuid4().hex[:8]}",
            TemplateBody=json.dumps(_provider_template(journal, 1, fail=True)),
        )


# -- 5. aws-sdk task outputs with datetimes -------------------------------------------------------


def test_aws_sdk_task_output_with_datetimes_is_described_as_iso_strings(twin: Moto) -> None:
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    twin.client("s3").create_bucket(Bucket=bucket)
    twin.client("s3").put_object(Bucket=bucket, Key="k", Body=b"x")
    arn = state_machine(
        twin,
        {
            "StartAt": "Head",
            "States": {
                "Head": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:s3:headObject",
                    "Parameters": {"Bucket": bucket, "Key": "k"},
                    "End": True,
                }
            },
        },
    )

    execution = twin.run(arn, {})

    assert execution["status"] == "SUCCEEDED"
    modified = json.loads(execution["output"])["LastModified"]
    assert modified.endswith("Z") and modified[:4].isdigit() and "T" in modified


# -- 6. CloudWatch alarms -------------------------------------------------------------------------


def test_alarm_from_template_evaluates_acts_and_drives_composites(twin: Moto) -> None:
    namespace = f"Driftline/{uuid.uuid4().hex[:6]}"
    role = {"Fn::GetAtt": ["Role", "Arn"]}
    outputs = twin.deploy(
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
    cloudwatch, sqs = twin.client("cloudwatch"), twin.client("sqs")

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
    sfn = twin.client("stepfunctions")
    started = eventually(
        lambda: sfn.list_executions(stateMachineArn=outputs["Machine"])["executions"]
    )
    event = json.loads(twin.finished(started[0]["executionArn"])["input"])
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
    twin: Moto, statistic: str, treat_missing: str, values: list[float], expected: str
) -> None:
    cloudwatch = twin.client("cloudwatch")
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


def test_alarm_on_an_anomaly_band_is_rejected_clearly(twin: Moto) -> None:
    cloudwatch = twin.client("cloudwatch")

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


# -- 7. Resource types moto's CloudFormation lacks ------------------------------------------------

SUBSCRIBER_HANDLER = """
import json
import boto3

def handler(event, context):
    record = event["Records"][0]["Sns"]
    key = record.get("Subject") or "direct"
    boto3.client("s3").put_object(Bucket=record["Message"], Key=key, Body=json.dumps(record))
    return {"version": context.invoked_function_arn}
"""


def test_missing_resource_types_are_created_from_templates(twin: Moto) -> None:
    journal = f"journal-{uuid.uuid4().hex[:8]}"
    role = {"Fn::GetAtt": ["Role", "Arn"]}
    template = {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
            "Journal": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": journal}},
            "DenyAll": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "Journal"},
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Deny",
                                "Principal": {"AWS": "*"},
                                "Action": "s3:*",
                                "Resource": "*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ],
                    },
                },
            },
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.11",
                    "Handler": "index.handler",
                    "Role": role,
                    "Code": {"ZipFile": SUBSCRIBER_HANDLER},
                },
            },
            "V1": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Fn"}}},
            "Live": {
                "Type": "AWS::Lambda::Alias",
                "Properties": {
                    "FunctionName": {"Ref": "Fn"},
                    "FunctionVersion": {"Fn::GetAtt": ["V1", "Version"]},
                    "Name": "live",
                },
            },
            "Url": {
                "Type": "AWS::Lambda::Url",
                "Properties": {"TargetFunctionArn": {"Ref": "Live"}, "AuthType": "AWS_IAM"},
            },
            "Topic": {"Type": "AWS::SNS::Topic"},
            "TopicPolicy": {
                "Type": "AWS::SNS::TopicPolicy",
                "Properties": {
                    "Topics": [{"Ref": "Topic"}],
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "sns:Publish",
                                "Resource": {"Ref": "Topic"},
                            }
                        ],
                    },
                },
            },
            "ToLambda": {
                "Type": "AWS::SNS::Subscription",
                "Properties": {
                    "TopicArn": {"Ref": "Topic"},
                    "Protocol": "lambda",
                    "Endpoint": {"Ref": "Live"},
                },
            },
            "Dlq": {"Type": "AWS::SQS::Queue"},
            "DlqPolicy": {
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {
                    "Queues": [{"Ref": "Dlq"}],
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "sqs:SendMessage",
                                "Resource": {"Fn::GetAtt": ["Dlq", "Arn"]},
                            }
                        ],
                    },
                },
            },
            "Nightly": {
                "Type": "AWS::Scheduler::Schedule",
                "Properties": {
                    "ScheduleExpression": "rate(1 day)",
                    "FlexibleTimeWindow": {"Mode": "OFF"},
                    "Target": {"Arn": {"Ref": "Live"}, "RoleArn": role, "Input": "{}"},
                },
            },
        },
        "Outputs": {
            "Alias": {"Value": {"Ref": "Live"}},
            "Version": {"Value": {"Fn::GetAtt": ["V1", "Version"]}},
            "Url": {"Value": {"Fn::GetAtt": ["Url", "FunctionUrl"]}},
            "Topic": {"Value": {"Ref": "Topic"}},
            "Dlq": {"Value": {"Ref": "Dlq"}},
            "Schedule": {"Value": {"Ref": "Nightly"}},
            "ScheduleArn": {"Value": {"Fn::GetAtt": ["Nightly", "Arn"]}},
        },
    }
    assert unsupported_resource_types(template) == []
    assert unsupported_resource_types(
        {
            "Resources": {
                "A": {"Type": "AWS::CodeDeploy::Application"},
                "B": {"Type": "AWS::CDK::Metadata"},
            }
        }
    ) == ["AWS::CodeDeploy::Application"]

    outputs = twin.deploy(template)

    assert outputs["Version"] == "1" and outputs["Alias"].endswith(":live")
    assert outputs["Url"].startswith(f"http://127.0.0.1:{twin.port}/_lambda-url/")  # served
    schedule = twin.client("scheduler").get_schedule(Name=outputs["Schedule"])
    assert (
        schedule["Arn"] == outputs["ScheduleArn"] and schedule["Target"]["Arn"] == outputs["Alias"]
    )
    s3 = twin.client("s3")
    assert "SecureTransport" in s3.get_bucket_policy(Bucket=journal)["Policy"]  # stored...
    sns = twin.client("sns")
    policy = sns.get_topic_attributes(TopicArn=outputs["Topic"])["Attributes"]["Policy"]
    assert "events.amazonaws.com" in policy
    queue = twin.client("sqs").get_queue_attributes(
        QueueUrl=outputs["Dlq"], AttributeNames=["Policy"]
    )
    assert "sqs:SendMessage" in queue["Attributes"]["Policy"]
    invoked = twin.client("lambda").invoke(
        FunctionName=outputs["Alias"],
        Payload=json.dumps({"Records": [{"Sns": {"Message": journal}}]}),
    )
    assert json.loads(invoked["Payload"].read())["version"] == outputs["Alias"]

    sns.publish(TopicArn=outputs["Topic"], Message=journal, Subject="drift")

    def delivered() -> bytes | None:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=journal).get("Contents", [])]
        return (
            s3.get_object(Bucket=journal, Key="drift")["Body"].read() if "drift" in keys else None
        )

    # ...and not enforced: the subscriber could write to the bucket despite its Deny statement.
    body = eventually(delivered)
    record = json.loads(body)
    assert record["TopicArn"] == outputs["Topic"] and record["Subject"] == "drift"


def _key_template(description: str) -> dict[str, Any]:
    return {
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "Description": description,
                    "EnableKeyRotation": True,
                    "KeyPolicy": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": "*"},
                                "Action": "kms:*",
                                "Resource": "*",
                            }
                        ],
                    },
                    "Tags": [{"Key": "driftline:env", "Value": "local"}],
                },
            },
        },
        "Outputs": {"Key": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}}},
    }


def test_tagged_kms_key_is_created_and_updated_in_place(twin: Moto) -> None:
    outputs = twin.deploy(_key_template("first"))
    kms, cloudformation = twin.client("kms"), twin.client("cloudformation")

    cloudformation.update_stack(
        StackName=outputs["StackName"], TemplateBody=json.dumps(_key_template("second"))
    )

    stack = cloudformation.describe_stacks(StackName=outputs["StackName"])["Stacks"][0]
    assert stack["Outputs"][0]["OutputValue"] == outputs["Key"]  # same key, not dropped
    key = kms.describe_key(KeyId=outputs["Key"])["KeyMetadata"]
    assert key["Description"] == "second"
    assert kms.list_resource_tags(KeyId=outputs["Key"])["Tags"] == [
        {"TagKey": "driftline:env", "TagValue": "local"}
    ]
    assert (
        json.loads(kms.get_key_policy(KeyId=outputs["Key"], PolicyName="default")["Policy"])[
            "Version"
        ]
        == "2012-10-17"
    )


# -- faults ---------------------------------------------------------------------------------------

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
    twin: Moto,
) -> None:
    name = twin.zip_function(FAULTY_HANDLER, Timeout=5)
    arn = state_machine(
        twin,
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

    execution = twin.run(arn, {"mode": "raise"})

    assert execution["status"] == "FAILED" and execution["error"] == "ValueError"
    failed = [e for e in twin.history(execution["executionArn"]) if e["type"] == "TaskFailed"]
    cause = json.loads(failed[0]["taskFailedEventDetails"]["cause"])
    assert cause["errorType"] == "ValueError" and cause["errorMessage"] == "bad row 7"
    assert any("in handler" in frame for frame in cause["stackTrace"])
    direct = twin.client("lambda").invoke(FunctionName=name, Payload=b'{"mode": "raise"}')
    assert direct["FunctionError"] == "Unhandled"
    broken = twin.zip_function("import no_such_module\n")
    failed_init = twin.client("lambda").invoke(FunctionName=broken, Payload=b"{}")
    assert json.loads(failed_init["Payload"].read())["errorType"] == "Runtime.ImportModuleError"
    assert twin.client("s3").list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_hanging_handler_is_killed_at_its_timeout_and_the_failure_is_catchable(twin: Moto) -> None:
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    twin.client("s3").create_bucket(Bucket=bucket)
    name = twin.zip_function(FAULTY_HANDLER, Timeout=1)
    slow = twin.zip_function(FAULTY_HANDLER, Timeout=30)

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
    by_lambda = twin.run(
        state_machine(twin, guarded(name, None)), {"mode": "hang", "bucket": bucket}
    )
    elapsed = time.monotonic() - started
    by_task = twin.run(state_machine(twin, guarded(slow, 1)), {"mode": "hang", "bucket": bucket})

    lambda_output, task_output = json.loads(by_lambda["output"]), json.loads(by_task["output"])
    assert lambda_output["path"] == "task failed"  # AWS: Sandbox.Timedout matches States.TaskFailed
    assert lambda_output["error"]["Error"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in lambda_output["error"]["Cause"]
    assert elapsed < 10
    assert (
        task_output["path"] == "task timeout" and task_output["error"]["Error"] == "States.Timeout"
    )
    pid = int(twin.client("s3").get_object(Bucket=bucket, Key=name)["Body"].read())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the hung worker of the 1 s function is gone
