"""AWS adapters of the monitoring functions: settings, metrics, captures, reports, loop state.

Loop state lives in the Runs table under its own item types, so no table is added:
  pk=monitor#<model>   sk=drift-check   `last_check_at` of the last drift check (debounces
                                        checks triggered by capture uploads)
  pk=retrain#<model>   sk=cooldown      `last_started_at` and a `retrains` counter (the
                                        cooldown between two retrains; the counter names runs)

Heavy imports (pandas, scikit-learn) happen inside the functions that need them, so the
notifier and the retrainer start fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from botocore.exceptions import ClientError

from functions.shared import storage
from functions.shared.clients import client
from functions.shared.datasets import DatasetRegistry
from functions.shared.endpoints import EndpointRegistry
from functions.shared.errors import error_code, transient_aws_errors
from functions.shared.registry import ModelRegistry, from_attributes, to_attributes
from pipelines.metric_names import NAMESPACE
from pipelines.monitoring import CaptureError, CaptureRecord, cooldown_cutoff, iso, parse_capture

READ_WORKERS = 16


# --------------------------------------------------------------------------- metrics


def publish_metrics(
    dimensions: Mapping[str, str], values: Mapping[str, tuple[float, MetricUnit]]
) -> None:
    """One EMF blob (a log line CloudWatch turns into metrics) in the Driftline namespace.

    Alarms match a metric by its exact dimension set ({Model} or {Model, Feature}). Powertools
    adds a `service` dimension from POWERTOOLS_SERVICE_NAME, which would put every datapoint
    into a metric no alarm watches, so the service dimension is switched off here (service="").
    Each blob has its own provider: one blob holds one value per dimension name, so every
    feature needs its own.
    """
    if not values:
        return
    provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service="")
    for name, value in dimensions.items():
        provider.add_dimension(name=name, value=value)
    for metric, (number, unit) in values.items():
        provider.add_metric(name=metric, unit=unit, value=number)
    provider.flush_metrics()


# --------------------------------------------------------------------------- registries


def _version_of(item: Mapping[str, Any]) -> int | None:
    value = item.get("model_version")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def deployed_version(endpoints_table: str, model: str) -> int | None:
    """The model version the endpoint serves, or None when nothing is deployed."""
    current = EndpointRegistry(client("dynamodb"), endpoints_table).current(model)
    return _version_of(current) if current is not None else None


def deployed_models(endpoints_table: str) -> list[str]:
    """Models whose endpoint serves a version, from the Endpoints table's `current` items."""
    items = EndpointRegistry(client("dynamodb"), endpoints_table).list_current()
    return sorted({str(item["model"]) for item in items if item.get("model") and _version_of(item)})


def model_version_record(models_table: str, model: str, version: int) -> dict[str, Any] | None:
    return ModelRegistry(client("dynamodb"), models_table).get_version(model, version)


def serving_version_record(
    models_table: str, endpoints_table: str, model: str
) -> dict[str, Any] | None:
    """The deployed version's registry record, else the champion's (nothing deployed yet)."""
    version = deployed_version(endpoints_table, model)
    registry = ModelRegistry(client("dynamodb"), models_table)
    if version is not None:
        return registry.get_version(model, version)
    return registry.latest_approved(model)


# --------------------------------------------------------------------------- captures


@dataclass(frozen=True)
class CaptureObject:
    key: str
    last_modified: datetime


def list_objects(
    bucket: str, prefixes: Iterable[str], *, modified_after: datetime | None = None
) -> list[CaptureObject]:
    """Objects under each prefix (paginated), optionally only those modified after a time."""
    s3 = client("s3")
    found: list[CaptureObject] = []
    for prefix in prefixes:
        arguments: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            with transient_aws_errors(f"listing s3://{bucket}/{prefix}"):
                page = s3.list_objects_v2(**arguments)
            for entry in page.get("Contents", []):
                modified = entry["LastModified"]
                if modified_after is None or modified >= modified_after:
                    found.append(CaptureObject(str(entry["Key"]), modified))
            if not page.get("IsTruncated"):
                break
            arguments["ContinuationToken"] = page["NextContinuationToken"]
    return found


@dataclass(frozen=True)
class CaptureBatch:
    records: list[CaptureRecord]
    files: int
    corrupt: dict[str, str]


def read_captures(bucket: str, keys: Sequence[str]) -> CaptureBatch:
    """Read capture objects in parallel; a corrupt one is skipped and reported, never raised."""

    def read(key: str) -> tuple[str, list[CaptureRecord] | None, str | None]:
        try:
            text = storage.get_bytes(bucket, key).decode("utf-8")
            return key, parse_capture(text, source=f"s3://{bucket}/{key}"), None
        except UnicodeDecodeError:
            return key, None, f"s3://{bucket}/{key}: not UTF-8 text"
        except CaptureError as error:
            return key, None, str(error)
        except storage.ObjectNotFound as error:  # expired between listing and reading
            return key, None, str(error)

    records: list[CaptureRecord] = []
    corrupt: dict[str, str] = {}
    if not keys:
        return CaptureBatch(records=[], files=0, corrupt={})
    with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(keys))) as pool:
        for key, parsed, problem in pool.map(read, keys):
            if parsed is None:
                corrupt[key] = problem or "unreadable"
            else:
                records.extend(parsed)
    return CaptureBatch(records=records, files=len(keys) - len(corrupt), corrupt=corrupt)


# --------------------------------------------------------------------------- loop state


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


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetVersion:
    dataset: str
    bucket: str
    key: str
    version_id: str
    validated_at: str


def latest_accepted_dataset(
    datasets_table: str, dataset: str, datasets_bucket: str
) -> DatasetVersion | None:
    """The newest accepted version of `dataset`, from the Datasets registry (validate's)."""
    item = DatasetRegistry(client("dynamodb"), datasets_table).latest(dataset)
    if item is None:
        return None
    return DatasetVersion(
        dataset=dataset,
        bucket=datasets_bucket,
        key=str(item["key"]),
        version_id=str(item["version_id"]),
        validated_at=str(item.get("validated_at", "")),
    )


# --------------------------------------------------------------------------- notifications


def notify(topic_arn: str, subject: str, message: str) -> str:
    """Publish to the alerts topic; SNS subjects are one line of at most 100 characters."""
    line = " ".join(subject.split())[:100]
    with transient_aws_errors(f"SNS publish to {topic_arn}"):
        response = client("sns").publish(TopicArn=topic_arn, Subject=line, Message=message)
    return str(response["MessageId"])


def error_text(error: ClientError) -> str:
    return f"{error_code(error)}: {error.response.get('Error', {}).get('Message', '')}"
