"""Offline checks of what a user uploads next to a dataset, with the pipeline's own code.

A contract is parsed by `pipelines.contracts` (what Validate and ListParts use) and must name
its dataset, as the override lookup in `functions/shared/contract_store.py` requires. A model config
is parsed by `pipelines.model_config` and, given the contract's columns, its target and
features are resolved exactly as Prepare does (`functions/shared/configs.py`). Every failure
is a one-line UsageError naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftline.errors import UsageError

if TYPE_CHECKING:  # pyarrow and scikit-learn load only when a check runs
    from pipelines.contracts import Contract
    from pipelines.model_config import ModelConfig


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read {what}: {error}") from None


def check_contract(path: Path, dataset: str | None = None) -> Contract:
    """The contract in `path`, checked as the validator loads it, for `dataset` if given."""
    from pipelines.contracts import ContractError, parse_contract

    try:
        contract = parse_contract(read_text(path, "contract"), source=str(path))
    except ContractError as error:
        raise UsageError(str(error)) from None
    if dataset is not None and contract.dataset != dataset:
        raise UsageError(
            f"{path}: key 'dataset': says {contract.dataset!r}, expected {dataset!r} "
            "(the pipeline refuses a contract for another dataset)"
        )
    return contract


def parse_contract_text(text: str, source: str) -> Contract:
    from pipelines.contracts import ContractError, parse_contract

    try:
        return parse_contract(text, source=source)
    except ContractError as error:
        raise UsageError(str(error)) from None


@dataclass(frozen=True)
class CheckedModelConfig:
    config: ModelConfig
    text: str
    features: list[str] | None  # None: not checked against a contract

    def summary(self, source: str) -> dict[str, Any]:
        config = self.config
        return {
            "file": source,
            "task": config.task,
            "target": config.target,
            "estimator": config.estimator_path,
            "estimator_params": dict(config.estimator.params),
            "metrics": list(config.metric_names),
            "primary_metric": config.primary_metric,
            "split": config.split.model_dump(),
            "gate": config.gate.model_dump(),
            "approval": config.approval,
            "features": self.features,
            "features_checked": self.features is not None,
        }


def check_model_config(
    path: Path, contract_columns: Mapping[str, str] | None = None
) -> CheckedModelConfig:
    """Parse and check a model config as Prepare does; with columns, resolve its features."""
    text = read_text(path, "model config")
    return check_model_config_text(text, str(path), contract_columns)


def check_model_config_text(
    text: str, source: str, contract_columns: Mapping[str, str] | None = None
) -> CheckedModelConfig:
    from pipelines.model_config import ModelConfigError, parse_model_config, resolve_features

    try:
        config = parse_model_config(text, source=source)
        features = (
            resolve_features(config, contract_columns) if contract_columns is not None else None
        )
    except ModelConfigError as error:
        raise UsageError(str(error)) from None
    return CheckedModelConfig(config=config, text=text, features=features)
