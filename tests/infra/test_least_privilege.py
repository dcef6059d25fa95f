"""S3 access of every role, in every env: no deletes anywhere, writes only on key prefixes, and
each function may write exactly the keys its code writes (built with the real key helpers).
"""

from __future__ import annotations

import fnmatch
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pipelines.keys import (
    CARD,
    CONFIG,
    DATASET,
    METRICS,
    MODEL,
    PLOT,
    REGISTERED,
    baseline_description_key,
    baseline_key,
    bundle_key,
    capture_key,
    drift_report_keys,
    feedback_report_key,
    latest_report_key,
    manifest_key,
    model_artifact,
    part_report_key,
    parts_list_key,
    pinned_contract_key,
    report_key,
    run_artifact,
)
from tests.infra.conftest import SynthesizedEnv

pytestmark = pytest.mark.infra

STACKS = ("Data", "Pipeline", "Serving", "Monitoring")
ARTIFACTS = "ARTIFACTS"
NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
D, V, RUN, M = "iris", "3HL4kqtJlcpXroDTDmJ", "iris-3HL4kqtJlcpXroDTDmJ", "iris"

# What each handler writes to the artifacts bucket, as its code builds the keys.
WRITES: dict[str, list[str]] = {
    "validate": [manifest_key(D, V), report_key(D, V)],
    "list_parts": [pinned_contract_key(D, V), parts_list_key(D, V), report_key(D, V)],
    "validate_part": [part_report_key(D, V, 17)],
    "merge_parts": [manifest_key(D, V), report_key(D, V)],
    "prepare": [run_artifact(RUN, DATASET), run_artifact(RUN, CONFIG)],
    "train": [run_artifact(RUN, name) for name in (MODEL, METRICS, PLOT)],
    "collect_training": [run_artifact(RUN, MODEL)],
    "evaluate": [run_artifact(RUN, METRICS), run_artifact(RUN, PLOT)],
    "gate": [run_artifact(RUN, CARD), run_artifact(RUN, METRICS)],
    "register": [model_artifact(M, 3, name) for name in REGISTERED],
    "record_outcome": [],
    "drift_monitor": [
        *drift_report_keys(M, NOW),
        latest_report_key(M),
        baseline_key(M, 3),
        baseline_description_key(M, 3),
    ],
    "drift_notifier": [],
    "feedback": [feedback_report_key(M, NOW)],
    "retrain": [],
    "start_run": [],
    "deploy": [bundle_key(M, 3, "ab" * 32)],
}


def text(value: Any) -> str:
    """A CloudFormation string with the artifacts bucket as ARTIFACTS, other tokens as <...>."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(text(part) for part in value["Fn::Join"][1])
    serialized = json.dumps(value)
    if "ArtifactsBucket" in serialized:
        return ARTIFACTS
    return f"<{serialized}>"


def bucket_arns(value: Any) -> str:
    """Both spellings of a bucket ARN (GetAtt Arn, or arn:...:s3::: + Ref) as the bucket."""
    return (
        text(value)
        .replace(f"arn:<AWS::Partition>:s3:::{ARTIFACTS}", ARTIFACTS)
        .replace("arn:" + text({"Ref": "AWS::Partition"}) + f":s3:::{ARTIFACTS}", ARTIFACTS)
    )


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = policy["PolicyDocument"]["Statement"]
    return found


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def object_writes(policy: dict[str, Any]) -> list[str]:
    """Resources of the policy's statements that allow writing objects."""
    return [
        bucket_arns(resource)
        for statement in statements(policy)
        if statement["Effect"] == "Allow"
        and any(fnmatch.fnmatch(action, "s3:PutObject*") for action in listed(statement["Action"]))
        for resource in listed(statement["Resource"])
    ]


