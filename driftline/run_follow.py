"""`runs wait`, `runs logs`, `runs rerun` (and `upload --wait`): a run from its execution.

Human output of a wait is one line per step as it finishes, then the verdict; `--json` prints
one document at the end (progress goes to stderr only when it is a terminal). Exit codes follow
the verdict: 0 deployed, 1 a 'no' (dataset rejected, gate failed, registered but not deployed),
2 failed, timed out, stopped, or no such run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from driftline import executions
from driftline.aws import client, require_output, stack_outputs
from driftline.errors import (
    EXIT_NEGATIVE_VERDICT,
    EXIT_OK,
    DriftlineError,
    NegativeVerdict,
    UsageError,
)
from driftline.executions import Step
from driftline.output import emit, print_json, spinner
from functions.shared.datasets import DatasetRegistry
from functions.shared.errors import TransientError
from functions.shared.registry import RunRegistry
from functions.shared.state import utc_now
from pipelines.uploads import rerun_execution_name

POLL_SECONDS = 1.0
MAX_RERUNS = 100
RERUN_TRIGGER = "rerun"


def state_machine_arn(env: str, outputs: dict[str, str] | None = None) -> str:
    return require_output(outputs or stack_outputs(env), "TrainingStateMachineArn", env)


def step_line(step: Step) -> str:
    seconds = "-" if step.seconds is None else f"{step.seconds:.1f} s"
    note = step.note()
    return f"{step.name:<20} {step.status:<9} {seconds:>9}" + (f"  {note}" if note else "")


def _progress(as_json: bool) -> Callable[[Step], None] | None:
    if not as_json:
        return lambda step: print(step_line(step), flush=True)
    if sys.stderr.isatty():
        return lambda step: print(step_line(step), file=sys.stderr, flush=True)
    return None


def run_record(outputs: dict[str, str], run: str) -> dict[str, Any] | None:
    """The run's record in the Runs table, or None (no table output, no record yet)."""
    table = outputs.get("RunsTableName")
    if not table:
        return None
    try:
        return RunRegistry(client("dynamodb"), table).get_run(run)
    except (TransientError, ClientError):
        return None


def follow(
    arn: str,
    *,
    timeout: float,
    as_json: bool,
    outputs: dict[str, str] | None = None,
    appear_within: float = 0.0,
) -> dict[str, Any]:
    """Wait for the run, printing steps as they finish; the `runs wait --json` document."""
    stepfunctions = client("stepfunctions")
    printer = _progress(as_json)
    with spinner(f"run {executions.run_name(arn)}") as update:

        def on_step(step: Step) -> None:
            if printer is not None:
                printer(step)
            update(f"{step.name} {step.status}")

        description, steps = executions.wait(
            stepfunctions,
            arn,
            timeout=timeout,
            appear_within=appear_within,
            on_step=on_step,
            poll=POLL_SECONDS,
        )
    record = run_record(outputs or {}, executions.run_name(arn))
    result = executions.outcome(description, record)
    return executions.run_document(description, steps, result, record)


def summary_line(document: Mapping[str, Any]) -> str:
    seconds = document.get("seconds")
    took = f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
    return f"run {document['run']}: {document['status']}{took}; {document['reason']}"


def verdict_exit(document: Mapping[str, Any]) -> int:
    """0 for a deployed model; otherwise the verdict as one line on stderr and its exit code."""
    code = int(document["exit_code"])
    if code == EXIT_OK:
        return EXIT_OK
    message = f"run {document['run']}: {document['reason']}"
    if code == EXIT_NEGATIVE_VERDICT:
        raise NegativeVerdict(message)
    raise DriftlineError(message)


def wait_command(env: str, run: str, timeout: float, as_json: bool) -> int:
    outputs = stack_outputs(env)
    arn = executions.execution_arn(state_machine_arn(env, outputs), run)
    document = follow(arn, timeout=timeout, as_json=as_json, outputs=outputs)
    if as_json:
        print_json(document)
    else:
        print(summary_line(document))
    return verdict_exit(document)


