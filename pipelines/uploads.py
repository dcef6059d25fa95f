"""Which S3 uploads start a training run, and the run's deterministic name.

S3 → EventBridge delivers at least once, so a duplicate event must map to the same Step
Functions execution name; Step Functions then refuses the second start on its own.

Two upload shapes start a run (see docs/datasets.md):
- one file, `datasets/<dataset>/<file>.csv|.csv.gz|.parquet`: that object version is the
  dataset version;
- a multi-part batch, `datasets/<dataset>/<batch>/<parts...>` followed by a marker object
  `datasets/<dataset>/<batch>/_COMPLETE` (or Spark's `_SUCCESS`): the marker starts one run
  over every part under the batch prefix, and the marker's VersionId names the version. The
  parts themselves start nothing, since a batch is complete only when its writer says so.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.keys import DATASETS_PREFIX, batch_prefix

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_EXECUTION_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
EXECUTION_NAME_LIMIT = 80
BATCH_MARKERS = ("_COMPLETE", "_SUCCESS")


@dataclass(frozen=True)
class DatasetUpload:
    bucket: str
    key: str
    version_id: str
    dataset: str
    size: int | None = None
    prefix: str | None = None  # the batch prefix when `key` is a batch's marker

    @property
    def execution_name(self) -> str:
        return execution_name(self.dataset, self.version_id)

    def to_input(self, *, trigger: str, requested_at: str) -> dict[str, Any]:
        document: dict[str, Any] = {
            "dataset": self.dataset,
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "trigger": trigger,
            "requested_at": requested_at,
        }
        if self.prefix is not None:
            document["prefix"] = self.prefix
        if self.size is not None:  # Validate rejects an object too large for it before reading
            document["size"] = self.size
        return document


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
    prefix: str | None = None
    if len(parts) == 4 and parts[3] in BATCH_MARKERS:
        if not _DATASET_NAME.match(parts[2]):
            return IgnoredUpload(
                key, f"batch name {parts[2]!r} is not [A-Za-z0-9_.-], max 64 chars"
            )
        prefix = batch_prefix(dataset, parts[2])
    elif len(parts) > 3:
        return IgnoredUpload(
            key,
            f"part of batch {batch_prefix(dataset, parts[2])}: validated when its "
            f"{BATCH_MARKERS[0]} marker is uploaded",
        )
    elif not key.lower().endswith(SUPPORTED_SUFFIXES):
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
        prefix=prefix,
    )


def is_name(text: str) -> bool:
    """A dataset or batch name the starter accepts: `[A-Za-z0-9_.-]`, at most 64 characters."""
    return bool(_DATASET_NAME.match(text))


def execution_name(dataset: str, version_id: str) -> str:
    """`<dataset>-<versionId>`, made safe for Step Functions; long names keep a hash suffix."""
    name = _EXECUTION_UNSAFE.sub("_", f"{dataset}-{version_id}")
    if len(name) <= EXECUTION_NAME_LIMIT:
        return name
    digest = hashlib.sha256(f"{dataset}\0{version_id}".encode()).hexdigest()[:16]
    return f"{name[: EXECUTION_NAME_LIMIT - len(digest) - 1]}-{digest}"


def later_execution_name(dataset: str, version_id: str, kind: str, number: int) -> str:
    """`<dataset>-<versionId>-<kind>-<n>`: a later run on the same version (`rerun`, `retrain`),
    at most 80 characters.

    The suffix keeps it from colliding with the upload's own run and with earlier runs of
    either kind; a long base keeps a hash of the full name, as above.
    """
    suffix = f"-{kind}-{number}"
    base = execution_name(dataset, version_id)
    if len(base) + len(suffix) <= EXECUTION_NAME_LIMIT:
        return base + suffix
    digest = hashlib.sha256(f"{dataset}\0{version_id}".encode()).hexdigest()[:12]
    keep = EXECUTION_NAME_LIMIT - len(suffix) - len(digest) - 1
    return f"{base[:keep]}-{digest}{suffix}"


def rerun_execution_name(dataset: str, version_id: str, number: int) -> str:
    """The execution name of `driftline runs rerun`'s `number`-th run on the version."""
    return later_execution_name(dataset, version_id, "rerun", number)
