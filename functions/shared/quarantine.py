"""Rejecting a dataset version: report it, tag its exact object versions, say why in one line.

A rejected version is kept as uploaded (never deleted or overwritten, so the data owner can
look at exactly what was refused); the tag on each VersionId marks it and names the report.
Single uploads and multi-part batches are rejected the same way; a batch tags every part
and its marker, because the batch as a whole is the version that was refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from functions.shared import storage
from functions.shared.clients import client
from functions.shared.errors import transient_aws_errors
from functions.shared.settings import get_settings
from pipelines.keys import report_key
from pipelines.manifests import rejection_summary

QUARANTINE_TAG = "driftline:quarantined"
REPORT_TAG = "driftline:report"
TAGGING_THREADS = 8  # a rejected batch may have thousands of parts to tag


def tag_quarantined(bucket: str, key: str, version_id: str, report: str) -> None:
    with transient_aws_errors(f"tagging s3://{bucket}/{key}?versionId={version_id}"):
        client("s3").put_object_tagging(
            Bucket=bucket,
            Key=key,
            VersionId=version_id,
            Tagging={
                "TagSet": [
                    {"Key": QUARANTINE_TAG, "Value": "true"},
                    {"Key": REPORT_TAG, "Value": report},
                ]
            },
        )


def quarantine(
    *,
    dataset: str,
    version_id: str,
    key: str,
    bucket: str,
    objects: Iterable[tuple[str, str]],
    violations: Sequence[Mapping[str, Any]],
    report: Mapping[str, Any],
) -> dict[str, Any]:
    """Write the report beside where the manifest would be, tag `objects` (key, VersionId).

    Returns the `$.validation` of a rejected version: the SNS message and the one-line cause
    the state machine fails with, both naming the report.
    """
    settings = get_settings()
    path = report_key(dataset, version_id)
    uri = f"s3://{settings.artifacts_bucket}/{path}"
    storage.put_json(
        settings.artifacts_bucket,
        path,
        {
            **report,
            "dataset": dataset,
            "key": key,
            "version_id": version_id,
            "violations": list(violations),
        },
    )
    with ThreadPoolExecutor(max_workers=TAGGING_THREADS) as pool:
        # list() re-raises the first tagging failure (e.g. a TransientError to retry on).
        list(pool.map(lambda pair: tag_quarantined(bucket, pair[0], pair[1], path), objects))
    message, cause = rejection_summary(
        dataset=dataset,
        version_id=version_id,
        key=key,
        violations=violations,
        report_uri=uri,
    )
    return {
        "status": "rejected",
        "dataset": dataset,
        "version_id": version_id,
        "report_key": path,
        "violations": len(violations),
        "message": message,
        "cause": cause,
    }
