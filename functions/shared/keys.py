"""S3 keys of run and model artifacts in the artifacts bucket (no heavy imports: Register uses it).

runs/<run_id>/           dataset.parquet, model_config.yaml, model.zip, metrics.json,
                         evaluation.png, model_card.md
models/<name>/v<N>/      the registered copies of model.zip, metrics.json, evaluation.png and
                         model_card.md
"""

from __future__ import annotations

DATASET = "dataset.parquet"
CONFIG = "model_config.yaml"
MODEL = "model.zip"
METRICS = "metrics.json"
PLOT = "evaluation.png"
CARD = "model_card.md"
REGISTERED = (MODEL, METRICS, PLOT, CARD)


def run_artifact(run_id: str, name: str) -> str:
    return f"runs/{run_id}/{name}"


def model_artifact(model: str, version: int, name: str) -> str:
    return f"models/{model}/v{version}/{name}"
