"""The parts of the execution state the training handlers read, as small pydantic models.

Each LambdaInvoke passes the whole state and stores the handler's return value at its result
path (`$.prepared`, `$.trained`, ...), so a handler parses only the fields it needs and
ignores the rest; a missing or malformed field is one line naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.shared.errors import PipelineInputError
from functions.shared.settings import first_problem

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
RUN_ID_PATTERN = r"^[^/\s]{1,80}$"


class StepState(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RunRef(StepState):
    id: str = Field(pattern=RUN_ID_PATTERN)
    execution_arn: str = ""
    started_at: str = Field(min_length=1)


class Accepted(StepState):
    """`$.validation` of an accepted upload."""

    status: Literal["accepted"]
    dataset: str = Field(pattern=NAME_PATTERN)
    version_id: str = Field(min_length=1)
    key: str = Field(min_length=1)
    manifest_key: str = ""
    manifest_sha256: str = ""
    columns: dict[str, str] = Field(min_length=1)
    rows: int = Field(ge=0)
    contract_hash: str = ""
    format: str = ""
    parts: int = Field(default=0, ge=0)  # > 0: a multi-part batch; its manifest lists the parts


class Prepared(StepState):
    """`$.prepared`, written by the Prepare handler."""

    run_id: str
    dataset_key: str
    config_key: str
    config_source: str
    task: str
    target: str
    estimator: str
    approval: str
    rows: int
    features: int
    split: dict[str, int]


class Trained(StepState):
    model_key: str
    sklearn_version: str
    # Written by a training step that scored the model it fitted (the Lambda backend): the
    # challenger's `metrics.json` and plot. Without them Evaluate scores the challenger itself.
    metrics_key: str | None = None
    plot_key: str | None = None


class Evaluated(StepState):
    metrics: dict[str, float | None]
    champion_metrics: dict[str, float | None] | None = None
    champion_version: int | None = None
    champion_note: str | None = None
    primary_metric: str
    metrics_key: str
    plot_key: str


class GateResult(StepState):
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    card_key: str | None = None


class Registered(StepState):
    model: str
    version: int
    status: str
    model_key: str


class Failure(StepState):
    """`$.error` from a Catch: Cause is the Lambda error as a JSON string (or plain text)."""

    Error: str = "Unknown"
    Cause: str = ""

    def message(self) -> str:
        """The error's message on one line, without the stack trace."""
        try:
            detail = json.loads(self.Cause)
        except ValueError:
            detail = None
        if isinstance(detail, dict) and detail.get("errorMessage"):
            text = str(detail["errorMessage"])
            error_type = str(detail.get("errorType") or self.Error)
        else:
            text, error_type = self.Cause or "no cause given", self.Error
        first = next((line.strip() for line in text.splitlines() if line.strip()), text)
        return f"{error_type}: {first}"[:500]


class StartInput(StepState):
    """The execution input (from start_run) plus `$.run` (from the StartRunRecord Pass)."""

    dataset: str = Field(pattern=NAME_PATTERN)
    bucket: str = ""
    key: str = ""
    version_id: str = ""
    trigger: str = "manual"
    requested_at: str | None = None
    run: RunRef


class TrainingState(StartInput):
    validation: Accepted


class PreparedState(TrainingState):
    prepared: Prepared


class TrainedState(PreparedState):
    trained: Trained


class EvaluatedState(TrainedState):
    evaluation: Evaluated


class GatedState(EvaluatedState):
    gate: GateResult


class OutcomeState(StartInput):
    """What record_outcome sees: anything from just `$.run` to a registered model."""

    validation: dict[str, Any] | None = None
    prepared: Prepared | None = None
    trained: Trained | None = None
    evaluation: Evaluated | None = None
    gate: GateResult | None = None
    registered: Registered | None = None
    # The Deploy step's result, or the Error/Cause of its refusal (caught, the run goes on).
    deployment: dict[str, Any] | None = None
    error: Failure | None = None


StateT = TypeVar("StateT", bound=StepState)


def parse_state(model: type[StateT], event: Mapping[str, Any]) -> StateT:
    """Validate the event, or raise one line naming the first bad field."""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        problem = first_problem(exc)
        more = f" (and {problem.more} more)" if problem.more else ""
        where = problem.where or "<state>"
        raise PipelineInputError(f"state field $.{where}: {problem.message}{more}") from None


def utc_now() -> str:
    """An ISO 8601 UTC timestamp like Step Functions writes (`...Z`), sortable as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_identity(state: StartInput) -> dict[str, Any]:
    """The attributes that identify a run; written by whichever handler sees it first.

    The validated key and VersionId win over the execution input's, and the manifest hash is
    known only once Validate has run (record_outcome may see a run that never got that far).
    """
    validation: Mapping[str, Any] = {}
    if isinstance(state, TrainingState):
        validation = state.validation.model_dump()
    elif isinstance(state, OutcomeState) and state.validation:
        validation = state.validation
    fields: dict[str, Any] = {
        "dataset": state.dataset,
        "trigger": state.trigger,
        "started_at": state.run.started_at,
        "execution_arn": state.run.execution_arn,
        "dataset_key": str(validation.get("key") or state.key),
        "dataset_version_id": str(validation.get("version_id") or state.version_id),
    }
    for name in ("manifest_sha256", "contract_hash"):
        if validation.get(name):
            fields[name] = str(validation[name])
    if state.requested_at:
        fields["requested_at"] = state.requested_at
    return fields


def json_safe(value: Any) -> Any:
    """NaN and infinities to None, recursively: Step Functions accepts only strict JSON."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
