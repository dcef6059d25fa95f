"""Drive the Driftline loop from the outside, as a user would: upload, then watch the run.

Used by `driftline demo` and the end-to-end tests, against AWS or the twin alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftline.aws import client
from driftline.errors import UsageError
from driftline.executions import history
from pipelines.keys import upload_key
from pipelines.uploads import execution_name

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


@dataclass(frozen=True)
class Upload:
    bucket: str
    key: str
    version_id: str
    dataset: str

    @property
    def execution_name(self) -> str:
        return execution_name(self.dataset, self.version_id)


def upload_dataset(
    bucket: str, dataset: str, path: Path, *, file_name: str | None = None
) -> Upload:
    """Put a local file at `datasets/<dataset>/<file>`; the returned VersionId names the run."""
    if not path.is_file():
        raise UsageError(f"dataset file {path} does not exist")
    key = upload_key(dataset, file_name or path.name)
    response = client("s3").put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    return Upload(bucket=bucket, key=key, version_id=response["VersionId"], dataset=dataset)


def upload_text(bucket: str, key: str, text: str) -> str:
    response = client("s3").put_object(Bucket=bucket, Key=key, Body=text.encode())
    return str(response["VersionId"])


def execution_arn(state_machine_arn: str, name: str) -> str:
    """Execution ARNs are the state machine ARN with `stateMachine` → `execution` plus the name."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"


def wait_for_execution(
    state_machine_arn: str,
    name: str,
    *,
    timeout: float = 180.0,
    poll: float = 0.25,
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Wait for the execution to exist and finish; returns `describe_execution`."""
    stepfunctions = client("stepfunctions")
    arn = execution_arn(state_machine_arn, name)
    deadline = time.monotonic() + timeout
    status = "NOT_STARTED"
    while time.monotonic() < deadline:
        try:
            description: dict[str, Any] = stepfunctions.describe_execution(executionArn=arn)
        except stepfunctions.exceptions.ExecutionDoesNotExist:
            description = {"status": "NOT_STARTED"}
        if description["status"] != status and on_wait is not None:
            on_wait(description["status"])
        status = description["status"]
        if status in TERMINAL_STATUSES:
            return description
        time.sleep(poll)
    raise UsageError(f"execution {name} did not finish within {timeout:.0f} s (last: {status})")


@dataclass(frozen=True)
class StepResult:
    state: str
    entered: float
    exited: float | None
    output: dict[str, Any] | None

    @property
    def seconds(self) -> float | None:
        return None if self.exited is None else self.exited - self.entered


def step_results(state_machine_arn: str, name: str) -> list[StepResult]:
    """Each state the execution passed through, in order, with its output."""
    stepfunctions = client("stepfunctions")
    arn = execution_arn(state_machine_arn, name)
    events = history(stepfunctions, arn)
    entered: dict[str, float] = {}
    results: list[StepResult] = []
    for event in events:
        stamp = event["timestamp"].timestamp()
        if "stateEnteredEventDetails" in event:
            entered[event["stateEnteredEventDetails"]["name"]] = stamp
        elif "stateExitedEventDetails" in event:
            details = event["stateExitedEventDetails"]
            output = json.loads(details.get("output") or "null")
            results.append(
                StepResult(
                    state=details["name"],
                    entered=entered.get(details["name"], stamp),
                    exited=stamp,
                    output=output if isinstance(output, dict) else None,
                )
            )
    return results
