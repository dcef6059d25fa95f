"""The twin's fault hook: injected failures look like Lambda's and stop before the handler.

On the bare `moto_server` of tests/twin/conftest.py (one per module); small zip
functions count their own invocations, so a test can tell a fault from a handler that ran.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from driftline.twin.adapters import clear_faults, inject_faults, pending_faults
from tests.twin.moto_server import MotoServer

pytestmark = [pytest.mark.twin]

COUNTING_HANDLER = """
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    return {"calls": CALLS, "echo": event}
"""


def counting_function(server: MotoServer, module: str) -> str:
    """A counting function tagged like Driftline's (`DRIFTLINE_FUNCTION=<module>`)."""
    return server.zip_function(
        COUNTING_HANDLER,
        name=f"Pipeline-{module.title()}-{uuid.uuid4().hex[:8]}",
        Environment={"Variables": {"DRIFTLINE_FUNCTION": module}},
        Timeout=10,
    )


def invoke(
    server: MotoServer, name: str, event: dict[str, Any] | None = None
) -> tuple[str | None, Any]:
    """(the FunctionError header or None, the decoded payload)."""
    response = server.client("lambda").invoke(
        FunctionName=name, Payload=json.dumps(event or {}).encode()
    )
    return response.get("FunctionError"), json.loads(response["Payload"].read())


@pytest.fixture(autouse=True)
def no_leftover_faults() -> Iterator[None]:
    clear_faults()
    yield
    clear_faults()


def test_the_next_count_invocations_fail_like_lambda_before_the_handler_runs(
    moto_server: MotoServer,
) -> None:
    train = counting_function(moto_server, "train")
    inject_faults("train", count=2)

    failures = [invoke(moto_server, train), invoke(moto_server, train)]
    error, payload = invoke(moto_server, train, {"n": 3})

    for function_error, failure in failures:
        assert function_error == "Unhandled"
        assert failure["errorType"] == "TransientError"
        assert train in failure["errorMessage"] and "\n" not in failure["errorMessage"]
        assert failure["stackTrace"] == []
    assert error is None
    assert payload == {"calls": 1, "echo": {"n": 3}}  # the faults never reached the handler
    assert pending_faults() == 0


def test_faults_hit_only_matching_functions_by_module_name_or_glob(moto_server: MotoServer) -> None:
    train, evaluate = (
        counting_function(moto_server, "train"),
        counting_function(moto_server, "evaluate"),
    )
    inject_faults("Pipeline-Evaluate-*", error_type="Lambda.ServiceException", message="boom")

    untouched = invoke(moto_server, train)
    error, payload = invoke(moto_server, evaluate)

    assert untouched[0] is None and untouched[1]["calls"] == 1
    assert error == "Unhandled"
    assert payload["errorType"] == "Lambda.ServiceException" and payload["errorMessage"] == "boom"
    assert invoke(moto_server, evaluate)[1]["calls"] == 1
    inject_faults("evaluat", count=1)  # neither the module name nor a glob of the name
    assert invoke(moto_server, evaluate)[1]["calls"] == 2
    assert pending_faults() == 1


def test_cleared_faults_no_longer_fire(moto_server: MotoServer) -> None:
    gate = counting_function(moto_server, "gate")
    inject_faults("gate", count=5)

    clear_faults()

    assert pending_faults() == 0
    assert invoke(moto_server, gate) == (None, {"calls": 1, "echo": {}})


def test_a_state_machine_retries_an_injected_transient_error_and_succeeds(
    moto_server: MotoServer,
) -> None:
    train = counting_function(moto_server, "train")
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
    sfn = moto_server.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"sm-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn=moto_server.role(),
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
