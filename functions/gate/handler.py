"""Decide whether the challenger may be registered, and write the model card with the verdict.

The card is what a reviewer reads before approving, so it is rendered here, where the gate's
reasons are known; `metrics.json` gains the same decision. Only numbers are compared: the
challenger's and the champion's test metrics come in `$.evaluation`, and the card is rendered
from `metrics.json` and the run's config, so this step reads neither the data nor a model.
"""

from __future__ import annotations

import math
import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared import storage
from functions.shared.artifacts import lineage_for, load_config
from functions.shared.clients import client
from functions.shared.registry import RunRegistry
from functions.shared.settings import get_settings
from functions.shared.state import EvaluatedState, json_safe, parse_state, utc_now
from pipelines.gating import GateDecision, evaluate_gate
from pipelines.keys import CARD, run_artifact
from pipelines.model_card import CardFacts, render_model_card
from pipelines.model_config import GateConfig

logger = Logger()


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(EvaluatedState, event)
    logger.append_keys(run_id=state.run.id, dataset=state.dataset)
    return run(state)


def _numbers(metrics: dict[str, float | None] | None) -> dict[str, float] | None:
    if metrics is None:
        return None
    return {name: math.nan if value is None else value for name, value in metrics.items()}


def decide(state: EvaluatedState, primary_metric: str, gate_config: GateConfig) -> GateDecision:
    evaluation = state.evaluation
    decision = evaluate_gate(
        _numbers(evaluation.metrics) or {},
        _numbers(evaluation.champion_metrics),
        gate_config,
        primary_metric=primary_metric,
    )
    if evaluation.champion_note:
        # Without this the verdict would read as if there were no champion at all.
        decision = GateDecision(
            passed=decision.passed,
            reasons=[*decision.reasons, evaluation.champion_note],
            checks=decision.checks,
            primary_metric=decision.primary_metric,
            champion_compared=decision.champion_compared,
        )
    return decision


def run(state: EvaluatedState) -> dict[str, Any]:
    started = time.perf_counter()
    settings = get_settings()
    bucket = settings.artifacts_bucket
    prepared = state.prepared
    config = load_config(bucket, prepared.config_key, prepared.config_source)
    decision = decide(state, config.primary_metric, config.gate)

    document = storage.get_json(bucket, state.evaluation.metrics_key)
    card = render_model_card(
        CardFacts.from_document(document, config, features=prepared.features),
        lineage=lineage_for(state, settings.git_sha),
        created_at=utc_now(),
        sklearn_version=state.trained.sklearn_version,
        gate=decision,
    )
    card_key = run_artifact(state.run.id, CARD)
    storage.put_text(bucket, card_key, card, "text/markdown")
    document["gate"] = json_safe(decision.to_dict())
    storage.put_json(bucket, state.evaluation.metrics_key, document)

    result: dict[str, Any] = json_safe({**decision.to_dict(), "card_key": card_key})
    duration = round(time.perf_counter() - started, 3)
    RunRegistry(client("dynamodb"), settings.runs_table).update_run(
        state.run.id,
        {
            "gate": {key: value for key, value in result.items() if key != "card_key"},
            "artifacts.card": card_key,
            "duration_gate": duration,
        },
    )
    logger.info("gate decided", extra={"passed": decision.passed, "reasons": decision.reasons})
    return result
