"""Validate one uploaded dataset version against its contract: accept (manifest) or quarantine.

Glue only: the contract rules, streaming validation and profile are `pipelines/`; this
handler resolves the contract, streams the exact object version from S3 and records the verdict.
A rejected version is tagged and reported, never deleted or overwritten.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.shared import storage
from functions.shared.clients import client
from functions.shared.datasets import DatasetRegistry
from functions.shared.errors import transient_aws_errors
from functions.shared.settings import get_settings
from functions.shared.state import NAME_PATTERN, StepState, parse_state
from pipelines.contracts import (
    Contract,
    ContractError,
    check_schema_evolution,
    parse_contract,
    resolve_contract,
)
from pipelines.manifests import (
    build_manifest,
    manifest_key,
    manifest_sha256,
    rejection_summary,
    report_key,
)
from pipelines.uploads import DATASETS_PREFIX
from pipelines.validation import validate

logger = Logger()

PACKAGED_CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
QUARANTINE_TAG = "driftline:quarantined"


class UploadState(StepState):
    dataset: str = Field(pattern=NAME_PATTERN)
    bucket: str = Field(min_length=3)
    key: str = Field(min_length=1)
    version_id: str = Field(min_length=1)


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(UploadState, event)
    logger.append_keys(dataset=state.dataset, version_id=state.version_id)
    if not state.key.startswith(DATASETS_PREFIX) or ".." in state.key.split("/"):
        logger.info("ignored: key outside datasets/ or with '..'", extra={"key": state.key})
        return {"status": "ignored", "key": state.key}
    return run(state)


def run(state: UploadState) -> dict[str, Any]:
    started = time.perf_counter()
    settings = get_settings()
    validated_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    try:
        contract, contract_source = resolve(state.dataset, settings.datasets_bucket)
    except ContractError as error:
        return reject(
            state,
            [{"column": None, "rule": "contract", "count": 0, "rows": [], "message": str(error)}],
            report={"valid": False},
        )

    report = validate(
        storage.open_stream(state.bucket, state.key, state.version_id), contract, name=state.key
    ).to_dict()
    datasets = DatasetRegistry(client("dynamodb"), settings.datasets_table)
    previous = datasets.latest(state.dataset)
    violations: list[dict[str, Any]] = list(report["violations"])
    if previous is not None:
        violations += [
            violation.to_dict()
            for violation in check_schema_evolution(
                previous["columns"], contract, contract.evolution
            )
        ]
    logger.info(
        "validated",
        extra={
            "rows": report["rows"],
            "violations": len(violations),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    if violations:
        return reject(state, violations, report={**report, "violations": violations})

    manifest = build_manifest(
        report,
        dataset=state.dataset,
        key=state.key,
        version_id=state.version_id,
        column_types=contract.column_types(),
        contract_source=contract_source,
        validated_at=validated_at,
    )
    key = manifest_key(state.dataset, state.version_id)
    existing = storage.get_text_if_exists(settings.artifacts_bucket, key)
    if existing is None:
        storage.put_json(settings.artifacts_bucket, key, manifest)
        sha256 = manifest_sha256(manifest)
        datasets.record_accepted(manifest, manifest_key=key, sha256=sha256)
    else:
        # A retried step: the first manifest stays the one and only record of this version.
        manifest = storage.get_json(settings.artifacts_bucket, key)
        sha256 = manifest_sha256(manifest)
    return {
        "status": "accepted",
        "dataset": state.dataset,
        "version_id": state.version_id,
        "key": state.key,
        "manifest_key": key,
        "manifest_sha256": sha256,
        "columns": manifest["columns"],
        "rows": manifest["rows"],
        "contract_hash": manifest["contract_hash"],
        "format": manifest["format"],
        "warnings": manifest["warnings"],
    }


def resolve(dataset: str, datasets_bucket: str) -> tuple[Contract, str]:
    """An uploaded `contracts/<dataset>.yaml` overrides the one deployed with the stack."""
    override_key = f"contracts/{dataset}.yaml"
    override = storage.get_text_if_exists(datasets_bucket, override_key)
    if override is not None:
        text, version_id = override
        source = f"s3://{datasets_bucket}/{override_key}?versionId={version_id}"
        contract = parse_contract(text, source=source)
        if contract.dataset != dataset:
            raise ContractError(
                f"{source}: dataset: says {contract.dataset!r}, expected {dataset!r}"
            )
        return contract, source
    return resolve_contract(dataset, PACKAGED_CONTRACTS), f"contracts/{dataset}.yaml"


def reject(
    state: UploadState, violations: list[dict[str, Any]], *, report: dict[str, Any]
) -> dict[str, Any]:
    settings = get_settings()
    key = report_key(state.dataset, state.version_id)
    uri = f"s3://{settings.artifacts_bucket}/{key}"
    storage.put_json(
        settings.artifacts_bucket,
        key,
        {
            **report,
            "dataset": state.dataset,
            "key": state.key,
            "version_id": state.version_id,
            "violations": violations,
        },
    )
    with transient_aws_errors(f"tagging s3://{state.bucket}/{state.key}"):
        client("s3").put_object_tagging(
            Bucket=state.bucket,
            Key=state.key,
            VersionId=state.version_id,
            Tagging={
                "TagSet": [
                    {"Key": QUARANTINE_TAG, "Value": "true"},
                    {"Key": "driftline:report", "Value": key},
                ]
            },
        )
    message, cause = rejection_summary(
        dataset=state.dataset,
        version_id=state.version_id,
        key=state.key,
        violations=violations,
        report_uri=uri,
    )
    logger.warning("rejected", extra={"violations": len(violations), "report": uri})
    return {
        "status": "rejected",
        "dataset": state.dataset,
        "version_id": state.version_id,
        "report_key": key,
        "violations": len(violations),
        "message": message,
        "cause": cause,
    }
