"""The CloudWatch Logs lines of one run's Lambda steps.

The execution history names each step's function (`LambdaFunctionScheduled`) and when the step
ran; the function's log group holds the invocations, each framed by Lambda's
`START RequestId: <id>` … `REPORT RequestId: <id>` lines. An invocation belongs to the run when
one of its structured (Powertools) lines carries the run's identity: `run_id` = the execution
name, the dataset `version_id` (Validate, ListParts, MergeParts log that), or the registered
`model` + `model_version` (Deploy). An invocation in the step's time window whose lines name no
run at all (an init failure, a crash before logging) is kept too; one that names another run
is not, so two runs of one function at the same time stay apart.

The log group comes from the function's `LoggingConfig` when the Lambda API reports it, else
from the stack templates (`LoggingConfig.LogGroup` → the log group's physical id), else
Lambda's default `/aws/lambda/<function>`. The local twin writes every invocation's output to
that log group with the same framing (`driftline/twin/adapters/lambdas.py`, `LambdaRunner`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from driftline.aws import STACK_PARTS, client, stack_name
from driftline.executions import Step

# Lines are stamped when written; the twin ships an invocation's lines when it ends.
WINDOW_BEFORE_MS = 2_000
WINDOW_AFTER_MS = 10_000
MAX_PAGES = 1_000
_START = re.compile(r"^START RequestId: (\S+)")
_END = re.compile(r"^REPORT RequestId: (\S+)")


@dataclass(frozen=True)
class LogLine:
    step: str
    request_id: str | None
    timestamp: int
    stream: str
    message: str

    @property
    def time(self) -> str:
        moment = datetime.fromtimestamp(self.timestamp / 1000, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "request_id": self.request_id,
            "time": self.time,
            "stream": self.stream,
            "message": self.message,
        }


@dataclass(frozen=True)
class RunIdentity:
    """What a log line of this run may carry: its name, dataset version, registered model."""

    run: str
    version_id: str | None = None
    model: str | None = None
    model_version: int | None = None

    def verdict(self, message: str) -> bool | None:
        """True: the line names this run; False: it names another run; None: it names none."""
        document = _json_object(message)
        if document is None:
            return True if self.run in message else None
        named = False
        if "run_id" in document:
            if document["run_id"] == self.run:
                return True
            named = True
        if "version_id" in document:
            if self.version_id is not None and document["version_id"] == self.version_id:
                return True
            named = True
        if "model_version" in document and "model" in document:
            if (document["model"], document["model_version"]) == (self.model, self.model_version):
                return True
            named = True
        return False if named else None


def _json_object(message: str) -> dict[str, Any] | None:
    text = message.strip()
    if not text.startswith("{"):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def identity(run: str, execution: Mapping[str, Any], steps: Sequence[Step]) -> RunIdentity:
    """The run's markers from the execution input and the Register step's result."""
    try:
        given = json.loads(execution.get("input") or "{}")
    except ValueError:
        given = {}
    registered: Mapping[str, Any] = {}
    for step in steps:
        candidate = (step.output or {}).get("registered")
        if isinstance(candidate, Mapping):
            registered = candidate
    version = registered.get("version")
    version_id = given.get("version_id") if isinstance(given, dict) else None
    return RunIdentity(
        run=run,
        version_id=str(version_id) if version_id else None,
        model=str(registered["model"]) if registered.get("model") else None,
        model_version=int(version) if isinstance(version, int) else None,
    )


def function_name(resource: str) -> str:
    """`arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]` → `<name>`."""
    parts = resource.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6]
    return resource


@dataclass
class LogGroups:
    """Function name → log group, looked up once per function."""

    env: str
    lambda_client: Any
    cloudformation: Any
    _known: dict[str, str] = field(default_factory=dict)
    _from_templates: dict[str, str] | None = None

    def of(self, function: str) -> str:
        if function not in self._known:
            self._known[function] = (
                self._configured(function)
                or self._templates().get(function)
                or f"/aws/lambda/{function}"
            )
        return self._known[function]

    def _configured(self, function: str) -> str | None:
        try:
            configuration = self.lambda_client.get_function_configuration(FunctionName=function)
        except ClientError:
            return None
        group = (configuration.get("LoggingConfig") or {}).get("LogGroup")
        return str(group) if group else None

    def _templates(self) -> dict[str, str]:
        if self._from_templates is None:
            self._from_templates = {}
            for part in STACK_PARTS:
                self._from_templates.update(self._stack_groups(stack_name(self.env, part)))
        return self._from_templates

    def _stack_groups(self, stack: str) -> dict[str, str]:
        try:
            body = self.cloudformation.get_template(StackName=stack)["TemplateBody"]
            physical: dict[str, str] = {}
            paginator = self.cloudformation.get_paginator("list_stack_resources")
            for page in paginator.paginate(StackName=stack):
                for resource in page["StackResourceSummaries"]:
                    if resource.get("PhysicalResourceId"):
                        physical[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
        except ClientError:
            return {}
        template = json.loads(body) if isinstance(body, str) else body
        groups: dict[str, str] = {}
        for logical, resource in (template.get("Resources") or {}).items():
            if resource.get("Type") != "AWS::Lambda::Function" or logical not in physical:
                continue
            group = ((resource.get("Properties") or {}).get("LoggingConfig") or {}).get("LogGroup")
            if isinstance(group, Mapping) and group.get("Ref") in physical:
                groups[physical[logical]] = physical[str(group["Ref"])]
            elif isinstance(group, str):
                groups[physical[logical]] = group
        return groups


def _events(logs: Any, group: str, start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
    arguments: dict[str, Any] = {
        "logGroupName": group,
        "startTime": start_ms,
        "endTime": end_ms,
    }
    # A page may be empty and still carry a token (the search goes on): follow tokens only.
    for _ in range(MAX_PAGES):
        try:
            page = logs.filter_log_events(**arguments)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return
            raise
        yield from page.get("events", [])
        token = page.get("nextToken")
        if not token or token == arguments.get("nextToken"):
            return
        arguments["nextToken"] = token


@dataclass
class _Invocation:
    request_id: str | None
    stream: str
    lines: list[dict[str, Any]] = field(default_factory=list)


def invocations(events: Iterable[Mapping[str, Any]]) -> list[_Invocation]:
    """Log events → invocations: per stream, START … REPORT of one request id."""
    by_stream: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_stream.setdefault(str(event.get("logStreamName", "")), []).append(event)
    found: list[_Invocation] = []
    for stream, stream_events in by_stream.items():
        current: _Invocation | None = None
        for event in sorted(stream_events, key=lambda e: (e["timestamp"], e.get("eventId", ""))):
            message = str(event.get("message", "")).rstrip("\n")
            started = _START.match(message)
            if started or current is None:
                current = _Invocation(started.group(1) if started else None, stream)
                found.append(current)
            current.lines.append({"timestamp": int(event["timestamp"]), "message": message})
            if _END.match(message):
                current = None
    return found


def _belongs(invocation: _Invocation, run: RunIdentity) -> bool:
    """Names this run; or, a whole invocation (from its START line), names no other run."""
    verdicts = {run.verdict(line["message"]) for line in invocation.lines}
    if True in verdicts:
        return True
    return invocation.request_id is not None and False not in verdicts


def run_log_lines(
    logs: Any,
    groups: LogGroups,
    steps: Sequence[Step],
    run: RunIdentity,
    *,
    now: datetime | None = None,
) -> list[LogLine]:
    """Every log line of the run's Lambda invocations, step by step, in time order."""
    lines: list[LogLine] = []
    seen: set[tuple[str, str | None]] = set()
    end_of_time = now or datetime.now(UTC)
    for step in steps:
        start_ms = int(step.entered.timestamp() * 1000) - WINDOW_BEFORE_MS
        end_ms = int((step.exited or end_of_time).timestamp() * 1000) + WINDOW_AFTER_MS
        for resource in step.functions:
            group = groups.of(function_name(resource))
            for invocation in invocations(_events(logs, group, start_ms, end_ms)):
                key = (invocation.stream, invocation.request_id)
                if key in seen or not _belongs(invocation, run):
                    continue
                if invocation.request_id is not None:
                    seen.add(key)
                lines.extend(
                    LogLine(
                        step=step.name,
                        request_id=invocation.request_id,
                        timestamp=line["timestamp"],
                        stream=invocation.stream,
                        message=line["message"],
                    )
                    for line in invocation.lines
                )
    return lines


def log_groups(env: str) -> LogGroups:
    return LogGroups(env, client("lambda"), client("cloudformation"))
