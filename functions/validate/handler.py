"""Validate one uploaded dataset version against its contract: accept (manifest) or quarantine.

Glue only: the contract rules, streaming validation and profile are `pipelines/`; this
handler resolves the contract, streams the exact object version from S3 and records the verdict.
A rejected version is tagged and reported, never deleted or overwritten.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.shared import storage
from functions.shared.clients import client
from functions.shared.contract_store import resolve
from functions.shared.datasets import (
    DatasetRegistry,
    accepted_result,
    evolution_violations,
    store_manifest_once,
)
from functions.shared.quarantine import quarantine
from functions.shared.settings import get_settings
from functions.shared.state import NAME_PATTERN, StepState, parse_state
from pipelines.contracts import ContractError
from pipelines.keys import DATASETS_PREFIX, manifest_key
from pipelines.manifests import build_manifest
from pipelines.validation import validate

logger = Logger()


class UploadState(StepState):
    dataset: str = Field(pattern=NAME_PATTERN)
    bucket: str = Field(min_length=3)
    key: str = Field(min_length=1)
    version_id: str = Field(min_length=1)
    size: int | None = Field(default=None, ge=0)  # from the S3 event, via start_run


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
        storage.open_stream(state.bucket, state.key, state.version_id),
        contract,
        name=state.key,
        size=state.size,
    ).to_dict()
    datasets = DatasetRegistry(client("dynamodb"), settings.datasets_table)
    violations: list[dict[str, Any]] = [
        *report["violations"],
        *evolution_violations(datasets, state.dataset, contract),
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
    manifest, sha256 = store_manifest_once(datasets, settings.artifacts_bucket, key, manifest)
    return accepted_result(
        manifest,
        dataset=state.dataset,
        version_id=state.version_id,
        key=state.key,
        manifest_key=key,
        sha256=sha256,
    )


def reject(
    state: UploadState, violations: list[dict[str, Any]], *, report: dict[str, Any]
) -> dict[str, Any]:
    result = quarantine(
        dataset=state.dataset,
        version_id=state.version_id,
        key=state.key,
        bucket=state.bucket,
        objects=[(state.key, state.version_id)],
        violations=violations,
        report=report,
    )
    logger.warning(
        "rejected", extra={"violations": len(violations), "report": result["report_key"]}
    )
    return result
