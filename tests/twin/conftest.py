"""The twin for the tests under tests/twin: moto in-process on a free port, `local` deployed.

The `local` env is synthesized once per session; each test module gets its own running twin
(module scope) with that assembly deployed. moto's backends and its CloudFormation patches
are process-global, so a twin must not outlive its module: the adapter tests run a bare moto
server (`moto_server`, no stacks deployed) in this process, and other packages' `mock_aws`
resets every backend. The AWS_* variables pointing boto3 at the twin are set only while it runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from driftline.twin.deployer import DeployResult, deploy, twin_client, twin_session
from driftline.twin.server import FAKE_CREDENTIALS, Twin, free_port
from driftline.twin.synth import synthesize
from tests.twin.moto_server import MotoServer, running_moto_server

DEPLOY_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class RunningTwin:
    endpoint: str
    state_dir: Path
    cdk_out: Path
    result: DeployResult

    @property
    def outputs(self) -> dict[str, str]:
        return self.result.outputs

    def session(self) -> boto3.session.Session:
        return twin_session()

    def client(self, service: str) -> Any:
        return twin_client(self.endpoint, service)


@pytest.fixture(scope="session")
def local_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `local` env's cloud assembly, synthesized once: `<dir>/cdk.out`."""
    state_dir = tmp_path_factory.mktemp("twin")
    return synthesize("local", state_dir / "cdk.out")


@pytest.fixture(scope="module")
def twin(local_assembly: Path) -> Iterator[RunningTwin]:
    state_dir = local_assembly.parent
    running = Twin(port=free_port(), state_dir=state_dir)
    with pytest.MonkeyPatch.context() as environment:
        for name, value in {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": running.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }.items():
            environment.setenv(name, value)
        environment.delenv("AWS_PROFILE", raising=False)
        try:
            running.start()
            result = deploy(
                running.cdk_out, endpoint=running.endpoint, timeout=DEPLOY_TIMEOUT_SECONDS
            )
            yield RunningTwin(running.endpoint, state_dir, running.cdk_out, result)
        finally:
            running.stop()


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A bare moto server with the adapters for the module (see tests/twin/moto_server.py)."""
    with running_moto_server(tmp_path_factory.mktemp("lambda")) as server:
        yield server


@pytest.fixture
def assembly(tmp_path: Path) -> Callable[[dict[str, dict[str, Any]]], Path]:
    """Write a minimal cloud assembly: stack name → template, in the order given, each stack
    depending on the ones before it when its template imports their exports."""

    def write(templates: dict[str, dict[str, Any]]) -> Path:
        out = tmp_path / f"assembly-{len(list(tmp_path.iterdir()))}"
        out.mkdir()
        artifacts: dict[str, Any] = {}
        for name, template in templates.items():
            (out / f"{name}.template.json").write_text(json.dumps(template))
            imports = "Fn::ImportValue" in json.dumps(template)
            artifacts[name] = {
                "type": "aws:cloudformation:stack",
                "properties": {"templateFile": f"{name}.template.json"},
                "dependencies": [other for other in artifacts] if imports else [],
            }
        (out / "manifest.json").write_text(
            json.dumps({"version": "55.0.0", "artifacts": artifacts})
        )
        return out

    return write
