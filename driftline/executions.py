"""A run as Step Functions sees it: its steps from the execution history, and its verdict.

A run id is the execution name (`<dataset>-<VersionId>`, see `pipelines.uploads`), so the
execution ARN follows from the state machine ARN in the stack outputs. `runs wait`, `runs logs`,
`runs rerun` and `upload --wait` read everything from `describe_execution` and
`get_execution_history`, which exist for every run, including a rejected upload that never got
a run record.

The verdict is read from the execution's end state and output, generically: the run record's
`deployment_status`/`deployment_reason` when the outcome step wrote them, else the Deploy
step's result (`$.deployment`), which may be a status document or a caught error
(`{"Error", "Cause"}`); what counts as deployed is its `deployed` flag when it has one, else
its status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from driftline.errors import EXIT_NEGATIVE_VERDICT, EXIT_OK, EXIT_UNUSABLE_INPUT, UsageError

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
# State types shown as steps: the work (Lambda tasks, SDK tasks, maps), not the plumbing.
STEP_TYPES = ("Task", "Map", "Parallel")
# Fail states of the training state machine that are verdicts, not breakage.
NEGATIVE_ERRORS: Mapping[str, str] = {
    "DatasetRejected": "dataset rejected",
    "GateRejected": "gate failed",
}
# Deploy statuses that mean the model answers on its endpoint (compared case-insensitively).
DEPLOYED_STATUSES = frozenset({"succeeded", "alreadylive", "deployed", "live"})
# Where each step leaves its result in the execution state, for a one-line note per step.
RESULT_PATHS: Mapping[str, str] = {
    "Validate": "validation",
    "ListParts": "validation",
    "MergeParts": "validation",
    "Prepare": "prepared",
    "Train": "trained",
    "CollectTraining": "trained",
    "Evaluate": "evaluation",
    "Gate": "gate",
    "Register": "registered",
    "Deploy": "deployment",
}

Verdict = Literal[
    "deployed",
    "not_deployed",
    "rejected",
    "gate_failed",
    "ignored",
    "failed",
    "timed_out",
    "aborted",
    "running",
]


def execution_arn(state_machine_arn: str, run: str) -> str:
    """The execution ARN of run `run` (an execution name, or already an execution ARN)."""
    if run.startswith("arn:"):
        return run
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{run}"


def run_name(arn_or_name: str) -> str:
    return arn_or_name.rsplit(":", 1)[-1]


def describe(stepfunctions: Any, arn: str) -> dict[str, Any] | None:
    """`describe_execution`, or None when there is no such execution (yet)."""
    try:
        description: dict[str, Any] = stepfunctions.describe_execution(executionArn=arn)
    except stepfunctions.exceptions.ExecutionDoesNotExist:
        return None
    return description


def require_execution(stepfunctions: Any, arn: str) -> dict[str, Any]:
    description = describe(stepfunctions, arn)
    if description is None:
        raise UsageError(f"unknown run '{run_name(arn)}': no execution {arn}")
    return description


def history(stepfunctions: Any, arn: str) -> list[dict[str, Any]]:
    """Every event of the execution, oldest first."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = stepfunctions.get_execution_history(
            executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            return events


def _seconds(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping):
            return value
    return {}


@dataclass
class Step:
    """One Task/Map state the execution entered: its timing, outcome and Lambda invocations."""

    name: str
    state_type: str
    entered: datetime
    exited: datetime | None = None
    status: str = "running"
    attempts: int = 0
    error: str | None = None
    cause: str | None = None
    output: dict[str, Any] | None = None
    functions: list[str] = field(default_factory=list)
    last_event_id: int = 0

    @property
    def seconds(self) -> float | None:
        return None if self.exited is None else _seconds(self.entered, self.exited)

    @property
    def finished(self) -> bool:
        return self.exited is not None

    def note(self) -> str | None:
        if self.error is not None:
            return f"{self.error}: {one_line(self.cause or '')}".rstrip(": ")
        return step_note(self.name, self.output)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "type": self.state_type,
            "status": self.status,
            "started_at": _iso(self.entered),
            "finished_at": _iso(self.exited),
            "seconds": self.seconds,
            "attempts": self.attempts,
            "error": self.error,
            "cause": self.cause,
            "note": self.note(),
            "functions": list(self.functions),
        }


def one_line(text: str, limit: int = 2000) -> str:
    """A cause on one line: a Lambda error's JSON becomes `errorType: errorMessage`."""
    try:
        document = json.loads(text)
    except (ValueError, TypeError):
        document = None
    if isinstance(document, Mapping) and document.get("errorMessage"):
        text = f"{document.get('errorType') or 'Error'}: {document['errorMessage']}"
    first = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    return first[:limit]


