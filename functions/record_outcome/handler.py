"""Record a run's final status (Succeeded, Rejected or Failed) and compose its notification.

A Succeeded run also says whether its model serves: `deployment_status` is `Deployed` (with the
endpoint) or `NotDeployed` (with `deployment_reason`, e.g. awaiting manual approval), in the run
record, the notification's subject and body, and the exit code of `driftline runs show`.

Used on all three ends of the state machine: after Register (`$.registered`), after a gate
rejection (`$.gate.passed == false`) and from the catch-all (`$.error`). A failure wins over
everything else, because a step can fail after the gate passed. The run record is created if
Prepare never got to it, so every execution leaves a run behind. Only light imports here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared.clients import client
from functions.shared.registry import RunRegistry
from functions.shared.settings import get_settings
from functions.shared.state import OutcomeState, parse_state, run_identity, utc_now

logger = Logger()

Status = Literal["Succeeded", "Rejected", "Failed"]
# (step, the state key its result lands in), in execution order.
STEPS = (
    ("Validate", "validation"),
    ("Prepare", "prepared"),
    ("Train", "trained"),
    ("Evaluate", "evaluation"),
    ("Gate", "gate"),
    ("Register", "registered"),
)


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    state = parse_state(OutcomeState, event)
    logger.append_keys(run_id=state.run.id, dataset=state.dataset)
    return run(state)


def outcome_status(state: OutcomeState) -> Status:
    if state.error is not None:
        return "Failed"
    if state.registered is not None:
        return "Succeeded"
    if state.gate is not None and not state.gate.passed:
        return "Rejected"
    # Reaching the outcome with neither is a wiring bug; record it rather than guess.
    return "Failed"


def failed_step(state: OutcomeState) -> str:
    return next((step for step, key in STEPS if getattr(state, key) is None), "Deploy")


def _metrics(values: dict[str, float | None] | None) -> str:
    if not values:
        return "none"
    return ", ".join(
        f"{name} {'n/a' if value is None else format(value, '.4f')}"
        for name, value in values.items()
    )


def cause_and_message(state: OutcomeState, status: Status) -> tuple[str, str]:
    version = state.validation.get("version_id") if state.validation else None
    header = [
        f"Driftline run {state.run.id}: {status}",
        f"Dataset: {state.dataset} (S3 version {version or state.version_id or 'unknown'})",
        f"Trigger: {state.trigger}; started {state.run.started_at}",
    ]
    evaluation = state.evaluation
    body: list[str] = []
    if evaluation is not None:
        body.append(f"Test metrics: {_metrics(evaluation.metrics)}")
        if evaluation.champion_version is not None:
            body.append(
                f"Champion v{evaluation.champion_version}: {_metrics(evaluation.champion_metrics)}"
            )
    if status == "Failed":
        step = failed_step(state)
        detail = state.error.message() if state.error else "the run ended without a result"
        cause = f"{step} failed: {detail}"
        body.insert(0, f"Cause: {cause}")
    elif status == "Rejected":
        assert state.gate is not None
        reasons = state.gate.reasons or ["no reason given"]
        cause = f"gate rejected the model: {'; '.join(reasons)}"
        body.insert(0, "The gate rejected the challenger; nothing was registered. Reasons:")
        body[1:1] = [f"- {reason}" for reason in reasons]
    else:
        assert state.registered is not None
        registered = state.registered
        cause = f"registered {registered.model} v{registered.version} ({registered.status})"
        body.insert(
            0, f"Registered: {registered.model} v{registered.version} ({registered.status})"
        )
        deployment = deployment_outcome(state)
        if deployment is not None and deployment[0] == "Deployed":
            body.insert(1, f"Deployed: {deployment[1]}")
        elif deployment is not None:
            body.insert(1, f"NOT deployed: {deployment[1]}")
            cause = f"{cause}; not deployed: {deployment[1]}"
        if registered.status == "PendingApproval":
            body.append(
                f"Approve with: driftline models approve {registered.model} "
                f"--version {registered.version}"
            )
    return cause.replace("\n", " "), "\n".join([*header, *body]) + "\n"


def deployment_outcome(state: OutcomeState) -> tuple[str, str] | None:
    """(`Deployed` | `NotDeployed`, what it means) for a registered model; None otherwise."""
    if state.registered is None or state.error is not None:
        return None
    registered, deployment = state.registered, state.deployment or {}
    if deployment.get("status") in ("Succeeded", "AlreadyLive"):
        endpoint = deployment.get("endpoint")
        where = f"the {endpoint} endpoint" if endpoint else "its dedicated endpoint"
        return "Deployed", f"{registered.model} v{registered.version} serves on {where}"
    reason = _refusal(deployment) or "the Deploy step did not report a deployment"
    return "NotDeployed", reason


def _refusal(deployment: dict[str, Any]) -> str | None:
    """The one-line reason of a caught Deploy error (`Cause` holds the Lambda error JSON)."""
    cause = deployment.get("Cause")
    if not cause:
        return None
    try:
        detail = json.loads(cause)
    except (TypeError, json.JSONDecodeError):
        return str(cause).splitlines()[0]
    message = detail.get("errorMessage") if isinstance(detail, dict) else None
    return str(message or cause).splitlines()[0]


def subject_of(status: Status, deployment: tuple[str, str] | None) -> str:
    if status == "Failed":
        return "Driftline run failed"
    if status == "Rejected":
        return "Driftline model rejected by the gate"
    if deployment is not None and deployment[0] == "Deployed":
        return "Driftline model registered and deployed"
    return "Driftline model registered, NOT deployed"


def _seconds_between(start: str, end: str) -> float | None:
    try:
        return round(
            (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3
        )
    except (ValueError, TypeError):
        return None


def run(state: OutcomeState) -> dict[str, str]:
    settings = get_settings()
    status = outcome_status(state)
    cause, message = cause_and_message(state, status)
    finished_at = utc_now()
    runs = RunRegistry(client("dynamodb"), settings.runs_table)
    identity = run_identity(state)
    if runs.get_run(state.run.id) is None:
        identity["code_version"] = settings.git_sha
    runs.upsert_run(state.run.id, identity)
    fields: dict[str, Any] = {"status": status, "finished_at": finished_at, "cause": cause}
    total = _seconds_between(state.run.started_at, finished_at)
    if total is not None:
        fields["duration_total"] = total
    if status == "Failed":
        fields["failed_step"] = failed_step(state)
    deployment = deployment_outcome(state)
    if deployment is not None:
        fields["deployment_status"], fields["deployment_reason"] = deployment
        if state.deployment and state.deployment.get("endpoint"):
            fields["endpoint"] = state.deployment["endpoint"]
    runs.update_run(state.run.id, fields)
    log = logger.error if status == "Failed" else logger.info
    log("run finished", extra={"status": status, "cause": cause, "deployment": deployment})
    return {
        "status": status,
        "message": message,
        "cause": cause,
        "subject": subject_of(status, deployment),
    }
