"""Multi-part datasets in the training state machine: a Distributed Map, bounded, then a merge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.constructs.training_pipeline import PART_CONCURRENCY
from tests.infra.conftest import SynthesizedEnv

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def states(local: SynthesizedEnv) -> dict[str, Any]:
    found: dict[str, Any] = local.state_machine_definition()["States"]
    return found


def test_a_batch_marker_or_batch_prefix_takes_the_multipart_path_a_file_the_validate_step(
    states: dict[str, Any],
) -> None:
    choice = states["MultiPart?"]
    # The key alone decides (a marker or a batch prefix is one level below datasets/<D>/), so
    # the Choice never reads a field an input may lack.
    assert choice["Choices"] == [
        {"Variable": "$.key", "StringMatches": "datasets/*/*/*", "Next": "ListParts"}
    ]
    assert choice["Default"] == "Validate"
    assert states["Validate"]["Next"] == states["MergeParts"]["Next"] == "DatasetAccepted?"


def test_parts_are_validated_by_a_distributed_map_with_bounded_concurrency(
    states: dict[str, Any],
) -> None:
    parts = states["ValidateParts"]
    assert parts["Type"] == "Map"
    assert parts["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    assert parts["MaxConcurrency"] == PART_CONCURRENCY
    assert 1 <= PART_CONCURRENCY <= 100
    assert parts["ItemReader"]["Resource"].endswith(":states:::s3:getObject")
    assert parts["ItemReader"]["ReaderConfig"] == {"InputType": "JSON"}
    assert parts["ItemReader"]["Parameters"]["Key.$"] == "$.validation.parts_key"
    assert parts["ItemSelector"]["part.$"] == "$$.Map.Item.Value"
    assert parts["ResultWriter"]["Resource"].endswith(":states:::s3:putObject")
    assert parts["ResultPath"] is None
    assert parts["Next"] == "MergeParts"
    assert parts["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}
    ]


def test_each_part_step_retries_transient_errors(states: dict[str, Any]) -> None:
    processor = states["ValidateParts"]["ItemProcessor"]
    assert processor["StartAt"] == "ValidatePart"
    part = processor["States"]["ValidatePart"]
    retried = {error for rule in part["Retry"] for error in rule["ErrorEquals"]}
    assert {"TransientError", "Lambda.TooManyRequestsException"} <= retried
    assert part["End"] is True


def test_a_batch_rejected_while_listing_is_notified_like_any_rejection(
    states: dict[str, Any],
) -> None:
    listed = states["PartsListed?"]
    choices = {choice["StringEquals"]: choice["Next"] for choice in listed["Choices"]}
    assert choices == {"ignored": "Ignored", "rejected": "NotifyRejection"}
    assert listed["Default"] == "ValidateParts"
    for name in ("ListParts", "MergeParts"):
        assert states[name]["ResultPath"] == "$.validation"
        assert states[name]["Catch"][0]["Next"] == "RecordFailure"


def test_the_state_machine_may_read_the_part_list_through_the_data_key(
    local: SynthesizedEnv,
) -> None:
    policies = local.resources("Pipeline", "AWS::IAM::Policy")
    (role_policy,) = [
        policy
        for name, policy in policies.items()
        if name.startswith("TrainingStateMachineRoleDefaultPolicy")
    ]
    statements = role_policy["Properties"]["PolicyDocument"]["Statement"]
    actions = {
        action
        for statement in statements
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert {"s3:GetObject", "s3:PutObject", "kms:Decrypt", "kms:GenerateDataKey*"} <= actions


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_the_batch_steps_may_tag_dataset_objects_but_never_delete_them(
    local: SynthesizedEnv,
) -> None:
    policies = local.resources("Pipeline", "AWS::IAM::Policy")
    for step in ("ListParts", "MergeParts"):
        (policy,) = [p for name, p in policies.items() if f"Functions{step}" in name]
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        tagging = [s for s in statements if "s3:PutObjectVersionTagging" in _actions(s)]
        assert tagging and "DatasetsBucket" in json.dumps(tagging[0]["Resource"]), step
        assert "/datasets/*" in json.dumps(tagging[0]["Resource"]), step
        for statement in statements:
            if any(action.startswith("s3:Delete") for action in _actions(statement)):
                assert "DatasetsBucket" not in json.dumps(statement["Resource"]), step


def _string_matches(pattern: str, value: str) -> bool:
    """Step Functions' StringMatches: `*` is any run of characters, everything else literal."""
    import re

    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), value) is not None


@pytest.mark.parametrize(
    ("key", "batch"),
    [
        ("datasets/wdbc/data.csv", False),
        ("datasets/wdbc/data.csv.gz", False),
        ("datasets/wdbc/2026-12-01/_COMPLETE", True),
        ("datasets/wdbc/2026-12-01/_SUCCESS", True),
        ("datasets/wdbc/2026-12-01/", True),  # a retrain or rerun of an accepted batch
    ],
)
def test_the_multipart_choice_routes_every_start_input_by_its_key(
    states: dict[str, Any], key: str, batch: bool
) -> None:
    from pipelines.uploads import DatasetUpload, parse_upload

    (rule,) = states["MultiPart?"]["Choices"]
    if not key.endswith("/"):  # what StartRun sends for this upload: prefix set iff a batch
        event = {"detail": {"bucket": {"name": "b"}, "object": {"key": key, "version-id": "v"}}}
        upload = parse_upload(event)
        assert isinstance(upload, DatasetUpload)
        document = upload.to_input(trigger="upload", requested_at="2026-12-04T00:00:00Z")
        assert ("prefix" in document) is batch
    assert _string_matches(rule["StringMatches"], key) is batch
