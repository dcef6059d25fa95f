"""The monitoring loop's state, kept in the Runs table under its own item types (no table added):

  pk=monitor#<model>   sk=drift-check   `last_check_at` of the last drift check (debounces
                                        checks triggered by capture uploads)
  pk=retrain#<model>   sk=cooldown      `last_started_at` and a `retrains` counter (the
                                        cooldown between two retrains; the counter names runs)

Both are claimed with conditional writes, so concurrent invocations agree on who goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from functions.shared.clients import client
from functions.shared.errors import error_code, transient_aws_errors
from functions.shared.registry import from_attributes, to_attributes
from pipelines.monitoring import cooldown_cutoff, iso


def _claim(
    table: str,
    key: Mapping[str, str],
    *,
    attribute: str,
    now: str,
    cutoff: str,
    extra: Mapping[str, Any] | None = None,
    count: str | None = None,
) -> dict[str, Any] | None:
    """Set `attribute` to `now` unless it is newer than `cutoff`; the old item, None if refused."""
    names = {"#at": attribute}
    values: dict[str, Any] = {":now": now, ":cutoff": cutoff}
    clauses = ["#at = :now"]
    for index, (name, value) in enumerate((extra or {}).items()):
        names[f"#x{index}"] = name
        values[f":x{index}"] = value
        clauses.append(f"#x{index} = :x{index}")
    expression = f"SET {', '.join(clauses)}"
    if count is not None:
        names["#count"] = count
        values[":one"] = 1
        expression += " ADD #count :one"
    try:
        with transient_aws_errors(f"DynamoDB update_item on {table}"):
            response = client("dynamodb").update_item(
                TableName=table,
                Key=to_attributes(key),
                UpdateExpression=expression,
                ConditionExpression="attribute_not_exists(#at) OR #at <= :cutoff",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_attributes(values),
                ReturnValues="ALL_OLD",
            )
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return None
        raise
    return from_attributes(response.get("Attributes", {}))


def check_key(model: str) -> dict[str, str]:
    return {"pk": f"monitor#{model}", "sk": "drift-check"}


def claim_drift_check(runs_table: str, model: str, now: datetime, min_interval_s: int) -> bool:
    """True when no drift check of `model` started within the last `min_interval_s` seconds."""
    claimed = _claim(
        runs_table,
        check_key(model),
        attribute="last_check_at",
        now=iso(now),
        cutoff=cooldown_cutoff(now, min_interval_s / 3600),
        extra={"model": model},
    )
    return claimed is not None


def record_drift_check(runs_table: str, model: str, now: datetime) -> None:
    """A scheduled check always runs; it still moves the debounce mark forward."""
    with transient_aws_errors(f"DynamoDB update_item on {runs_table}"):
        client("dynamodb").update_item(
            TableName=runs_table,
            Key=to_attributes(check_key(model)),
            UpdateExpression="SET last_check_at = :now, model = :model",
            ExpressionAttributeValues=to_attributes({":now": iso(now), ":model": model}),
        )


def cooldown_key(model: str) -> dict[str, str]:
    return {"pk": f"retrain#{model}", "sk": "cooldown"}


@dataclass(frozen=True)
class RetrainClaim:
    number: int
    previous_started_at: str | None
    started_at: str


def claim_retrain(
    runs_table: str, model: str, now: datetime, cooldown_hours: float, cause: str
) -> RetrainClaim | None:
    """Take the model's retrain slot (conditional write), or None while the cooldown lasts."""
    started_at = iso(now)
    old = _claim(
        runs_table,
        cooldown_key(model),
        attribute="last_started_at",
        now=started_at,
        cutoff=cooldown_cutoff(now, cooldown_hours),
        extra={"model": model, "last_cause": cause},
        count="retrains",
    )
    if old is None:
        return None
    previous = old.get("last_started_at")
    return RetrainClaim(
        number=int(old.get("retrains", 0)) + 1,
        previous_started_at=str(previous) if previous else None,
        started_at=started_at,
    )


def release_retrain(runs_table: str, model: str, claim: RetrainClaim) -> None:
    """Give the slot back after a failed start, unless another retrain took it meanwhile."""
    names = {"#at": "last_started_at"}
    values: dict[str, Any] = {":ours": claim.started_at}
    if claim.previous_started_at is None:
        expression = "REMOVE #at"
    else:
        expression = "SET #at = :previous"
        values[":previous"] = claim.previous_started_at
    try:
        with transient_aws_errors(f"DynamoDB update_item on {runs_table}"):
            client("dynamodb").update_item(
                TableName=runs_table,
                Key=to_attributes(cooldown_key(model)),
                UpdateExpression=expression,
                ConditionExpression="#at = :ours",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_attributes(values),
            )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise


def last_retrain_started(runs_table: str, model: str) -> str | None:
    with transient_aws_errors(f"DynamoDB get_item on {runs_table}"):
        item = client("dynamodb").get_item(
            TableName=runs_table, Key=to_attributes(cooldown_key(model)), ConsistentRead=True
        )
    if "Item" not in item:
        return None
    value = from_attributes(item["Item"]).get("last_started_at")
    return str(value) if value else None
