"""SageMaker script-mode entry point: `python -m pipelines.sagemaker_entry`.

Runs the same calls as the Lambda training backend (`run_training`, `metadata_for_run`,
`dump_model`, `render_model_card`, `render_evaluation_plot`, `metrics_document`), only
reading inputs from SageMaker's directories and environment instead of S3 events:

- `SM_CHANNEL_TRAIN`: directory with the dataset as CSV or Parquet files (concatenated in name
  order when there are several).
- `SM_CHANNEL_CONFIG` (optional): directory with the model config YAML; without it the
  `model_config` hyperparameter holds the YAML text.
- hyperparameters (`SM_HPS` JSON, or `--name value` arguments, which win): `dataset`,
  `model_config`, `contract_columns` (JSON object column -> type; inferred from the file's
  dtypes when absent), `created_at`, `s3_version_id`, `manifest_sha256`, `code_version`.
- `SM_MODEL_DIR` receives `model.zip`; `SM_OUTPUT_DATA_DIR` receives `metrics.json`,
  `metadata.json`, `model_card.md` and `evaluation.png`. On failure the one-line reason also goes
  to `$SM_OUTPUT_DIR/failure`, where SageMaker reads a job's FailureReason.

The gate is not run here: it needs the champion, which the pipeline's gate step loads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.model_card import metrics_document, render_evaluation_plot, render_model_card
from pipelines.model_config import ModelConfig, ModelConfigError, parse_model_config
from pipelines.model_io import DataLineage, dump_model, metadata_for_run
from pipelines.training import TrainingError, TrainingRun, run_training

MODEL_FILENAME = "model.zip"
EXIT_FAILED = 1
EXIT_BAD_ENVIRONMENT = 2
_HYPERPARAMETERS = (
    "dataset",
    "model_config",
    "contract_columns",
    "created_at",
    "s3_version_id",
    "manifest_sha256",
    "code_version",
)


class EntryError(RuntimeError):
    """The job's environment (channels, directories, hyperparameters) is unusable."""


@dataclass(frozen=True)
class JobSettings:
    train_dir: Path
    config_dir: Path | None
    model_dir: Path
    output_data_dir: Path
    failure_dir: Path | None
    hyperparameters: dict[str, str]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], argv: Sequence[str]) -> JobSettings:
        def directory(name: str, *, required: bool = True) -> Path | None:
            value = environ.get(name)
            if not value:
                if required:
                    raise EntryError(f"environment variable {name} is not set")
                return None
            return Path(value)

        hyperparameters: dict[str, str] = {}
        raw = environ.get("SM_HPS")
        if raw:
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise EntryError(f"SM_HPS is not JSON: {exc.msg}") from None
            if not isinstance(parsed, dict):
                raise EntryError("SM_HPS must be a JSON object of hyperparameters")
            hyperparameters.update({key: _as_text(value) for key, value in parsed.items()})
        parser = argparse.ArgumentParser(prog="pipelines.sagemaker_entry")
        for name in _HYPERPARAMETERS:
            parser.add_argument(f"--{name}")
        known, _ = parser.parse_known_args(list(argv))
        hyperparameters.update({k: v for k, v in vars(known).items() if v is not None})

        train_dir = directory("SM_CHANNEL_TRAIN")
        model_dir = directory("SM_MODEL_DIR")
        output_dir = directory("SM_OUTPUT_DATA_DIR")
        assert train_dir is not None and model_dir is not None and output_dir is not None
        return cls(
            train_dir=train_dir,
            config_dir=directory("SM_CHANNEL_CONFIG", required=False),
            model_dir=model_dir,
            output_data_dir=output_dir,
            failure_dir=directory("SM_OUTPUT_DIR", required=False),
            hyperparameters=hyperparameters,
        )


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def read_dataset(train_dir: Path) -> pd.DataFrame:
    if not train_dir.is_dir():
        raise EntryError(f"SM_CHANNEL_TRAIN {train_dir} is not a directory")
    files = sorted(
        path
        for path in train_dir.rglob("*")
        if path.is_file() and path.suffix.lower() in (".csv", ".parquet")
    )
    if not files:
        raise EntryError(f"no .csv or .parquet file in {train_dir}")
    frames = [
        pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
        for path in files
    ]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def read_config(settings: JobSettings) -> tuple[ModelConfig, str]:
    """The model config and the dataset name (hyperparameter, else the config file's stem)."""
    dataset = settings.hyperparameters.get("dataset")
    if settings.config_dir is not None:
        candidates = sorted(
            path
            for path in settings.config_dir.iterdir()
            if path.suffix.lower() in (".yaml", ".yml")
        )
        if dataset is not None:
            candidates = [path for path in candidates if path.stem == dataset] or candidates
        if len(candidates) != 1:
            raise EntryError(
                f"expected one model config YAML in {settings.config_dir}, found "
                f"{len(candidates)}; set the 'dataset' hyperparameter to pick one"
            )
        path = candidates[0]
        config = parse_model_config(path.read_text(encoding="utf-8"), source=str(path))
        return config, dataset or path.stem
    text = settings.hyperparameters.get("model_config")
    if text is None:
        raise EntryError("no SM_CHANNEL_CONFIG and no 'model_config' hyperparameter")
    return parse_model_config(text, source="hyperparameter 'model_config'"), dataset or "dataset"


