"""The immutable record of an accepted dataset version, and the words for a rejected one.

A manifest pins everything a model's lineage needs: the exact S3 VersionId, the sha256 of the
bytes that were validated, the contract they were checked against, and the profile that later
serves as the drift baseline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

TOP_VIOLATIONS = 5


def build_manifest(
    report: Mapping[str, Any],
    *,
    dataset: str,
    key: str,
    version_id: str,
    column_types: Mapping[str, str],
    contract_source: str,
    validated_at: str,
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "key": key,
        "version_id": version_id,
        "sha256": report["sha256"],
        "size": report["size"],
        "rows": report["rows"],
        "format": report["format"],
        "columns": {name: column_types[name] for name in report["columns"] if name in column_types},
        "profile": report["profile"],
        "warnings": list(report.get("warnings", [])),
        "contract_hash": report["contract_hash"],
        "contract_source": contract_source,
        "validated_at": validated_at,
    }


def canonical_bytes(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """Hash of the canonical JSON, so the same manifest always has the same identity."""
    return hashlib.sha256(canonical_bytes(manifest)).hexdigest()


def describe_violation(violation: Mapping[str, Any]) -> str:
    where = f"column {violation['column']!r}" if violation.get("column") else "dataset"
    rows = violation.get("rows") or []
    sample = f" (rows {', '.join(str(row) for row in rows)})" if rows else ""
    count = violation.get("count")
    counted = f" x{count}" if count else ""
    message = violation.get("message") or violation.get("rule")
    return f"{where}: {violation.get('rule')}{counted}{sample}: {message}"


def rejection_summary(
    *,
    dataset: str,
    version_id: str,
    key: str,
    violations: Sequence[Mapping[str, Any]],
    report_uri: str,
) -> tuple[str, str]:
    """(SNS message, one-line cause) naming dataset, version and the top violations."""
    top = [describe_violation(violation) for violation in violations[:TOP_VIOLATIONS]]
    more = len(violations) - len(top)
    cause = (
        f"dataset {dataset} version {version_id} rejected: {len(violations)} violation(s), "
        f"first: {top[0] if top else 'unknown'}; report {report_uri}"
    )
    lines = [
        f"Driftline rejected dataset '{dataset}' version {version_id}",
        f"object: {key} (quarantined, kept)",
        f"report: {report_uri}",
        "top violations:",
        *(f"  - {line}" for line in top),
    ]
    if more > 0:
        lines.append(f"  ... and {more} more")
    return "\n".join(lines), cause
