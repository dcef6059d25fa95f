"""The training pipeline: state machine shape, upload trigger, function packaging."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from aws_cdk.assertions import Capture, Match

from infra.config import LOG_RETENTION_DAYS
from infra.constructs.log_retention import _BY_DAYS
from tests.infra.conftest import REPO, SynthesizedEnv

pytestmark = pytest.mark.infra


def test_pipeline_runs_the_steps_in_order(local: SynthesizedEnv) -> None:
    states = local.state_machine_definition()["States"]
    order = ["Prepare", "Train", "Evaluate", "Gate", "GatePassed?"]
    for current, following in itertools.pairwise(order):
        assert states[current]["Next"] == following
    assert states["GatePassed?"]["Choices"][0]["Next"] == "Register"
    assert states["Register"]["Next"] == "Deploy"
    assert states["Deploy"]["Next"] == "RecordSuccess"


def test_every_lambda_step_retries_transient_errors_and_catches_the_rest(
    local: SynthesizedEnv,
) -> None:
    states = local.state_machine_definition()["States"]
    for name in ("Validate", "Prepare", "Train", "Evaluate", "Gate", "Register"):
        retried = {error for rule in states[name]["Retry"] for error in rule["ErrorEquals"]}
        assert {"TransientError", "Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= (
            retried
        ), name
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}
        ]


def test_a_rejected_dataset_notifies_then_fails_with_dataset_rejected(
    local: SynthesizedEnv,
) -> None:
    states = local.state_machine_definition()["States"]
    choices = {c["StringEquals"]: c["Next"] for c in states["DatasetAccepted?"]["Choices"]}
    assert choices == {"ignored": "Ignored", "rejected": "NotifyRejection"}
    assert states["NotifyRejection"]["Resource"].endswith(":states:::sns:publish")
    assert states["NotifyRejection"]["Next"] == "DatasetRejected"
    assert states["DatasetRejected"] == {
        "Type": "Fail",
        "Error": "DatasetRejected",
        "CausePath": "$.validation.cause",
    }


def test_failures_are_recorded_notified_and_end_failed(local: SynthesizedEnv) -> None:
    states = local.state_machine_definition()["States"]
    assert states["RecordFailure"]["Next"] == "NotifyFailure"
    assert states["NotifyFailure"]["Next"] == "PipelineFailed"
    assert states["PipelineFailed"]["Error"] == "PipelineFailed"
    assert states["GateRejected"]["Error"] == "GateRejected"


def test_uploads_under_datasets_trigger_the_run_starter_with_a_dead_letter_queue(
    local: SynthesizedEnv,
) -> None:
    template = local.template("Pipeline")
    template.resource_count_is("AWS::Events::Rule", 1)
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.object_like(
                {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": Match.object_like({"object": {"key": [{"prefix": "datasets/"}]}}),
                }
            ),
            "Targets": [
                Match.object_like(
                    {
                        "DeadLetterConfig": Match.any_value(),
                        "RetryPolicy": Match.object_like({"MaximumRetryAttempts": 4}),
                    }
                )
            ],
        },
    )


def test_state_machine_traces_and_logs_everything(local: SynthesizedEnv) -> None:
    logging = Capture()
    local.template("Pipeline").has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {"TracingConfiguration": {"Enabled": True}, "LoggingConfiguration": logging},
    )
    assert logging.as_object()["Level"] == "ALL"


def test_functions_run_from_the_shared_image_with_their_own_command(local: SynthesizedEnv) -> None:
    functions = local.resources("Pipeline", "AWS::Lambda::Function")
    commands = {fn["Properties"]["ImageConfig"]["Command"][0] for fn in functions.values()}
    assert commands == {
        f"functions.{name}.handler.handler"
        for name in (
            "start_run",
            "validate",
            "list_parts",
            "validate_part",
            "merge_parts",
            "prepare",
            "train",
            "evaluate",
            "gate",
            "register",
            "record_outcome",
        )
    }
    for fn in functions.values():
        assert fn["Properties"]["PackageType"] == "Image"
        assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}


def test_every_handler_the_template_names_exists(local: SynthesizedEnv) -> None:
    functions = local.resources("Pipeline", "AWS::Lambda::Function").values()
    for fn in functions:
        module, _, attribute = fn["Properties"]["ImageConfig"]["Command"][0].rpartition(".")
        path = REPO / Path(*module.split(".")).with_suffix(".py")
        assert path.is_file(), path
        assert f"def {attribute}(" in path.read_text(), path


def test_function_roles_use_no_aws_managed_policies(local: SynthesizedEnv) -> None:
    for role in local.resources("Pipeline", "AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


def test_log_groups_keep_logs_for_the_configured_retention(
    synth_env: Callable[[str], SynthesizedEnv],
) -> None:
    for env_name, days in (("local", 7), ("prod", 365)):
        groups = synth_env(env_name).resources("Pipeline", "AWS::Logs::LogGroup").values()
        assert {group["Properties"]["RetentionInDays"] for group in groups} == {days}


def test_retention_mapping_covers_every_value_config_accepts() -> None:
    assert set(_BY_DAYS) == set(LOG_RETENTION_DAYS)


def pins(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line.strip())
        if match:
            found[re.sub(r"\[.*\]", "", match.group(1)).lower()] = match.group(2)
    return found


def test_function_image_pins_match_the_project_pins() -> None:
    image, project = pins(REPO / "functions" / "requirements.txt"), pins(REPO / "requirements.txt")
    assert image, "functions/requirements.txt pins nothing"
    assert {name: project.get(name) for name in image} == image


def test_validators_have_room_in_tmp_for_the_largest_parquet_they_accept(
    local: SynthesizedEnv,
) -> None:
    """Parquet is spooled to /tmp (512 MB unless set): Validate/ValidatePart get 10,240 MB,
    and the validator's own limit rejects a Parquet object before it could fill that."""
    from infra.constructs.training_pipeline import VALIDATOR_EPHEMERAL_STORAGE_MB
    from pipelines.validation import Limits

    storage = {
        fn["Properties"]["ImageConfig"]["Command"][0].split(".")[1]: fn["Properties"].get(
            "EphemeralStorage"
        )
        for fn in local.resources("Pipeline", "AWS::Lambda::Function").values()
    }
    assert storage["validate"] == {"Size": VALIDATOR_EPHEMERAL_STORAGE_MB} == {"Size": 10_240}
    assert storage["validate_part"] == {"Size": 10_240}
    assert storage["prepare"] is None  # only where a step needs it
    assert Limits().max_parquet_bytes < VALIDATOR_EPHEMERAL_STORAGE_MB << 20