def steps_from_history(events: Iterable[Mapping[str, Any]]) -> list[Step]:
    """The Task/Map states in the order they were entered, each with how it ended."""
    steps: list[Step] = []
    open_steps: dict[str, Step] = {}
    current: Step | None = None
    for event in events:
        kind = str(event.get("type", ""))
        stamp = event["timestamp"]
        details = _details(event)
        if kind.endswith("StateEntered"):
            state_type = kind.removesuffix("StateEntered")
            if state_type in STEP_TYPES:
                current = Step(name=str(details.get("name")), state_type=state_type, entered=stamp)
                steps.append(current)
                open_steps[current.name] = current
            else:
                current = None
            continue
        if kind.endswith("StateExited"):
            step = open_steps.pop(str(details.get("name")), None)
            if step is not None:
                step.exited = stamp
                step.last_event_id = int(event.get("id", 0))
                output = _json(details.get("output"))
                step.output = output if isinstance(output, dict) else None
                if step.status == "running":
                    step.status = "succeeded"
            current = None
            continue
        if kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            for step in open_steps.values():
                if step.status == "running":
                    step.status = "stopped"  # the execution ended while the step ran
            continue
        if current is None:
            continue
        if kind in ("LambdaFunctionScheduled", "TaskScheduled", "MapRunStarted"):
            current.attempts += 1
            resource = str(details.get("resource", ""))
            if kind == "LambdaFunctionScheduled" and resource not in current.functions:
                current.functions.append(resource)
        elif kind.endswith(("Failed", "TimedOut", "Aborted")) and not kind.startswith("Execution"):
            current.status = "failed"
            current.error = str(details.get("error") or kind)
            current.cause = str(details.get("cause") or "") or None
        elif kind.endswith("Succeeded") and not kind.startswith("Execution"):
            current.status = "succeeded"
            current.error = current.cause = None
    for step in steps:
        if step.exited is not None and step.error is not None:
            step.status = "caught"  # failed, and a Catch took the run elsewhere
    return steps


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def step_note(name: str, state: Mapping[str, Any] | None) -> str | None:
    """A few words from the step's own result in the state it left behind."""
    path = RESULT_PATHS.get(name)
    result = (state or {}).get(path) if path else None
    if not isinstance(result, Mapping):
        return None
    if path == "validation":
        rows = result.get("rows")
        return " ".join(
            part for part in (str(result.get("status", "")), f"{rows} rows" if rows else "") if part
        )
    if path == "prepared":
        return f"{result.get('rows')} rows, {result.get('features')} features"
    if path == "evaluation":
        metric = result.get("primary_metric")
        value = (result.get("metrics") or {}).get(metric) if metric else None
        return f"{metric}={value:.4f}" if isinstance(value, (int, float)) else None
    if path == "gate":
        if result.get("passed"):
            return "passed"
        return "failed: " + "; ".join(str(reason) for reason in result.get("reasons") or [])
    if path == "registered":
        return f"{result.get('model')} v{result.get('version')} {result.get('status')}"
    if path == "deployment":
        outcome = deployment_outcome(result)
        return f"{outcome['status']}" + (f": {outcome['reason']}" if outcome["reason"] else "")
    return None


def deployment_outcome(deployment: Any) -> dict[str, Any]:
    """Status + reason of `$.deployment`, whatever shape the Deploy step gave it.

    A caught error (`{"Error", "Cause"}`) is not deployed, with the error's message as the
    reason; a result document is deployed when its `deployed` flag says so, else when its
    `status` is one of DEPLOYED_STATUSES.
    """
    if not isinstance(deployment, Mapping):
        return {"deployed": False, "status": "unknown", "reason": None, "detail": deployment}
    if "Error" in deployment:
        cause = one_line(str(deployment.get("Cause") or ""))
        return {
            "deployed": False,
            "status": str(deployment["Error"]),
            "reason": cause or None,
            "detail": dict(deployment),
        }
    status = str(deployment.get("status") or deployment.get("Status") or "unknown")
    flag = deployment.get("deployed")
    deployed = flag if isinstance(flag, bool) else status.lower() in DEPLOYED_STATUSES
    reason = next(
        (
            str(deployment[key])
            for key in ("reason", "message", "cause")
            if isinstance(deployment.get(key), str) and deployment.get(key)
        ),
        None,
    )
    return {"deployed": deployed, "status": status, "reason": reason, "detail": dict(deployment)}


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str
    exit_code: int


