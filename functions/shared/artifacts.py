"""Where a run's artifacts live and how a step rebuilds the run from them.

Prepare writes the exact dataset version as Parquet and the exact config text under
`runs/<run_id>/`; a later step that needs the rows (Train; Evaluate, to score a champion)
recomputes the split from those two (it is a pure function of data, config and seed), so no
step re-reads the upload and no split is shipped around. Gate needs only the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.shared import storage
from functions.shared.state import PreparedState
from pipelines.model_config import ModelConfig, parse_model_config
from pipelines.model_io import DataLineage, LoadedModel, load_model

if TYPE_CHECKING:  # pandas loads only in the steps that read the data (not in Gate)
    import pandas as pd

    from pipelines.training import PreparedData


@dataclass(frozen=True)
class RunData:
    frame: pd.DataFrame
    config: ModelConfig
    prepared: PreparedData


def load_config(bucket: str, config_key: str, source: str) -> ModelConfig:
    return parse_model_config(storage.get_bytes(bucket, config_key).decode("utf-8"), source=source)


def load_run_data(
    bucket: str,
    *,
    dataset_key: str,
    config_key: str,
    config_source: str,
    columns: Mapping[str, str],
) -> RunData:
    """The prepared dataset and config of a run, split exactly as Prepare split it."""
    from pipelines.training import prepare

    config = load_config(bucket, config_key, config_source)
    frame = storage.read_frame(bucket, dataset_key)
    return RunData(frame=frame, config=config, prepared=prepare(frame, config, columns))


def load_model_bytes(bucket: str, key: str) -> LoadedModel:
    return load_model(storage.get_bytes(bucket, key))


def lineage_for(state: PreparedState, code_version: str) -> DataLineage:
    """The lineage recorded in the model archive and on its card."""
    return DataLineage(
        dataset=state.dataset,
        s3_version_id=state.validation.version_id,
        manifest_sha256=state.validation.manifest_sha256,
        code_version=code_version,
    )
