"""Validate one part of a multi-part batch (one Distributed Map item) and keep its report.

The full part report, profile included, goes to S3 for the merge step; the map item returns
only a small summary, so a batch of thousands of parts stays within Step Functions' payload
limits. Parts are checked without the dataset's row bounds, which apply to the merged total.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared import storage
from functions.shared.batch_store import PartState
from functions.shared.settings import get_settings
from functions.shared.state import parse_state
from pipelines.batches import part_contract
from pipelines.contracts import Contract, contract_hash
from pipelines.keys import part_report_key
from pipelines.validation import validate

logger = Logger()


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(PartState, event)
    logger.append_keys(dataset=state.dataset, version_id=state.version_id, part=state.part.key)
    return run(state)


def run(state: PartState) -> dict[str, Any]:
    started = time.perf_counter()
    settings = get_settings()
    contract = Contract.model_validate(
        storage.get_json(settings.artifacts_bucket, state.contract_key)
    )
    part = state.part
    report = validate(
        storage.open_stream(state.bucket, part.key, part.version_id),
        part_contract(contract),
        name=part.key,
        size=part.size,
    ).to_dict()
    report_key = part_report_key(state.dataset, state.version_id, part.index)
    storage.put_json(
        settings.artifacts_bucket,
        report_key,
        {
            **report,
            "contract_hash": contract_hash(contract),
            "index": part.index,
            "key": part.key,
            "version_id": part.version_id,
        },
    )
    logger.info(
        "part validated",
        extra={
            "rows": report["rows"],
            "violations": len(report["violations"]),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    return {
        "index": part.index,
        "key": part.key,
        "version_id": part.version_id,
        "valid": report["valid"],
        "rows": report["rows"],
        "violations": len(report["violations"]),
        "report_key": report_key,
    }
