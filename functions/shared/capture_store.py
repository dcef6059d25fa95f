"""Captured inference traffic in S3: listing capture objects and reading them in parallel."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from functions.shared import storage
from functions.shared.clients import client
from functions.shared.errors import transient_aws_errors
from pipelines.monitoring import CaptureError, CaptureRecord, parse_capture

READ_WORKERS = 16


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
