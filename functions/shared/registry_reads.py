"""What the monitoring functions read from the registries: what is deployed, which version
record it is, the newest accepted dataset version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.shared.clients import client
from functions.shared.datasets import DatasetRegistry
from functions.shared.endpoints import EndpointRegistry
from functions.shared.registry import ModelRegistry


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