def function_writes(env: SynthesizedEnv) -> dict[str, list[str]]:
    """Handler module → the artifacts-bucket key globs its role may write."""
    found: dict[str, list[str]] = {}
    for part in ("Pipeline", "Serving", "Monitoring"):
        policies = env.properties(part, "AWS::IAM::Policy").values()
        for function in env.properties(part, "AWS::Lambda::Function").values():
            command = (function.get("ImageConfig") or {}).get("Command") or [""]
            module = command[0].removeprefix("functions.").removesuffix(".handler.handler")
            role = function["Role"]["Fn::GetAtt"][0]
            globs = [
                resource.removeprefix(f"{ARTIFACTS}/")
                for policy in policies
                if {"Ref": role} in policy.get("Roles", [])
                for resource in object_writes(policy)
                if resource.startswith(f"{ARTIFACTS}/")
            ]
            found.setdefault(module, []).extend(globs)
    return found


def test_no_role_may_delete_anything(each_env: SynthesizedEnv) -> None:
    for part in STACKS:
        for name, policy in each_env.properties(part, "AWS::IAM::Policy").items():
            for statement in statements(policy):
                for action in listed(statement["Action"]):
                    assert not fnmatch.fnmatch(action, "s3:Delete*"), (part, name, action)
                    assert action not in ("s3:*", "*"), (part, name, action)


def test_object_writes_are_granted_on_key_prefixes_never_a_whole_bucket(
    each_env: SynthesizedEnv,
) -> None:
    for part in STACKS:
        for name, policy in each_env.properties(part, "AWS::IAM::Policy").items():
            for resource in object_writes(policy):
                _, _, key = resource.partition("/")
                first = key.split("/", 1)[0]
                assert first and "*" not in first, (part, name, resource)


def test_each_function_may_write_exactly_the_keys_its_code_writes(
    each_env: SynthesizedEnv,
) -> None:
    writes = function_writes(each_env)
    assert {"validate", "train", "register", "drift_monitor", "inference", "deploy"} <= set(writes)
    for module, globs in writes.items():
        if module == "inference":
            continue  # per endpoint; below
        expected = WRITES[module]
        for key in expected:
            assert any(fnmatch.fnmatch(key, glob) for glob in globs), (module, key, globs)
        for glob in globs:  # and no glob the code does not need
            assert any(fnmatch.fnmatch(key, glob) for key in expected), (module, glob)


def test_only_register_writes_registered_models_and_only_validation_writes_manifests(
    each_env: SynthesizedEnv,
) -> None:
    writes = function_writes(each_env)

    def writers(key: str) -> set[str]:
        return {m for m, globs in writes.items() if any(fnmatch.fnmatch(key, g) for g in globs)}

    assert writers(model_artifact(M, 3, MODEL)) == {"register"}
    assert writers(manifest_key(D, V)) == {"validate", "merge_parts"}
    assert writers(capture_key("breast_cancer", NOW, "req")) == {"inference"}
    assert writers(run_artifact(RUN, MODEL)) <= {"train", "collect_training"}


def test_the_state_machine_reads_part_lists_and_writes_only_its_map_results(
    each_env: SynthesizedEnv,
) -> None:
    (role,) = [
        name
        for name in each_env.properties("Pipeline", "AWS::IAM::Role")
        if "StateMachineRole" in name
    ]
    policies = [
        policy
        for policy in each_env.properties("Pipeline", "AWS::IAM::Policy").values()
        if {"Ref": role} in policy.get("Roles", [])
    ]
    s3_resources = {
        bucket_arns(resource)
        for policy in policies
        for statement in statements(policy)
        if any(str(action).startswith("s3:") for action in listed(statement["Action"]))
        for resource in listed(statement["Resource"])
    }
    assert s3_resources == {f"{ARTIFACTS}/part-results/*", f"{ARTIFACTS}/datasets/*/parts.json"}
    assert fnmatch.fnmatch(parts_list_key(D, V), "datasets/*/parts.json")


def test_evaluate_may_read_the_endpoints_table_where_the_champion_is(
    each_env: SynthesizedEnv,
) -> None:
    policies = each_env.properties("Pipeline", "AWS::IAM::Policy")
    (evaluate,) = [p for name, p in policies.items() if "FunctionsEvaluateRole" in name]
    tables = {
        json.dumps(resource)
        for statement in statements(evaluate)
        if "dynamodb:GetItem" in listed(statement["Action"])
        for resource in listed(statement["Resource"])
    }
    assert any("EndpointsTable" in table for table in tables), tables
