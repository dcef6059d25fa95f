"""The drift baseline of one model version: its training rows and what it predicted for them.

Built once per version from `runs/<run_id>/dataset.parquet` (sampled to at most 50,000 rows,
seeded) and the registered archive, then stored next to its description under
`monitoring/baselines/<model>/v<version>.{parquet,json}`, so later checks read one object
instead of reloading the model. Kept in memory for the life of the execution environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions.shared import storage
from pipelines.keys import DATASET, baseline_description_key, baseline_key, run_artifact
from pipelines.model_config import FeatureKind
from pipelines.monitoring import (
    MAX_BASELINE_ROWS,
    baseline_frame,
    coerce_frame,
    feature_kinds,
    prediction_column,
    prediction_kind,
    reference_predictions,
)

if TYPE_CHECKING:
    import pandas as pd

logger = Logger(child=True)


class BaselineError(LookupError):
    """The version's baseline cannot be built (a missing run, archive or dataset snapshot)."""


@dataclass(frozen=True)
class Baseline:
    model: str
    version: int
    task: str
    kinds: dict[str, FeatureKind]
    prediction: str | None
    frame: pd.DataFrame
    run_id: str
    key: str


def load_baseline(bucket: str, record: dict[str, Any]) -> Baseline:
    """The cached baseline of the registry `record`'s version, building it on first use."""
    model, version = str(record["model"]), int(record["version"])
    return _cached(bucket, model, version, _run_id(record), str(record.get("model_key", "")))


def _run_id(record: dict[str, Any]) -> str:
    lineage = record.get("lineage") or {}
    run_id = lineage.get("run_id") or record.get("run_id")
    if not run_id:
        raise BaselineError(
            f"model {record['model']} v{record['version']}: registry record names no run_id"
        )
    return str(run_id)


@cache
def _cached(bucket: str, model: str, version: int, run_id: str, model_key: str) -> Baseline:
    description_key = baseline_description_key(model, version)
    key = baseline_key(model, version)
    try:
        description = storage.get_json(bucket, description_key)
        frame = storage.read_frame(bucket, key)
    except storage.ObjectNotFound:
        return _build(bucket, model, version, run_id, model_key)
    return Baseline(
        model=model,
        version=version,
        task=str(description["task"]),
        kinds=dict(description["kinds"]),
        prediction=description.get("prediction"),
        frame=frame,
        run_id=run_id,
        key=key,
    )


def _build(bucket: str, model: str, version: int, run_id: str, model_key: str) -> Baseline:
    from pipelines.model_io import ModelIOError, load_model, read_metadata

    if not model_key:
        raise BaselineError(f"model {model} v{version}: registry record has no model_key")
    try:
        archive = storage.get_bytes(bucket, model_key)
        training = storage.read_frame(bucket, run_artifact(run_id, DATASET))
    except storage.ObjectNotFound as error:
        raise BaselineError(f"model {model} v{version}: {error}") from None
    metadata = read_metadata(archive)
    kinds = feature_kinds({name: metadata.feature_types[name] for name in metadata.features})
    frame = baseline_frame(training, kinds=kinds, max_rows=MAX_BASELINE_ROWS)
    column = prediction_column(kinds)
    prediction: str | None = column
    try:
        loaded = load_model(archive)
        inputs = frame[list(metadata.features)]
        predicted = reference_predictions(loaded.model, inputs, metadata.task)
        import pandas as pd

        frame[column] = coerce_frame(
            pd.DataFrame({column: pd.Series(predicted, dtype="object")}),
            {column: prediction_kind(metadata.task)},
        )[column]
    except (ModelIOError, KeyError, ValueError) as error:
        # Feature drift still means something without the model's own answers.
        logger.warning(
            "baseline without predictions: prediction drift is not checked",
            extra={"model": model, "version": version, "error": str(error)},
        )
        prediction = None
    key = baseline_key(model, version)
    storage.write_frame(bucket, key, frame)
    storage.put_json(
        bucket,
        baseline_description_key(model, version),
        {
            "model": model,
            "version": version,
            "task": metadata.task,
            "kinds": kinds,
            "prediction": prediction,
            "run_id": run_id,
            "rows": len(frame),
            "training_rows": len(training),
            "source": run_artifact(run_id, DATASET),
        },
    )
    logger.info("baseline built", extra={"model": model, "version": version, "rows": len(frame)})
    return Baseline(
        model=model,
        version=version,
        task=metadata.task,
        kinds=kinds,
        prediction=prediction,
        frame=frame,
        run_id=run_id,
        key=key,
    )


def reset() -> None:
    """Forget cached baselines (tests use a fresh emulator per test)."""
    _cached.cache_clear()
