"""The twin's fault hook: injected failures look like Lambda's and stop before the handler.

One moto server with the twin's adapters for the module (like test_adapters.py); small zip
functions count their own invocations, so a test can tell a fault from a handler that ran.
"""

from __future__ import annotations

import io
import json
import socket
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from driftline.twin.adapters import (
    clear_faults,
    inject_faults,
    install_adapters,
    pending_faults,
    shutdown_adapters,
)

pytestmark = [pytest.mark.twin]

REGION = "us-east-1"

COUNTING_HANDLER = """
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    return {"calls": CALLS, "echo": event}
"""


@dataclass
class Moto:
    port: int

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=f"http://127.0.0.1:{self.port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )

    def role(self) -> str:
        created = self.client("iam").create_role(
            RoleName=f"role-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}"
        )
        return str(created["Role"]["Arn"])

    def function(self, module: str) -> str:
        """A counting function tagged like Driftline's (`DRIFTLINE_FUNCTION=<module>`)."""
        name = f"Pipeline-{module.title()}-{uuid.uuid4().hex[:8]}"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("index.py", COUNTING_HANDLER)
        self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=self.role(),
            Handler="index.handler",
            Code={"ZipFile": buffer.getvalue()},
            Environment={"Variables": {"DRIFTLINE_FUNCTION": module}},
            Timeout=10,
        )
        return name

    def invoke(self, name: str, event: dict[str, Any] | None = None) -> tuple[str | None, Any]:
        """(the FunctionError header or None, the decoded payload)."""
        response = self.client("lambda").invoke(
            FunctionName=name, Payload=json.dumps(event or {}).encode()
        )
        return response.get("FunctionError"), json.loads(response["Payload"].read())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    port = _free_port()
    images: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("MOTO_PORT", str(port))
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            environment.setenv(name, "testing")
        environment.setenv("AWS_DEFAULT_REGION", REGION)
        install_adapters(
            port=port, image_folders=images.get, work_dir=tmp_path_factory.mktemp("faults")
        )
        moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto_server.start()
        try:
            yield Moto(port)
        finally:
            shutdown_adapters()
            moto_server.stop()


@pytest.fixture(autouse=True)
def no_leftover_faults() -> Iterator[None]:
    clear_faults()
    yield
    clear_faults()


def test_the_next_count_invocations_fail_like_lambda_before_the_handler_runs(
    server: Moto,
) -> None:
    train = server.function("train")
    inject_faults("train", count=2)

    failures = [server.invoke(train), server.invoke(train)]
    error, payload = server.invoke(train, {"n": 3})

    for function_error, failure in failures:
        assert function_error == "Unhandled"
        assert failure["errorType"] == "TransientError"
        assert train in failure["errorMessage"] and "\n" not in failure["errorMessage"]
        assert failure["stackTrace"] == []
    assert error is None
    assert payload == {"calls": 1, "echo": {"n": 3}}  # the faults never reached the handler
    assert pending_faults() == 0


def test_faults_hit_only_matching_functions_by_module_name_or_glob(server: Moto) -> None:
    train, evaluate = server.function("train"), server.function("evaluate")
    inject_faults("Pipeline-Evaluate-*", error_type="Lambda.ServiceException", message="boom")

    untouched = server.invoke(train)
    error, payload = server.invoke(evaluate)

    assert untouched[0] is None and untouched[1]["calls"] == 1
    assert error == "Unhandled"
    assert payload["errorType"] == "Lambda.ServiceException" and payload["errorMessage"] == "boom"
    assert server.invoke(evaluate)[1]["calls"] == 1
    inject_faults("evaluat", count=1)  # neither the module name nor a glob of the name
    assert server.invoke(evaluate)[1]["calls"] == 2
    assert pending_faults() == 1


def test_cleared_faults_no_longer_fire(server: Moto) -> None:
    gate = server.function("gate")
    inject_faults("gate", count=5)

    clear_faults()

    assert pending_faults() == 0
    assert server.invoke(gate) == (None, {"calls": 1, "echo": {}})


def test_a_state_machine_retries_an_injected_transient_error_and_succeeds(server: Moto) -> None:
    train = server.function("train")
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": train, "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "Retry": [
                    {"ErrorEquals": ["TransientError"], "IntervalSeconds": 1, "MaxAttempts": 2}
                ],
                "End": True,
            }
        },
    }
    sfn = server.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"sm-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=server.role()
    )["stateMachineArn"]
    inject_faults("train")

    arn = sfn.start_execution(stateMachineArn=machine, input='{"x": 1}')["executionArn"]
    deadline = time.monotonic() + 30
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution still RUNNING after 30 s"
        time.sleep(0.1)

    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) == {"calls": 1, "echo": {"x": 1}}
    events = sfn.get_execution_history(executionArn=arn)["events"]
    failed = [e for e in events if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == ["TransientError"]


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"function_match": " "}, "function_match is empty"),
        ({"function_match": "train", "error_type": ""}, "error_type is empty"),
        ({"function_match": "train", "count": 0}, "count must be at least 1, got 0"),
    ],
)
def test_unusable_fault_requests_are_refused_with_one_line(
    arguments: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        inject_faults(**arguments)
    assert pending_faults() == 0
