"""Which model config trains a dataset: an uploaded override, else the one shipped in the image.

An override at `s3://<datasets bucket>/models/<dataset>.yaml` lets a team tune a model without a
deployment; the packaged `models/<dataset>.yaml` (next to `functions/` in the image and in the
repository) is the reviewed default. The chosen text is checked completely, including against
the data contract's columns, before any data is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from functions.shared import storage
from pipelines.keys import model_config_key
from pipelines.model_config import (
    ModelConfig,
    ModelConfigError,
    parse_model_config,
    resolve_features,
)

# functions/shared/configs.py → the folder holding functions/, pipelines/ and models/.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
PACKAGED_MODELS = PACKAGE_ROOT / "models"


@dataclass(frozen=True)
class ResolvedConfig:
    config: ModelConfig
    text: str
    source: str


def resolve_model_config(
    dataset: str,
    contract_columns: Mapping[str, str],
    *,
    datasets_bucket: str,
    packaged_dir: Path = PACKAGED_MODELS,
) -> ResolvedConfig:
    """The checked config for `dataset`; ModelConfigError (one line) if none or invalid."""
    key = model_config_key(dataset)
    override = storage.get_text_if_exists(datasets_bucket, key)
    if override is not None:
        text, version_id = override
        source = f"s3://{datasets_bucket}/{key}" + (
            f"?versionId={version_id}" if version_id else ""
        )
    else:
        path = packaged_dir / f"{dataset}.yaml"
        if not path.is_file():
            raise ModelConfigError(
                f"no model config for dataset '{dataset}': upload s3://{datasets_bucket}/{key} "
                f"or ship models/{dataset}.yaml"
            )
        text, source = path.read_text(encoding="utf-8"), f"models/{dataset}.yaml"
    config = parse_model_config(text, source=source)
    resolve_features(config, contract_columns)
    return ResolvedConfig(config=config, text=text, source=source)
