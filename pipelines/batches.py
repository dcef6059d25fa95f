"""Multi-part dataset versions: which objects are parts, and one verdict from many part reports.

A dataset too large for one validator Lambda arrives as part files under a batch prefix
`datasets/<dataset>/<batch>/`, then a marker `_COMPLETE` (or `_SUCCESS`) in that prefix (see
`pipelines.uploads`). The marker's VersionId is the dataset version. Every part is validated
on its own, in parallel, against the same pinned contract; `merge_part_reports` then folds
the part reports into one report whose profile is `merge_profiles` of the parts' profiles,
so the batch manifest carries the profile a single pass over the concatenated data gives.

Rules that need every row at once are split accordingly: `min_rows`/`max_rows` apply to the
total (parts are checked without them, see `part_contract`), while `unique`, `primary_key`
and `max_duplicate_share` are checked within each part only: a repeat across two parts is
not seen, and the manifest carries a warning saying so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.contracts import Contract
from pipelines.manifests import build_manifest
from pipelines.profile import DatasetProfile, ProfileMergeError, merge_profiles
from pipelines.uploads import SUPPORTED_SUFFIXES

MAX_PARTS = 10_000
_FORMATS = (".csv.gz", ".csv", ".parquet")


@dataclass(frozen=True)
class Part:
    """One part file, pinned to the VersionId that was current when the batch was listed."""

    index: int
    key: str
    version_id: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "version_id": self.version_id,
            "size": self.size,
        }


def is_part(key: str, prefix: str) -> bool:
    """A data file under `prefix`; `_`/`.` names (markers, `_temporary/`, `.crc`) are not."""
    if not key.startswith(prefix) or not key.lower().endswith(SUPPORTED_SUFFIXES):
        return False
    segments = key[len(prefix) :].split("/")
    return all(segment and segment[0] not in "._" for segment in segments)


def plan_parts(objects: Iterable[tuple[str, str, int]], prefix: str) -> list[Part]:
    """(key, VersionId, size) of the current objects → the batch's parts, in key order."""
    chosen = sorted((key, version, size) for key, version, size in objects if is_part(key, prefix))
    return [
        Part(index=index, key=key, version_id=version, size=size)
        for index, (key, version, size) in enumerate(chosen)
    ]


def part_contract(contract: Contract) -> Contract:
    """The rules one part is held to: all but the row bounds, which apply to the whole batch."""
    return contract.model_copy(update={"min_rows": 0, "max_rows": None})


def batch_sha256(parts: Sequence[Mapping[str, Any]]) -> str:
    """sha256 over every part's key, VersionId and byte hash: one changed byte changes it."""
    lines = [
        json.dumps([part["key"], part["version_id"], part["sha256"]], separators=(",", ":"))
        for part in sorted(parts, key=lambda part: str(part["key"]))
    ]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _format_of(key: str) -> str:
    lowered = key.lower()
    return next(suffix.lstrip(".") for suffix in _FORMATS if lowered.endswith(suffix))