def recorded_deployment(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The run record's own conclusion (`deployment_status` + `deployment_reason`), if any."""
    status = (record or {}).get("deployment_status")
    if not status:
        return None
    assert record is not None
    reason = record.get("deployment_reason")
    return {
        "deployed": str(status).lower() in DEPLOYED_STATUSES,
        "status": str(status),
        "reason": str(reason) if reason else None,
        "detail": {
            key: record[key]
            for key in ("deployment_status", "deployment_reason", "endpoint")
            if key in record
        },
    }


def deployment_of(
    state: Mapping[str, Any], record: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The run record's deployment verdict when it has one, else the Deploy step's result."""
    recorded = recorded_deployment(record)
    if recorded is not None:
        return recorded
    return deployment_outcome(state["deployment"]) if "deployment" in state else None


def outcome(description: Mapping[str, Any], record: Mapping[str, Any] | None = None) -> Outcome:
    """What an execution's end means for the user: deployed (0), a 'no' (1), or broken (2).

    `record` is the run's record in the Runs table, when there is one: its deployment status
    (written by the outcome step) wins over reading `$.deployment` here.
    """
    status = str(description.get("status"))
    if status == "RUNNING":
        return Outcome("running", "still running", EXIT_UNUSABLE_INPUT)
    if status == "TIMED_OUT":
        return Outcome("timed_out", "the execution timed out", EXIT_UNUSABLE_INPUT)
    if status == "ABORTED":
        return Outcome("aborted", "the execution was stopped", EXIT_UNUSABLE_INPUT)
    if status == "FAILED":
        error = str(description.get("error") or "Failed")
        cause = one_line(str(description.get("cause") or "")) or "no cause given"
        if error in NEGATIVE_ERRORS:
            verdict: Verdict = "rejected" if error == "DatasetRejected" else "gate_failed"
            return Outcome(verdict, f"{NEGATIVE_ERRORS[error]}: {cause}", EXIT_NEGATIVE_VERDICT)
        return Outcome("failed", f"{error}: {cause}", EXIT_UNUSABLE_INPUT)
    output = _json(description.get("output"))
    state: Mapping[str, Any] = output if isinstance(output, Mapping) else {}
    validation = state.get("validation")
    if isinstance(validation, Mapping) and validation.get("status") == "ignored":
        key = validation.get("key") or state.get("key")
        return Outcome("ignored", f"the upload {key} is not a dataset file", EXIT_UNUSABLE_INPUT)
    registered = state.get("registered")
    model = (
        f"{registered.get('model')} v{registered.get('version')}"
        if isinstance(registered, Mapping)
        else "the model"
    )
    deployed = deployment_of(state, record)
    if deployed is None:
        return Outcome("not_deployed", f"registered {model}; no deployment", EXIT_NEGATIVE_VERDICT)
    detail = f" ({deployed['reason']})" if deployed["reason"] else ""
    if deployed["deployed"]:
        return Outcome("deployed", f"deployed {model}: {deployed['status']}{detail}", EXIT_OK)
    return Outcome(
        "not_deployed",
        f"registered {model}, not deployed: {deployed['status']}{detail}",
        EXIT_NEGATIVE_VERDICT,
    )


def run_document(
    description: Mapping[str, Any],
    steps: Sequence[Step],
    result: Outcome,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The one JSON document `runs wait --json` prints."""
    output = _json(description.get("output"))
    state: Mapping[str, Any] = output if isinstance(output, Mapping) else {}
    start_input = _json(description.get("input"))
    given: Mapping[str, Any] = start_input if isinstance(start_input, Mapping) else {}
    started, stopped = description.get("startDate"), description.get("stopDate")
    return {
        "run": description.get("name") or run_name(str(description.get("executionArn"))),
        "execution_arn": description.get("executionArn"),
        "status": description.get("status"),
        "verdict": result.verdict,
        "reason": result.reason,
        "exit_code": result.exit_code,
        "dataset": given.get("dataset"),
        "version_id": given.get("version_id"),
        "trigger": given.get("trigger"),
        "started_at": _iso(started) if isinstance(started, datetime) else started,
        "stopped_at": _iso(stopped) if isinstance(stopped, datetime) else stopped,
        "seconds": _seconds(started, stopped)
        if isinstance(started, datetime) and isinstance(stopped, datetime)
        else None,
        "error": description.get("error"),
        "cause": description.get("cause"),
        "steps": [step.to_dict() for step in steps],
        "registered": state.get("registered"),
        "deployment": deployment_of(state, record),
        "run_status": (record or {}).get("status"),
    }


def wait(
    stepfunctions: Any,
    arn: str,
    *,
    timeout: float,
    appear_within: float = 0.0,
    on_step: Callable[[Step], None] | None = None,
    poll: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any], list[Step]]:
    """Poll until the execution ends, calling `on_step` once per finished step, in order.

    An execution that does not exist yet is waited for up to `appear_within` seconds (an
    upload's event reaches the starter a moment later); one that is still missing then, or
    still running at `timeout`, is a UsageError.
    """
    started = clock()
    deadline = started + timeout
    reported = 0
    description: dict[str, Any] | None = None
    while True:
        description = describe(stepfunctions, arn)
        if description is None and clock() - started >= min(appear_within, timeout):
            raise UsageError(f"unknown run '{run_name(arn)}': no execution {arn}")
        if description is not None:
            finished = description["status"] in TERMINAL
            steps = steps_from_history(history(stepfunctions, arn))
            # Report in entry order; a step that has not finished holds back the ones after it.
            while reported < len(steps) and (finished or steps[reported].finished):
                if on_step is not None:
                    on_step(steps[reported])
                reported += 1
            if finished:
                return description, steps
        if clock() >= deadline:
            break
        sleep(poll)
    assert description is not None
    raise UsageError(
        f"run '{run_name(arn)}' is still {description['status']} after {timeout:g} s "
        "(wait again with a larger --timeout)"
    )
