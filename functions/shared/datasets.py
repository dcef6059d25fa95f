"""Accepted dataset versions in DynamoDB: pk=`dataset#<name>`, sk=`accepted#<time>#<version>`.

The sort key starts with the validation time, so a descending query lists versions newest
first; the version id in the key keeps two uploads within one second apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from functions.shared.registry import _Table, to_attributes

ACCEPTED = "accepted#"


def dataset_pk(dataset: str) -> str:
    return f"dataset#{dataset}"


class DatasetRegistry(_Table):
    def record_accepted(
        self, manifest: Mapping[str, Any], *, manifest_key: str, sha256: str
    ) -> None:
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
        self._call(
            "put_item",
            Item=to_attributes(item),
            ConditionExpression="attribute_not_exists(pk)",
        )

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