def _per_part_violations(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    key = str(report["key"])
    found = []
    for violation in report.get("violations", []):
        message = str(violation.get("message") or violation.get("rule"))
        if not message.startswith(key):
            message = f"{key}: {message}"
        found.append({**violation, "part": key, "message": message})
    return found


def _merged_warnings(reports: Sequence[Mapping[str, Any]], contract: Contract) -> list[str]:
    """Each distinct warning once, with the number of parts it came from and the first one."""
    seen: dict[str, list[str]] = {}
    for report in reports:
        for warning in report.get("warnings", []):
            seen.setdefault(str(warning), []).append(str(report["key"]))
    warnings = [
        f"{text} (in {len(keys)} of {len(reports)} parts, first {keys[0]})"
        if len(reports) > 1
        else text
        for text, keys in seen.items()
    ]
    per_part = [f"unique column {name!r}" for name, spec in contract.columns.items() if spec.unique]
    if contract.primary_key:
        per_part.append(f"primary key ({', '.join(contract.primary_key)})")
    if contract.max_duplicate_share is not None:
        per_part.append("max_duplicate_share")
    if per_part and len(reports) > 1:
        warnings.append(
            f"{'; '.join(per_part)} checked within each part only: repeats across the "
            f"{len(reports)} parts are not detected"
        )
    return warnings


def merge_part_reports(
    reports: Sequence[Mapping[str, Any]], contract: Contract, *, top_k: int = 20
) -> dict[str, Any]:
    """One report for the batch, shaped like `ValidationReport.to_dict()` plus `parts`.

    `reports` are the part reports in part order, each a `ValidationReport.to_dict()` with the
    part's `key` and `version_id`. Violations keep the part's own row numbers and name the
    part. The profile is merged only when every part is valid (a rejected batch has none).
    """
    violations: list[dict[str, Any]] = []
    for report in reports:
        violations.extend(_per_part_violations(report))
    if not reports:
        violations.append(
            {
                "column": None,
                "rule": "no_parts",
                "count": 1,
                "rows": [],
                "message": "the batch has no part files (.csv, .csv.gz or .parquet)",
            }
        )
    formats: dict[str, str] = {}
    for report in reports:
        fmt = str(report.get("format") or _format_of(str(report["key"])))
        formats.setdefault(fmt, str(report["key"]))
    if len(formats) > 1:
        listed = ", ".join(f"{fmt} (e.g. {key})" for fmt, key in formats.items())
        violations.append(
            {
                "column": None,
                "rule": "mixed_formats",
                "count": len(formats),
                "rows": [],
                "message": f"parts of one batch must share one format, found {listed}",
            }
        )
    rows = sum(int(report["rows"]) for report in reports)
    complete = all(bool(report.get("complete", True)) for report in reports)
    if complete and reports and rows < contract.min_rows:
        violations.append(
            {
                "column": None,
                "rule": "min_rows",
                "count": 1,
                "rows": [],
                "message": f"{rows} data rows in {len(reports)} parts, fewer than min_rows "
                f"{contract.min_rows}",
            }
        )
    if contract.max_rows is not None and rows > contract.max_rows:
        violations.append(
            {
                "column": None,
                "rule": "max_rows",
                "count": rows - contract.max_rows,
                "rows": [],
                "message": f"{rows} data rows in {len(reports)} parts, more than max_rows "
                f"{contract.max_rows}",
            }
        )
    profile = DatasetProfile()
    if not violations:
        try:
            profile = DatasetProfile.from_dict(reports[0]["profile"])
            for report in reports[1:]:
                profile = merge_profiles(profile, DatasetProfile.from_dict(report["profile"]))
        except ProfileMergeError as error:
            violations.append(
                {
                    "column": None,
                    "rule": "profile_merge",
                    "count": 1,
                    "rows": [],
                    "message": f"part profiles do not merge: {error}",
                }
            )
    columns: list[str] = []
    for report in reports:
        columns.extend(name for name in report.get("columns", []) if name not in columns)
    parts = [
        {
            "index": index,
            "key": str(report["key"]),
            "version_id": str(report["version_id"]),
            "sha256": str(report["sha256"]),
            "size": int(report["size"]),
            "rows": int(report["rows"]),
        }
        for index, report in enumerate(reports)
    ]
    return {
        "valid": not violations,
        "violations": violations,
        "warnings": _merged_warnings(reports, contract),
        "rows": rows,
        "columns": columns,
        "sha256": batch_sha256(parts),
        "size": sum(part["size"] for part in parts),
        "format": next(iter(formats), ""),
        "dataset": contract.dataset,
        "complete": complete,
        "profile": profile.to_dict(top_k),
        "parts": parts,
    }


def build_batch_manifest(
    merged: Mapping[str, Any],
    *,
    dataset: str,
    prefix: str,
    marker_key: str,
    version_id: str,
    column_types: Mapping[str, str],
    contract_hash: str,
    contract_source: str,
    validated_at: str,
) -> dict[str, Any]:
    """A manifest like a single file's, keyed by the batch prefix, listing every part."""
    manifest = build_manifest(
        {**merged, "contract_hash": contract_hash},
        dataset=dataset,
        key=prefix,
        version_id=version_id,
        column_types=column_types,
        contract_source=contract_source,
        validated_at=validated_at,
    )
    manifest["parts"] = [dict(part) for part in merged["parts"]]
    manifest["marker"] = {"key": marker_key, "version_id": version_id}
    return manifest
