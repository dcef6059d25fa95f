"""The twin's console: moto's ASL interpreter noise is dropped, real failures stay (short)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftline.twin.server import ASL_LOGGER, AslNoise

pytestmark = pytest.mark.unit

ROLE = "arn:aws:iam::123456789012:role/r"


def _run(definition: dict[str, Any], document: dict[str, Any]) -> str:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        stepfunctions = boto3.client("stepfunctions", region_name="us-east-1")
        machine = stepfunctions.create_state_machine(
            name="m", definition=json.dumps(definition), roleArn=ROLE
        )["stateMachineArn"]
        execution = stepfunctions.start_execution(
            stateMachineArn=machine, input=json.dumps(document)
        )["executionArn"]
        for _ in range(100):
            status = str(stepfunctions.describe_execution(executionArn=execution)["status"])
            if status != "RUNNING":
                return status
            time.sleep(0.05)
    raise AssertionError("execution did not end")


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """mock_aws answers any signed call, but boto3 still needs credentials to sign one."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")


@pytest.fixture
def asl_records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """What the twin's console would show from the interpreter, with the twin's filter on."""
    logger = logging.getLogger(ASL_LOGGER)
    noise = AslNoise()
    logger.addFilter(noise)
    caplog.set_level(logging.WARNING, logger=ASL_LOGGER)
    try:
        yield caplog
    finally:
        logger.removeFilter(noise)


def test_is_present_on_a_missing_field_and_a_designed_fail_state_print_nothing(
    asl_records: pytest.LogCaptureFixture,
) -> None:
    definition = {
        "StartAt": "Batch?",
        "States": {
            "Batch?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.prefix", "IsPresent": True, "Next": "Rejected"}],
                "Default": "Rejected",
            },
            "Rejected": {"Type": "Fail", "Error": "GateRejected", "Cause": "roc_auc too low"},
        },
    }

    assert _run(definition, {"key": "datasets/a/b.csv"}) == "FAILED"
    assert [record.getMessage() for record in asl_records.records] == []


def test_a_real_failure_is_still_printed_without_the_definition_dump(
    asl_records: pytest.LogCaptureFixture,
) -> None:
    definition = {
        "StartAt": "Shape",
        "States": {
            "Shape": {
                "Type": "Pass",
                "Parameters": {"dataset.$": "$.dataset", "padding": "x" * 500},
                "End": True,
            }
        },
    }

    assert _run(definition, {"key": "datasets/a/b.csv"}) == "FAILED"
    messages = [record.getMessage() for record in asl_records.records]
    assert any("FailureEventException" in message for message in messages), messages
    assert all(len(message) < 600 for message in messages), messages
