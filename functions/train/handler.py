"""Fit the configured estimator, score it once, and store `model.zip`, `metrics.json` and the plot.

The archive carries its metrics and lineage (dataset, S3 VersionId, manifest hash, code
version), so a registered model explains where it came from without the registry. The metrics
come from scoring every split here, where the fitted model and the prepared data are already in
memory (one `predict_proba` per split for a classifier): Evaluate adds the champion's score to
the `metrics.json` written here and Gate renders the card from it, so neither reloads the model
or the data to score the challenger again.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared import storage
from functions.shared.artifacts import lineage_for, load_run_data
from functions.shared.clients import client
from functions.shared.registry import RunRegistry
from functions.shared.settings import get_settings
from functions.shared.state import PreparedState, Trained, json_safe, parse_state, utc_now
from pipelines.keys import METRICS, MODEL, PLOT, run_artifact
from pipelines.model_card import metrics_document, render_evaluation_plot
from pipelines.model_io import dump_model, metadata_for_run
from pipelines.training import TrainingRun, evaluate, train

logger = Logger()


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(PreparedState, event)
    logger.append_keys(run_id=state.run.id, dataset=state.dataset)
    return run(state).model_dump()


def run(state: PreparedState) -> Trained:
    started = time.perf_counter()
    settings = get_settings()
    prepared = state.prepared
    data = load_run_data(
        settings.artifacts_bucket,
        dataset_key=prepared.dataset_key,
        config_key=prepared.config_key,
        config_source=prepared.config_source,
        columns=state.validation.columns,
    )
    model = train(data.prepared, data.config)
    evaluation = evaluate(model, data.prepared, data.config)
    training_run = TrainingRun(
        config=data.config, prepared=data.prepared, model=model, evaluation=evaluation
    )
    metadata = metadata_for_run(
        training_run, created_at=utc_now(), lineage=lineage_for(state, settings.git_sha)
    )
    bucket = settings.artifacts_bucket
    model_key = run_artifact(state.run.id, MODEL)
    metrics_key, plot_key = run_artifact(state.run.id, METRICS), run_artifact(state.run.id, PLOT)
    storage.put_bytes(bucket, model_key, dump_model(model, metadata), "application/zip")
    storage.put_json(bucket, metrics_key, json_safe(metrics_document(training_run)))
    plot = render_evaluation_plot(evaluation, title=state.dataset)
    storage.put_bytes(bucket, plot_key, plot, "image/png")

    duration = round(time.perf_counter() - started, 3)
    RunRegistry(client("dynamodb"), settings.runs_table).update_run(
        state.run.id,
        {
            "sklearn_version": metadata.sklearn_version,
            "artifacts.model": model_key,
            "duration_train": duration,
        },
    )
    logger.info("trained", extra={"estimator": metadata.estimator, "seconds": duration})
    return Trained(
        model_key=model_key,
        sklearn_version=metadata.sklearn_version,
        metrics_key=metrics_key,
        plot_key=plot_key,
    )
