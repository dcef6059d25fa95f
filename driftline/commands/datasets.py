"""`driftline datasets list|show|versions`: accepted dataset versions and their manifests.

The Datasets table lists accepted versions; each one's manifest (profile, contract, parts)
lives in the artifacts bucket. A quarantined version has no manifest and no table item, only
the rejection report beside where its manifest would be, so `show --version` looks there
before calling a version unknown.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from driftline.aws import client, require_output, s3_json, stack_outputs
from driftline.envs import add_env_action
from driftline.errors import NegativeVerdict, UsageError
from driftline.output import emit, print_json, print_table
from functions.shared.datasets import DatasetRegistry
from functions.shared.errors import TransientError
from pipelines.keys import report_key
from pipelines.manifests import TOP_VIOLATIONS, describe_violation


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("datasets", help="list and show accepted dataset versions")
    actions = parser.add_subparsers(dest="datasets_command", required=True)

    add = functools.partial(add_env_action, actions, handler=run)

    add("list", "every dataset with its latest accepted version")
    show = add("show", "a version's manifest (default: the latest accepted version)")
    show.add_argument("dataset", metavar="DATASET")
    show.add_argument("--version", help="this VersionId instead of the latest")
    add("versions", "a dataset's accepted versions, newest first").add_argument(
        "dataset", metavar="DATASET"
    )


@dataclass(frozen=True)
class Store:
    """Where a deployed env keeps dataset versions, from its stack outputs."""

    registry: DatasetRegistry
    artifacts_bucket: str
    datasets_bucket: str

    @classmethod
    def of(cls, env: str) -> Store:
        outputs = stack_outputs(env)
        table = require_output(outputs, "DatasetsTableName", env)
        return cls(
            registry=DatasetRegistry(client("dynamodb"), table),
            artifacts_bucket=require_output(outputs, "ArtifactsBucketName", env),
            datasets_bucket=require_output(outputs, "DatasetsBucketName", env),
        )

    def json_object(self, key: str) -> dict[str, Any] | None:
        """An artifacts-bucket JSON document, or None when there is no such key."""
        try:
            document: dict[str, Any] | None = s3_json(self.artifacts_bucket, key)
        except ValueError:
            raise UsageError(f"s3://{self.artifacts_bucket}/{key} is not valid JSON") from None
        return document


@contextmanager
def _aws_errors() -> Iterator[None]:
    try:
        yield
    except TransientError as error:
        raise UsageError(f"AWS call failed: {error}") from None


def run(args: argparse.Namespace) -> int:
    with _aws_errors():
        store = Store.of(args.env)
        if args.datasets_command == "list":
            latest = [store.registry.latest(name) for name in store.registry.datasets()]
            summaries = [summary_row(item) for item in latest if item is not None]
            emit(summaries, as_json=args.json)
        elif args.datasets_command == "versions":
            versions = list(store.registry.versions(args.dataset))
            if not versions:
                raise UsageError(f"unknown dataset {args.dataset!r}: no accepted version")
            emit(versions, as_json=args.json, rows=[version_row(item) for item in versions])
        else:
            show(store, args.dataset, args.version, as_json=args.json)
    return 0


def summary_row(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "dataset": item.get("dataset"),
        "latest_version": item.get("version_id"),
        "rows": item.get("rows"),
        "columns": len(item.get("columns") or {}),
        "validated_at": item.get("validated_at"),
        "key": item.get("key"),
    }


def version_row(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "version": item.get("version_id"),
        "validated_at": item.get("validated_at"),
        "rows": item.get("rows"),
        "size": item.get("size"),
        "key": item.get("key"),
        "sha256": str(item.get("sha256", ""))[:12] or None,
        "contract": str(item.get("contract_hash", ""))[:12] or None,
    }


def show(store: Store, dataset: str, version: str | None, *, as_json: bool) -> None:
    item = _accepted(store, dataset, version)
    if item is None:
        assert version is not None
        _show_quarantined(store, dataset, version, as_json=as_json)
        return
    manifest_key = str(item["manifest_key"])
    manifest = store.json_object(manifest_key)
    if manifest is None:
        raise UsageError(
            f"dataset {dataset!r} version {item['version_id']}: manifest "
            f"s3://{store.artifacts_bucket}/{manifest_key} is missing"
        )
    if as_json:
        print_json(manifest)
        return
    print_table(manifest_rows(manifest, store.datasets_bucket))
    print()
    print_table(column_rows(manifest))


def _accepted(store: Store, dataset: str, version: str | None) -> dict[str, Any] | None:
    """The table item of `version` (or the latest); None for a version that is not accepted."""
    if version is None:
        latest = store.registry.latest(dataset)
        if latest is None:
            raise UsageError(f"unknown dataset {dataset!r}: no accepted version")
        return latest
    return next(
        (item for item in store.registry.versions(dataset) if item.get("version_id") == version),
        None,
    )


def _show_quarantined(store: Store, dataset: str, version: str, *, as_json: bool) -> None:
    key = report_key(dataset, version)
    report = store.json_object(key)
    if report is None:
        if store.registry.latest(dataset) is None:
            raise UsageError(f"unknown dataset {dataset!r}: no accepted version")
        raise UsageError(f"dataset {dataset!r} has no version {version!r}")
    violations: list[dict[str, Any]] = list(report.get("violations") or [])
    uri = f"s3://{store.artifacts_bucket}/{key}"
    document = {
        "dataset": dataset,
        "version_id": version,
        "status": "quarantined",
        "key": report.get("key"),
        "report": uri,
        "violation_count": len(violations),
        "top_violations": violations[:TOP_VIOLATIONS],
    }
    emit(
        document,
        as_json=as_json,
        rows=[
            {"violation": describe_violation(violation)}
            for violation in violations[:TOP_VIOLATIONS]
        ],
    )
    raise NegativeVerdict(
        f"dataset {dataset!r} version {version} is quarantined (no manifest): "
        f"{len(violations)} violation(s); report {uri}"
    )


def manifest_rows(manifest: Mapping[str, Any], datasets_bucket: str) -> list[dict[str, Any]]:
    parts = manifest.get("parts") or []
    fields: dict[str, Any] = {
        "dataset": manifest.get("dataset"),
        "version_id": manifest.get("version_id"),
        "object": f"s3://{datasets_bucket}/{manifest.get('key')}",
        "parts": len(parts) if parts else None,
        "rows": manifest.get("rows"),
        "size": manifest.get("size"),
        "format": manifest.get("format"),
        "sha256": manifest.get("sha256"),
        "contract_source": manifest.get("contract_source"),
        "contract_hash": manifest.get("contract_hash"),
        "validated_at": manifest.get("validated_at"),
        "warnings": "; ".join(manifest.get("warnings") or []) or None,
    }
    return [{"field": name, "value": value} for name, value in fields.items()]


def column_rows(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per column of the profile: type, null rate and the summary its type has."""
    columns = (manifest.get("profile") or {}).get("columns") or {}
    rows = []
    for name, column in columns.items():
        numeric = column.get("numeric") or {}
        top = column.get("top_k") or []
        rows.append(
            {
                "column": name,
                "type": column.get("type"),
                "null_rate": column.get("null_rate"),
                "min": numeric.get("min"),
                "max": numeric.get("max"),
                "mean": numeric.get("mean"),
                "p50": (numeric.get("quantiles") or {}).get("p50"),
                "top": ", ".join(f"{value} ({count})" for value, count in top[:3]) or None,
            }
        )
    return rows