def contract_columns_for(settings: JobSettings, frame: pd.DataFrame) -> dict[str, str]:
    """The contract's columns when the pipeline passes them, else the file's own dtypes."""
    raw = settings.hyperparameters.get("contract_columns")
    if raw is not None:
        try:
            columns = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EntryError(f"hyperparameter 'contract_columns' is not JSON: {exc.msg}") from None
        if not isinstance(columns, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in columns.items()
        ):
            raise EntryError("hyperparameter 'contract_columns' must map column names to types")
        return columns
    return infer_contract_columns(frame)


def infer_contract_columns(frame: pd.DataFrame) -> dict[str, str]:
    """Contract-style type strings from a frame's dtypes, for jobs started without a contract."""
    inferred: dict[str, str] = {}
    for name, dtype in frame.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            inferred[str(name)] = "bool"
        elif pd.api.types.is_integer_dtype(dtype):
            inferred[str(name)] = "int"
        elif pd.api.types.is_numeric_dtype(dtype):
            inferred[str(name)] = "float"
        else:
            inferred[str(name)] = "string"
    return inferred


def write_outputs(
    run: TrainingRun,
    *,
    lineage: DataLineage,
    created_at: str,
    model_dir: Path,
    output_data_dir: Path,
) -> dict[str, Path]:
    metadata = metadata_for_run(run, created_at=created_at, lineage=lineage)
    model_dir.mkdir(parents=True, exist_ok=True)
    output_data_dir.mkdir(parents=True, exist_ok=True)
    card = render_model_card(
        run, lineage=lineage, created_at=created_at, sklearn_version=metadata.sklearn_version
    )
    contents: dict[Path, bytes] = {
        model_dir / MODEL_FILENAME: dump_model(run.model, metadata),
        output_data_dir / "metrics.json": json.dumps(
            metrics_document(run), indent=2, sort_keys=True
        ).encode(),
        output_data_dir / "metadata.json": json.dumps(
            metadata.to_dict(), indent=2, sort_keys=True
        ).encode(),
        output_data_dir / "model_card.md": card.encode(),
        output_data_dir / "evaluation.png": render_evaluation_plot(
            run.evaluation, title=lineage.dataset
        ),
    }
    for path, data in contents.items():
        path.write_bytes(data)
    return {path.name: path for path in contents}


def run_job(settings: JobSettings) -> dict[str, Path]:
    config, dataset = read_config(settings)
    frame = read_dataset(settings.train_dir)
    contract_columns = contract_columns_for(settings, frame)
    run = run_training(frame, config, contract_columns)
    hps = settings.hyperparameters
    lineage = DataLineage(
        dataset=dataset,
        s3_version_id=hps.get("s3_version_id", "unknown"),
        manifest_sha256=hps.get("manifest_sha256", "unknown"),
        code_version=hps.get("code_version", "unknown"),
    )
    created_at = hps.get("created_at") or datetime.now(UTC).isoformat(timespec="seconds")
    return write_outputs(
        run,
        lineage=lineage,
        created_at=created_at,
        model_dir=settings.model_dir,
        output_data_dir=settings.output_data_dir,
    )


def _fail(message: str, failure_dir: Path | None, code: int) -> int:
    print(f"training failed: {message}", file=sys.stderr)
    if failure_dir is not None:
        failure_dir.mkdir(parents=True, exist_ok=True)
        (failure_dir / "failure").write_text(message + "\n", encoding="utf-8")
    return code


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    try:
        settings = JobSettings.from_environment(env, sys.argv[1:] if argv is None else argv)
    except EntryError as exc:
        failure = env.get("SM_OUTPUT_DIR")
        return _fail(str(exc), Path(failure) if failure else None, EXIT_BAD_ENVIRONMENT)
    try:
        written = run_job(settings)
    except EntryError as exc:
        return _fail(str(exc), settings.failure_dir, EXIT_BAD_ENVIRONMENT)
    except (ModelConfigError, TrainingError) as exc:
        return _fail(str(exc), settings.failure_dir, EXIT_FAILED)
    for name, path in sorted(written.items()):
        print(f"wrote {name}: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
