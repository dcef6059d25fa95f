"""Which contract a dataset version is validated against.

A contract uploaded to the datasets bucket at `contracts/<dataset>.yaml` overrides the one
packaged with the functions (`contracts/` in the image), so a data owner can tighten or evolve
rules without a deployment; the source recorded in the manifest names the exact S3 VersionId.
"""

from __future__ import annotations

import re
from pathlib import Path

from functions.shared import storage
from pipelines.contracts import Contract, ContractError, parse_contract
from pipelines.keys import contract_key

# The starter's rule for dataset names (pipelines.uploads); no path can be built from others.
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

PACKAGED_CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


def resolve(
    dataset: str, datasets_bucket: str, *, packaged_dir: Path = PACKAGED_CONTRACTS
) -> tuple[Contract, str]:
    """(contract, source); a missing, unparsable or mismatched contract is a ContractError.

    Errors name what a user can act on: the override's `s3://` URI, or the packaged file as
    `contracts/<dataset>.yaml` (relative to the project), never the image's folder on disk
    (a `cdk.out/asset.*` path on the twin, `/var/task/...` on AWS).
    """
    if not _DATASET_NAME.match(dataset):
        raise ContractError(f"{dataset!r} is not a dataset name (letters, digits, '_', '-', '.')")
    override_key = contract_key(dataset)
    override = storage.get_text_if_exists(datasets_bucket, override_key)
    if override is not None:
        text, version_id = override
        source = f"s3://{datasets_bucket}/{override_key}?versionId={version_id}"
        return _for_dataset(parse_contract(text, source=source), source, dataset), source
    for suffix in (".yaml", ".yml"):
        packaged = packaged_dir / f"{dataset}{suffix}"
        if packaged.is_file():
            source = f"contracts/{dataset}{suffix}"
            try:
                text = packaged.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise ContractError(f"{source} (packaged): cannot read contract: {error}") from None
            return _for_dataset(parse_contract(text, source=source), source, dataset), source
    raise ContractError(
        f"no contract for dataset {dataset!r}: upload s3://{datasets_bucket}/{override_key} "
        f"(`driftline upload --contract`) or ship contracts/{dataset}.yaml"
    )


def _for_dataset(contract: Contract, source: str, dataset: str) -> Contract:
    if contract.dataset != dataset:
        raise ContractError(f"{source}: dataset: says {contract.dataset!r}, expected {dataset!r}")
    return contract
