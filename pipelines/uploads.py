"""Which S3 uploads start a training run, and the run's deterministic name.

S3 → EventBridge delivers at least once, so a duplicate event must map to the same Step
Functions execution name; Step Functions then refuses the second start on its own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DATASETS_PREFIX = "datasets/"
SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_EXECUTION_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
EXECUTION_NAME_LIMIT = 80


@dataclass(frozen=True)
class DatasetUpload:
    bucket: str
    key: str
    version_id: str
    dataset: str
    size: int | None = None

    @property
    def execution_name(self) -> str:
        return execution_name(self.dataset, self.version_id)

    def to_input(self, *, trigger: str, requested_at: str) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "trigger": trigger,
            "requested_at": requested_at,
        }


@dataclass(frozen=True)
class IgnoredUpload:
    key: str
    reason: str


def parse_upload(event: Mapping[str, Any]) -> DatasetUpload | IgnoredUpload:
    """An EventBridge "Object Created" event from S3 → the dataset version it announces."""
    detail = event.get("detail") or {}
    bucket = str((detail.get("bucket") or {}).get("name", ""))
    obj = detail.get("object") or {}
    key = str(obj.get("key", ""))
    if not key.startswith(DATASETS_PREFIX):
        return IgnoredUpload(key, f"key outside {DATASETS_PREFIX}")
    parts = key.split("/")
    if ".." in parts or "" in parts[1:] or "\\" in key:
        return IgnoredUpload(key, "key contains '..', an empty segment or a backslash")
    if len(parts) < 3:
        return IgnoredUpload(key, "expected datasets/<dataset>/<file>")
    dataset = parts[1]
    if not _DATASET_NAME.match(dataset):
        return IgnoredUpload(key, f"dataset name {dataset!r} is not [A-Za-z0-9_.-], max 64 chars")
    if not key.lower().endswith(SUPPORTED_SUFFIXES):
        return IgnoredUpload(key, f"file type not one of {', '.join(SUPPORTED_SUFFIXES)}")
    version_id = obj.get("version-id")
    if not version_id:
        return IgnoredUpload(key, "event has no object version-id (is the bucket versioned?)")
    size = obj.get("size")
    return DatasetUpload(
        bucket=bucket,
        key=key,
        version_id=str(version_id),
        dataset=dataset,
        size=int(size) if isinstance(size, int) else None,
    )


def execution_name(dataset: str, version_id: str) -> str:
    """`<dataset>-<versionId>`, made safe for Step Functions; long names keep a hash suffix."""
    name = _EXECUTION_UNSAFE.sub("_", f"{dataset}-{version_id}")
    if len(name) <= EXECUTION_NAME_LIMIT:
        return name
    digest = hashlib.sha256(f"{dataset}\0{version_id}".encode()).hexdigest()[:16]
    return f"{name[: EXECUTION_NAME_LIMIT - len(digest) - 1]}-{digest}"
