"""Put the champion's score next to the challenger's, on the challenger's test rows.

The challenger is scored once per run. The Lambda Train step scores the model it fitted and
writes `metrics.json` and the plot (`$.trained.metrics_key`); this step then reads that
document and touches neither the challenger's model nor, without a champion, the data. A
training step that did not score (the SageMaker backend's collector) leaves no metrics key, and
the challenger is scored here instead, once (one `predict_proba` per split for a classifier).
pandas and scikit-learn are imported only when something is scored here.

The champion is the version the model's endpoint serves (`functions.shared.endpoints.champion`;
not the newest Approved one, which may never have served). A champion that cannot be scored
here (written by another scikit-learn, or trained on columns the data no longer has) is
reported as a note instead of failing the run; the gate then says it could not compare.
Gate reads only what this step returns and the `metrics.json` it writes.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared import storage
from functions.shared.artifacts import RunData, load_model_bytes, load_run_data
from functions.shared.clients import client
from functions.shared.endpoints import EndpointRegistry
from functions.shared.endpoints import champion as serving_champion
from functions.shared.registry import ModelRegistry, RunRegistry
from functions.shared.settings import get_settings
from functions.shared.state import Evaluated, TrainedState, json_safe, parse_state
from pipelines.keys import METRICS, PLOT, run_artifact
from pipelines.model_io import ModelIOError

logger = Logger()


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(TrainedState, event)
    logger.append_keys(run_id=state.run.id, dataset=state.dataset)
    return run(state).model_dump()


def score_champion(
    champion: dict[str, Any] | None, data: RunData, bucket: str
) -> tuple[dict[str, float] | None, str | None]:
    """(metrics on the challenger's test rows, or None; a note when scoring was impossible)."""
    from pipelines.training import TrainingError, score_model

    if champion is None:
        return None, None
    version = champion["version"]
    try:
        loaded = load_model_bytes(bucket, str(champion["model_key"]))
        test_rows = data.frame.reset_index(drop=True).iloc[data.prepared.split.test]
        return score_model(loaded.model, test_rows, data.config), None
    except (ModelIOError, TrainingError) as error:
        note = f"champion v{version} could not be scored: {error}"
        logger.warning("champion not scored", extra={"version": version, "reason": str(error)})
        return None, note


def _run_data(state: TrainedState, bucket: str) -> RunData:
    prepared = state.prepared
    return load_run_data(
        bucket,
        dataset_key=prepared.dataset_key,
        config_key=prepared.config_key,
        config_source=prepared.config_source,
        columns=state.validation.columns,
    )


def score_challenger(state: TrainedState, data: RunData, bucket: str) -> dict[str, Any]:
    """`metrics.json` of a challenger its training step did not score; writes its plot too."""
    from pipelines.model_card import metrics_document, render_evaluation_plot
    from pipelines.training import TrainingRun, evaluate

    challenger = load_model_bytes(bucket, state.trained.model_key).model
    evaluation = evaluate(challenger, data.prepared, data.config)
    training_run = TrainingRun(
        config=data.config, prepared=data.prepared, model=challenger, evaluation=evaluation
    )
    plot = render_evaluation_plot(evaluation, title=state.dataset)
    storage.put_bytes(bucket, run_artifact(state.run.id, PLOT), plot, "image/png")
    document: dict[str, Any] = json_safe(metrics_document(training_run))
    return document


def run(state: TrainedState) -> Evaluated:
    started = time.perf_counter()
    settings = get_settings()
    bucket = settings.artifacts_bucket
    trained = state.trained
    metrics_key = run_artifact(state.run.id, METRICS)
    plot_key = trained.plot_key or run_artifact(state.run.id, PLOT)

    data: RunData | None = None
    if trained.metrics_key:
        document: dict[str, Any] = storage.get_json(bucket, trained.metrics_key)
    else:
        data = _run_data(state, bucket)
        document = score_challenger(state, data, bucket)

    dynamodb = client("dynamodb")
    champion = serving_champion(
        ModelRegistry(dynamodb, settings.models_table),
        EndpointRegistry(dynamodb, settings.required_endpoints_table),
        state.dataset,
    )
    champion_metrics, note = None, None
    if champion is not None:
        data = data or _run_data(state, bucket)
        champion_metrics, note = score_champion(champion, data, bucket)
    champion_version = int(champion["version"]) if champion is not None else None

    document["champion"] = json_safe(
        {"version": champion_version, "metrics": champion_metrics, "note": note}
    )
    storage.put_json(bucket, metrics_key, document)

    metrics: dict[str, dict[str, float | None]] = document["metrics"]
    duration = round(time.perf_counter() - started, 3)
    RunRegistry(client("dynamodb"), settings.runs_table).update_run(
        state.run.id,
        {
            "metrics": metrics,
            "primary_metric": document["primary_metric"],
            "champion_metrics": champion_metrics,
            "champion_version": champion_version,
            "artifacts.metrics": metrics_key,
            "artifacts.plot": plot_key,
            "duration_evaluate": duration,
        },
    )
    logger.info(
        "evaluated",
        extra={
            "test": metrics["test"],
            "champion": json_safe(champion_metrics),
            "scored_here": not trained.metrics_key,
            "seconds": duration,
        },
    )
    return Evaluated(
        metrics=metrics["test"],
        champion_metrics=json_safe(champion_metrics),
        champion_version=champion_version,
        champion_note=note,
        primary_metric=document["primary_metric"],
        metrics_key=metrics_key,
        plot_key=plot_key,
    )
