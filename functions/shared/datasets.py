"""Accepted dataset versions in DynamoDB: pk=`dataset#<name>`, sk=`accepted#<time>#<version>`.

The sort key starts with the validation time, so a descending query lists versions newest
first; the version id in the key keeps two uploads within one second apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from functions.shared import storage
from functions.shared.registry import _Table, to_attributes
from pipelines.contracts import Contract, check_schema_evolution
from pipelines.manifests import manifest_sha256

ACCEPTED = "accepted#"


def dataset_pk(dataset: str) -> str:
    return f"dataset#{dataset}"


class DatasetRegistry(_Table):
    def record_accepted(
        self, manifest: Mapping[str, Any], *, manifest_key: str, sha256: str
    ) -> bool:
        """Add the version's item; False when it is already there (never overwrites)."""
        item = {
            "pk": dataset_pk(manifest["dataset"]),
            "sk": f"{ACCEPTED}{manifest['validated_at']}#{manifest['version_id']}",
            "dataset": manifest["dataset"],
            "version_id": manifest["version_id"],
            "key": manifest["key"],
            "rows": manifest["rows"],
            "size": manifest["size"],
            "sha256": manifest["sha256"],
            "columns": dict(manifest["columns"]),
            "contract_hash": manifest["contract_hash"],
            "validated_at": manifest["validated_at"],
            "manifest_key": manifest_key,
            "manifest_sha256": sha256,
        }
        return self._put_new(item)

    def versions(self, dataset: str, *, limit: int | None = None) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :accepted)",
            "ExpressionAttributeValues": to_attributes(
                {":pk": dataset_pk(dataset), ":accepted": ACCEPTED}
            ),
            "ScanIndexForward": False,
        }
        if limit is not None:
            arguments["Limit"] = limit
        for yielded, item in enumerate(self._query(**arguments), start=1):
            yield item
            if limit is not None and yielded >= limit:
                return

    def latest(self, dataset: str) -> dict[str, Any] | None:
        return next(self.versions(dataset, limit=1), None)

    def datasets(self) -> list[str]:
        names = {
            str(item["dataset"])
            for item in self._scan(ProjectionExpression="dataset")
            if "dataset" in item
        }
        return sorted(names)


def store_manifest_once(
    registry: DatasetRegistry, bucket: str, key: str, manifest: Mapping[str, Any]
) -> tuple[dict[str, Any], str]:
    """Write an accepted version's manifest and table item unless they exist; (manifest, sha).

    A retried step, or one that stopped between the two writes, ends with exactly one manifest
    and one item: the first manifest written stays the version's record, and the item is
    derived from it (same `validated_at`, so the same sort key).
    """
    existing = storage.get_text_if_exists(bucket, key)
    if existing is None:
        stored = dict(manifest)
        storage.put_json(bucket, key, stored)
    else:
        stored = json.loads(existing[0])
    sha256 = manifest_sha256(stored)
    registry.record_accepted(stored, manifest_key=key, sha256=sha256)
    return stored, sha256


def evolution_violations(
    registry: DatasetRegistry, dataset: str, contract: Contract
) -> list[dict[str, Any]]:
    """The contract's breaks with the latest accepted version's columns (none for a first)."""
    previous = registry.latest(dataset)
    if previous is None:
        return []
    return [
        violation.to_dict()
        for violation in check_schema_evolution(previous["columns"], contract, contract.evolution)
    ]


def accepted_result(
    manifest: Mapping[str, Any],
    *,
    dataset: str,
    version_id: str,
    key: str,
    manifest_key: str,
    sha256: str,
) -> dict[str, Any]:
    """What a validating step hands the pipeline for an accepted version, single file or batch."""
    return {
        "status": "accepted",
        "dataset": dataset,
        "version_id": version_id,
        "key": key,
        "manifest_key": manifest_key,
        "manifest_sha256": sha256,
        "columns": manifest["columns"],
        "rows": manifest["rows"],
        "contract_hash": manifest["contract_hash"],
        "format": manifest["format"],
        "warnings": manifest["warnings"],
    }
