"""Which contract a dataset version is validated against.

A contract uploaded to the datasets bucket at `contracts/<dataset>.yaml` overrides the one
packaged with the functions (`contracts/` in the image), so a data owner can tighten or evolve
rules without a deployment; the source recorded in the manifest names the exact S3 VersionId.
"""

from __future__ import annotations

from pathlib import Path

from functions.shared import storage
from pipelines.contracts import Contract, ContractError, parse_contract, resolve_contract

PACKAGED_CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


def resolve(dataset: str, datasets_bucket: str) -> tuple[Contract, str]:
    """(contract, source); a missing, unparsable or mismatched contract is a ContractError."""
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
