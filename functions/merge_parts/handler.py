"""Merge a batch's part reports into one verdict: one manifest for every part, or quarantine.

The merged profile is `merge_profiles` over the parts' profiles (exact: counts, histograms,
sketches), the row bounds and schema evolution are checked once for the whole batch, and the
manifest lists each part's key, VersionId and sha256 so training reads exactly these bytes.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared import storage
from functions.shared.batch_store import ListedBatch
from functions.shared.clients import client
from functions.shared.datasets import (
    DatasetRegistry,
    accepted_result,
    evolution_violations,
    store_manifest_once,
)
from functions.shared.quarantine import quarantine
from functions.shared.settings import get_settings
from functions.shared.state import parse_state
from pipelines.batches import build_batch_manifest, merge_part_reports
from pipelines.contracts import Contract, contract_hash
from pipelines.keys import manifest_key, part_report_key

logger = Logger()

READ_THREADS = 16  # part reports are small objects; reading thousands one by one is slow


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(ListedBatch, event)
    logger.append_keys(dataset=state.dataset, version_id=state.version_id)
    return run(state)


def run(state: ListedBatch) -> dict[str, Any]:
    started = time.perf_counter()
    settings = get_settings()
    validated_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    bucket = settings.artifacts_bucket
    contract = Contract.model_validate(storage.get_json(bucket, state.validation.contract_key))
    parts: list[dict[str, Any]] = storage.get_json(bucket, state.validation.parts_key)
    keys = [part_report_key(state.dataset, state.version_id, int(p["index"])) for p in parts]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        reports = list(pool.map(lambda key: storage.get_json(bucket, key), keys))

    merged = merge_part_reports(reports, contract)
    datasets = DatasetRegistry(client("dynamodb"), settings.datasets_table)
    violations: list[dict[str, Any]] = [
        *merged["violations"],
        *evolution_violations(datasets, state.dataset, contract),
    ]
    logger.info(
        "merged",
        extra={
            "parts": len(reports),
            "rows": merged["rows"],
            "violations": len(violations),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    if violations:
        marker_key = state.validation.marker_key
        marker = [(marker_key, state.version_id)] if marker_key else []
        result = quarantine(
            dataset=state.dataset,
            version_id=state.version_id,
            key=state.prefix,
            bucket=state.bucket,
            objects=marker + [(str(p["key"]), str(p["version_id"])) for p in parts],
            violations=violations,
            report={**merged, "valid": False, "violations": violations},
        )
        logger.warning("rejected", extra={"violations": len(violations)})
        return result

    manifest = build_batch_manifest(
        merged,
        dataset=state.dataset,
        prefix=state.prefix,
        marker_key=state.validation.marker_key or state.key,
        version_id=state.version_id,
        column_types=contract.column_types(),
        contract_hash=contract_hash(contract),
        contract_source=state.validation.contract_source,
        validated_at=validated_at,
    )
    key = manifest_key(state.dataset, state.version_id)
    manifest, sha256 = store_manifest_once(datasets, bucket, key, manifest)
    accepted = accepted_result(
        manifest,
        dataset=state.dataset,
        version_id=state.version_id,
        key=state.prefix,
        manifest_key=key,
        sha256=sha256,
    )
    return {**accepted, "parts": len(manifest["parts"])}
