"""List a batch's parts when its marker lands: pin each part's VersionId and the contract.

The Distributed Map that validates the parts reads the list this step writes to S3 (an item
list in the state would stop at Step Functions' 256 KiB payload limit), and every part is
checked against the one contract resolved here, even if an override changes meanwhile.
Problems with the batch as a whole (no contract, no parts, too many parts) reject it here,
before any part is read; the marker is the version, so the marker is what gets quarantined.
A re-run of an accepted batch (a retrain) validates the parts its manifest lists, not
whatever is under the prefix now.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared import storage
from functions.shared.batch_store import BatchState
from functions.shared.clients import client
from functions.shared.contract_store import resolve
from functions.shared.errors import transient_aws_errors
from functions.shared.quarantine import quarantine
from functions.shared.settings import get_settings
from functions.shared.state import parse_state
from pipelines.batches import MAX_PARTS, Part, plan_parts
from pipelines.contracts import ContractError, contract_hash
from pipelines.keys import manifest_key, parts_list_key, pinned_contract_key

logger = Logger()


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(BatchState, event)
    logger.append_keys(dataset=state.dataset, version_id=state.version_id)
    if not state.inside_datasets:
        logger.info("ignored: not a batch marker under datasets/", extra={"key": state.key})
        return {"status": "ignored", "key": state.key}
    return run(state)


def run(state: BatchState) -> dict[str, Any]:
    settings = get_settings()
    marker_key = state.marker_key
    accepted = storage.get_text_if_exists(
        settings.artifacts_bucket, manifest_key(state.dataset, state.version_id)
    )
    if accepted is not None:
        # A re-run of an accepted version (a retrain): exactly the parts it was accepted with.
        manifest = json.loads(accepted[0])
        parts = [
            Part(int(p["index"]), str(p["key"]), str(p["version_id"]), int(p["size"]))
            for p in manifest["parts"]
        ]
        marker_key = str(manifest["marker"]["key"])
    else:
        parts = plan_parts(current_objects(state.bucket, state.prefix), state.prefix)
    logger.info("listed", extra={"prefix": state.prefix, "parts": len(parts)})
    problem = None
    if not parts:
        problem = ("no_parts", f"no part files (.csv, .csv.gz, .parquet) under {state.prefix}")
    elif len(parts) > MAX_PARTS:
        problem = (
            "too_many_parts",
            f"{len(parts)} part files under {state.prefix}, more than the limit of {MAX_PARTS}",
        )
    try:
        contract, source = resolve(state.dataset, settings.datasets_bucket)
    except ContractError as error:
        problem = ("contract", str(error))
    if problem is not None:
        return reject(state, *problem, marker_key=marker_key, parts=len(parts))

    contract_key = pinned_contract_key(state.dataset, state.version_id)
    storage.put_json(settings.artifacts_bucket, contract_key, contract.model_dump(mode="json"))
    parts_key = parts_list_key(state.dataset, state.version_id)
    storage.put_json(settings.artifacts_bucket, parts_key, [part.to_dict() for part in parts])
    return {
        "status": "listed",
        "dataset": state.dataset,
        "prefix": state.prefix,
        "parts": len(parts),
        "parts_key": parts_key,
        "contract_key": contract_key,
        "contract_source": source,
        "contract_hash": contract_hash(contract),
        "marker_key": marker_key or "",
    }


def current_objects(bucket: str, prefix: str) -> list[tuple[str, str, int]]:
    """(key, VersionId, size) of every current object version under `prefix`."""
    found = []
    paginator = client("s3").get_paginator("list_object_versions")
    with transient_aws_errors(f"listing s3://{bucket}/{prefix}"):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                if version.get("IsLatest"):
                    found.append(
                        (str(version["Key"]), str(version["VersionId"]), int(version["Size"]))
                    )
    return found


def reject(
    state: BatchState, rule: str, message: str, *, marker_key: str | None, parts: int
) -> dict[str, Any]:
    violation: dict[str, Any] = {
        "column": None,
        "rule": rule,
        "count": 1,
        "rows": [],
        "message": message,
    }
    result = quarantine(
        dataset=state.dataset,
        version_id=state.version_id,
        key=state.prefix,
        bucket=state.bucket,
        objects=[(marker_key, state.version_id)] if marker_key else [],
        violations=[violation],
        report={"valid": False, "parts_found": parts, "marker": marker_key},
    )
    logger.warning("rejected", extra={"rule": rule, "report": result["report_key"]})
    return result