def logs_command(env: str, run: str, step_name: str | None, as_json: bool) -> int:
    from driftline import run_logs

    stepfunctions = client("stepfunctions")
    arn = executions.execution_arn(state_machine_arn(env), run)
    description = executions.require_execution(stepfunctions, arn)
    steps = executions.steps_from_history(executions.history(stepfunctions, arn))
    with_functions = [step for step in steps if step.functions]
    if step_name is not None:
        chosen = [step for step in with_functions if step.name.lower() == step_name.lower()]
        if not chosen:
            known = ", ".join(dict.fromkeys(step.name for step in with_functions)) or "none"
            raise UsageError(
                f"run '{executions.run_name(arn)}' has no Lambda step {step_name!r} "
                f"(steps: {known})"
            )
        with_functions = chosen
    identity = run_logs.identity(executions.run_name(arn), description, steps)
    lines = run_logs.run_log_lines(
        client("logs"), run_logs.log_groups(env), with_functions, identity
    )
    if as_json:
        print_json([line.to_dict() for line in lines])
    elif not lines:
        print("(no log lines)")
    else:
        for line in lines:
            print(f"{line.time} {line.step:<16} {line.message}")
    return 0


def rerun_input(env: str, outputs: dict[str, str], original: Mapping[str, Any]) -> dict[str, Any]:
    """The start input of a new run on the original run's accepted dataset version.

    The same shape StartRun gives an upload (and the retrain function a retrain): the version's
    key as accepted (a batch's key is its prefix, so the parts come from its manifest).
    """
    name = executions.run_name(str(original["executionArn"]))
    try:
        given = json.loads(original.get("input") or "{}")
    except ValueError:
        given = {}
    dataset = given.get("dataset") if isinstance(given, dict) else None
    version_id = given.get("version_id") if isinstance(given, dict) else None
    if not dataset or not version_id:
        raise UsageError(f"run '{name}' has no dataset version in its input: nothing to rerun")
    table = require_output(outputs, "DatasetsTableName", env)
    registry = DatasetRegistry(client("dynamodb"), table)
    accepted = next(
        (item for item in registry.versions(dataset) if item.get("version_id") == version_id),
        None,
    )
    if accepted is None:
        raise UsageError(
            f"run '{name}': dataset {dataset!r} version {version_id} was not accepted "
            f"(`driftline datasets show {dataset} --version {version_id}`); upload a corrected "
            "file to start a new run"
        )
    return {
        "dataset": dataset,
        "bucket": given.get("bucket") or require_output(outputs, "DatasetsBucketName", env),
        "key": str(accepted["key"]),
        "version_id": version_id,
        "trigger": RERUN_TRIGGER,
        "requested_at": utc_now(),
    }


def start_rerun(env: str, run: str, outputs: dict[str, str]) -> dict[str, Any]:
    """Start `<dataset>-<VersionId>-rerun-<n>` with the first free n; its start document."""
    machine = state_machine_arn(env, outputs)
    stepfunctions = client("stepfunctions")
    original = executions.require_execution(stepfunctions, executions.execution_arn(machine, run))
    document = rerun_input(env, outputs, original)
    for number in range(1, MAX_RERUNS + 1):
        name = rerun_execution_name(document["dataset"], document["version_id"], number)
        try:
            response = stepfunctions.start_execution(
                stateMachineArn=machine, name=name, input=json.dumps(document)
            )
        except stepfunctions.exceptions.ExecutionAlreadyExists:
            continue
        return {
            "run": name,
            "execution_arn": response["executionArn"],
            "rerun_of": executions.run_name(str(original["executionArn"])),
            "dataset": document["dataset"],
            "version_id": document["version_id"],
            "key": document["key"],
            "input": document,
        }
    raise UsageError(
        f"dataset {document['dataset']!r} version {document['version_id']} already has "
        f"{MAX_RERUNS} reruns"
    )


def rerun_command(env: str, run: str, *, wait: bool, timeout: float, as_json: bool) -> int:
    outputs = stack_outputs(env)
    started = start_rerun(env, run, outputs)
    if not wait:
        emit(
            started,
            as_json=as_json,
            rows=[{key: started[key] for key in ("run", "rerun_of", "dataset", "version_id")}],
        )
        return 0
    if not as_json:
        print(f"started run {started['run']} (rerun of {started['rerun_of']})", flush=True)
    outcome = follow(
        str(started["execution_arn"]), timeout=timeout, as_json=as_json, outputs=outputs
    )
    if as_json:
        print_json({**started, "outcome": outcome})
    else:
        print(summary_line(outcome))
    return verdict_exit(outcome)
