"""A bare moto server with the twin's adapters (no deployed stacks), for the adapter tests.

`tests/twin/conftest.py` starts one per test module as the `moto_server` fixture: the
adapters patch moto process-wide, so a server must not outlive its module. Tests build the
few resources they need through boto3 or a small CloudFormation template.
"""

from __future__ import annotations

import io
import json
import socket
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from driftline.twin.adapters import install_adapters, shutdown_adapters

REGION = "us-east-1"
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


@dataclass
class MotoServer:
    """A moto server with the adapters, and helpers to build resources on it."""

    port: int
    images: dict[str, Path]  # image URI -> staged code folder, read by the Lambda adapter

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
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

    def zip_function(self, code: str, name: str | None = None, **config: Any) -> str:
        """Create a python3.11 function from `code` (index.handler); return its name."""
        name = name or f"fn-{uuid.uuid4().hex[:8]}"
        self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=self.role(),
            Handler="index.handler",
            Code={"ZipFile": zipped({"index.py": code})},
            **config,
        )
        return name

    def state_machine(self, definition: dict[str, Any]) -> str:
        created = self.client("stepfunctions").create_state_machine(
            name=f"sm-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(definition),
            roleArn=self.role(),
        )
        return str(created["stateMachineArn"])

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


def inline_function(code: str, role: Any) -> dict[str, Any]:
    """An AWS::Lambda::Function running `code` inline (index.handler on python3.11)."""
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Runtime": "python3.11",
            "Handler": "index.handler",
            "Role": role,
            "Code": {"ZipFile": code},
        },
    }


def live_url(function: str = "Fn") -> dict[str, Any]:
    """Resources V1 (a version of `function`), Live (its `live` alias) and Url (an AWS_IAM
    Function URL on the alias), the way an endpoint has them."""
    return {
        "V1": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": function}}},
        "Live": {
            "Type": "AWS::Lambda::Alias",
            "Properties": {
                "FunctionName": {"Ref": function},
                "FunctionVersion": {"Fn::GetAtt": ["V1", "Version"]},
                "Name": "live",
            },
        },
        "Url": {
            "Type": "AWS::Lambda::Url",
            "Properties": {"TargetFunctionArn": {"Ref": "Live"}, "AuthType": "AWS_IAM"},
        },
    }


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_moto_server(work_dir: Path) -> Iterator[MotoServer]:
    """A moto server on a free port with the adapters installed, its AWS_* set while it runs."""
    port = _free_port()
    images: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("MOTO_PORT", str(port))
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            environment.setenv(name, "testing")
        environment.setenv("AWS_DEFAULT_REGION", REGION)
        install_adapters(port=port, image_folders=images.get, work_dir=work_dir)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield MotoServer(port, images)
        finally:
            shutdown_adapters()
            server.stop()
