"""Log groups under the data key, and a key policy that lets services use it only for us."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import SynthesizedEnv

pytestmark = pytest.mark.infra

PARTS = ("Data", "Pipeline", "Serving", "Monitoring")
DATA_KEY = "DataKey2A0DE9E6"


def key_statements(env: SynthesizedEnv) -> list[dict[str, Any]]:
    policy = env.resource("Data", DATA_KEY)["Properties"]["KeyPolicy"]
    statements: list[dict[str, Any]] = policy["Statement"]
    return statements


def text(value: Any) -> str:
    """A CloudFormation string (literal, Fn::Join, Ref) as text, a Ref as ${Name}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return "${" + str(value["Ref"]) + "}"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(text(part) for part in parts)
    return "${?}"


def service_of(statement: dict[str, Any]) -> str | None:
    principal = statement.get("Principal", {})
    service = principal.get("Service") if isinstance(principal, dict) else None
    return text(service) if service is not None else None


def is_logs(statement: dict[str, Any]) -> bool:
    service = service_of(statement) or ""
    return service.startswith("logs.") and service.endswith(".amazonaws.com")


def test_every_log_group_is_encrypted_with_the_data_key(each_env: SynthesizedEnv) -> None:
    groups = {
        (part, logical_id): properties
        for part in PARTS
        for logical_id, properties in each_env.properties(part, "AWS::Logs::LogGroup").items()
    }
    assert groups, "no log groups synthesized"
    for (part, logical_id), properties in groups.items():
        key = properties.get("KmsKeyId")
        assert key is not None, f"{part} {logical_id} has no KmsKeyId"
        assert "DataKey" in str(key), f"{part} {logical_id}: {key}"


def test_the_state_machine_execution_logs_are_encrypted(each_env: SynthesizedEnv) -> None:
    (_, group) = each_env.only("Pipeline", "AWS::Logs::LogGroup", "ExecutionLogs")
    assert "DataKey" in str(group["KmsKeyId"])


def test_cloudwatch_logs_may_use_the_key_for_this_accounts_log_groups_only(
    each_env: SynthesizedEnv,
) -> None:
    (logs,) = [s for s in key_statements(each_env) if is_logs(s)]
    assert {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"} <= set(logs["Action"])
    account = text(logs["Condition"]["StringEquals"]["aws:SourceAccount"])
    context = text(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
    assert context.startswith("arn:") and context.endswith(f":{account}:log-group:*"), context


def test_every_service_principal_statement_is_scoped_to_this_account(
    each_env: SynthesizedEnv,
) -> None:
    services = [s for s in key_statements(each_env) if service_of(s) is not None]
    assert {service_of(s) for s in services if not is_logs(s)} == {
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
    }
    for statement in services:
        conditions = statement.get("Condition", {})
        account = text(conditions.get("StringEquals", {}).get("aws:SourceAccount"))
        assert account in ("${AWS::AccountId}",) or account.isdigit(), statement
        if not is_logs(statement):  # logs: the encryption context names the log group
            source = text(conditions["ArnLike"]["aws:SourceArn"])
            assert f":{account}:" in source, statement
