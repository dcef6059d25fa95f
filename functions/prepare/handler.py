"""Create the run, resolve and check its model config, snapshot the dataset version as Parquet.

Everything that can make training impossible (a bad config, a target missing from the contract,
one class, an all-null feature) fails here, before the expensive step, with one line.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared import storage
from functions.shared.clients import client
from functions.shared.configs import resolve_model_config
from functions.shared.registry import RunRegistry
from functions.shared.settings import get_settings
from functions.shared.state import Prepared, TrainingState, parse_state, run_identity
from pipelines.keys import CONFIG, DATASET, run_artifact
from pipelines.training import prepare

logger = Logger()


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(TrainingState, event)
    logger.append_keys(run_id=state.run.id, dataset=state.dataset)
    return run(state).model_dump()


def run(state: TrainingState) -> Prepared:
    started = time.perf_counter()
    settings = get_settings()
    runs = RunRegistry(client("dynamodb"), settings.runs_table)
    run_id, validation = state.run.id, state.validation
    runs.upsert_run(
        run_id, {**run_identity(state), "status": "Running", "code_version": settings.git_sha}
    )

    resolved = resolve_model_config(
        state.dataset, validation.columns, datasets_bucket=settings.datasets_bucket
    )
    config = resolved.config
    logger.info("model config resolved", extra={"source": resolved.source})

    bucket = state.bucket or settings.datasets_bucket
    if validation.parts:
        manifest = storage.get_json(settings.artifacts_bucket, validation.manifest_key)
        frame = storage.read_parts(bucket, manifest["parts"])
    else:
        frame = storage.read_frame(bucket, validation.key, validation.version_id)
    prepared = prepare(frame, config, validation.columns)
    sizes = prepared.split.sizes()

    dataset_key = run_artifact(run_id, DATASET)
    config_key = run_artifact(run_id, CONFIG)
    storage.write_frame(settings.artifacts_bucket, dataset_key, frame)
    storage.put_text(settings.artifacts_bucket, config_key, resolved.text, "application/yaml")

    duration = round(time.perf_counter() - started, 3)
    runs.update_run(
        run_id,
        {
            "params": {
                "task": config.task,
                "target": config.target,
                "estimator": config.estimator_path,
                "estimator_params": config.estimator.params,
                "split": config.split.model_dump(),
                "metrics": list(config.metric_names),
                "features": list(prepared.features),
            },
            "config_source": resolved.source,
            "rows": len(frame),
            "split_sizes": sizes,
            "artifacts.dataset": dataset_key,
            "artifacts.config": config_key,
            "duration_prepare": duration,
        },
    )
    logger.info("prepared", extra={"rows": len(frame), "split": sizes, "seconds": duration})
    return Prepared(
        run_id=run_id,
        dataset_key=dataset_key,
        config_key=config_key,
        config_source=resolved.source,
        task=config.task,
        target=config.target,
        estimator=config.estimator_path,
        approval=config.approval,
        rows=len(frame),
        features=len(prepared.features),
        split=sizes,
    )
