"""`driftline endpoints list|show|history|rollback|deploy`: what endpoints serve, and moving them.

The `live` alias is the truth about what serves; the Endpoints table is its audited history.
`show` prints both and says when they disagree (e.g. CodeDeploy rolled a canary back after
the deploy step gave up waiting). `rollback` points `live` back at the Lambda version the
current one replaced (or `--to-version`), directly: a rollback is the emergency path, so it
does not wait for a canary. `deploy` runs the pipeline's deploy step for one registered
version (the way to ship a version approved by hand under a manual approval policy).
"""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

from driftline.aws import client, require_output, stack_outputs
from driftline.commands.runs import registry_errors
from driftline.envs import add_env_action
from driftline.errors import DriftlineError, UsageError
from driftline.output import emit, principal
from functions.shared.endpoints import (
    SHARED_ENDPOINT,
    EndpointRegistry,
    EndpointTarget,
    alias_version,
    parse_endpoint_targets,
    rollback,
    rollback_shared,
)

ENDPOINTS_OUTPUT = "Endpoints"
# The deploy step may wait out a canary (up to its 15-minute timeout).
_DEPLOY_CALL = Config(read_timeout=960, connect_timeout=10, retries={"max_attempts": 0})


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "endpoints", help="list endpoints, their deployment history, roll back or deploy"
    )
    actions = parser.add_subparsers(dest="endpoints_command", required=True)

    def add(name: str, help_text: str, *, model: bool = True) -> argparse.ArgumentParser:
        action = add_env_action(actions, name, help_text, handler=run)
        if model:
            action.add_argument("--model", required=True, help="the endpoint's model name")
        return action

    add("list", "every endpoint and what its live alias serves", model=False)
    add("show", "one endpoint: live alias, current record, URL")
    history = add("history", "an endpoint's deployments and rollbacks, newest first")
    history.add_argument("--limit", type=_positive, default=20, help="at most N records (20)")
    back = add("rollback", "point live back at the previous Lambda version and record it")
    back.add_argument(
        "--to-version", metavar="LAMBDA_VERSION", help="this published Lambda version instead"
    )
    deploy = add("deploy", "deploy an Approved model version to the endpoint")
    deploy.add_argument("--version", type=_positive, required=True, help="model version")


def _positive(text: str) -> int:
    cleaned = text[1:] if text[:1] in ("v", "V") else text
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(cleaned)


def endpoint_targets(outputs: Mapping[str, str], env: str) -> dict[str, EndpointTarget]:
    """model → endpoint, from the Serving stack's `Endpoints` output."""
    text = require_output(dict(outputs), ENDPOINTS_OUTPUT, env)
    try:
        return parse_endpoint_targets(text, source=f"output {ENDPOINTS_OUTPUT} of env {env!r}")
    except ValueError as error:
        raise UsageError(str(error)) from None


def endpoint_target(outputs: Mapping[str, str], env: str, model: str) -> EndpointTarget:
    targets = endpoint_targets(outputs, env)
    if model not in targets:
        known = ", ".join(sorted(targets)) or "none"
        raise UsageError(f"unknown endpoint '{model}' in env {env!r} (endpoints: {known})")
    return targets[model]


def who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def run(args: argparse.Namespace) -> int:
    outputs = stack_outputs(args.env)
    with registry_errors():
        registry = EndpointRegistry(
            client("dynamodb"), require_output(outputs, "EndpointsTableName", args.env)
        )
        command = args.endpoints_command
        shared_url = outputs.get("SharedEndpointUrl")
        dedicated = endpoint_targets(outputs, args.env)
        if command == "list":
            rows = [
                endpoint_summary(registry, target, target.url)
                for _, target in sorted(dedicated.items())
            ]
            rows += [
                shared_summary(item, shared_url)
                for item in registry.list_current()
                if item.get("endpoint") == SHARED_ENDPOINT and item.get("model") not in dedicated
            ]
            emit(rows, as_json=args.json, rows=[human_row(row) for row in rows])
            return 0
        if args.model not in dedicated and outputs.get("SharedEndpointFunction"):
            return _run_shared(args, outputs, registry, shared_url)
        target = endpoint_target(outputs, args.env, args.model)
        if command == "show":
            document = endpoint_summary(registry, target, target.url)
            document["current"] = registry.current(args.model)
            emit(document, as_json=args.json, rows=[human_row(_without(document, "current"))])
        elif command == "history":
            records = registry.history(args.model, limit=args.limit)
            emit(records, as_json=args.json, rows=[history_row(r) for r in records])
        elif command == "rollback":
            record = rollback(
                client("lambda"),
                registry,
                target,
                env=args.env,
                by=who(),
                to_version=args.to_version,
            )
            emit(record, as_json=args.json, rows=[history_row(record)])
        else:
            result = invoke_deploy(outputs, args.env, args.model, args.version)
            emit(result, as_json=args.json)
    return 0


def _run_shared(
    args: argparse.Namespace,
    outputs: Mapping[str, str],
    registry: EndpointRegistry,
    url: str | None,
) -> int:
    """show/history/rollback/deploy of a model served by the shared endpoint."""
    command = args.endpoints_command
    if command == "show":
        current = registry.current(args.model)
        if current is None:
            raise UsageError(
                f"model {args.model} has no endpoint in env {args.env!r}: it is served by the "
                "shared endpoint once the pipeline deploys an approved version of it"
            )
        document = shared_summary(current, url) | {"current": current}
        emit(document, as_json=args.json, rows=[human_row(_without(document, "current"))])
    elif command == "history":
        records = registry.history(args.model, limit=args.limit)
        emit(records, as_json=args.json, rows=[history_row(r) for r in records])
    elif command == "rollback":
        if args.to_version is not None:
            raise UsageError(
                "--to-version names a Lambda version of a dedicated endpoint; a model on the "
                "shared endpoint rolls back to the version its current route replaced"
            )
        record = rollback_shared(registry, args.model, env=args.env, by=who())
        emit(record, as_json=args.json, rows=[history_row(record)])
    else:
        emit(invoke_deploy(outputs, args.env, args.model, args.version), as_json=args.json)
    return 0


def shared_summary(current: Mapping[str, Any], url: str | None) -> dict[str, Any]:
    """A shared-endpoint model's row: its route is the registry record itself."""
    model = str(current.get("model"))
    return {
        "model": model,
        "function": current.get("function_name"),
        "live_version": "shared",
        "model_version": current.get("model_version"),
        "deployed_at": current.get("deployed_at"),
        "deployed_by": current.get("deployed_by"),
        "in_sync": True,
        "url": f"{url.rstrip('/')}/models/{model}" if url else None,
        **(
            {
                "canary_version": current["canary_model_version"],
                "canary_weight": current.get("canary_weight"),
            }
            if current.get("canary_model_version") is not None
            else {}
        ),
    }


def endpoint_summary(
    registry: EndpointRegistry, target: EndpointTarget, url: str | None
) -> dict[str, Any]:
    live = alias_version(client("lambda"), target)
    current = registry.current(target.model) or {}
    recorded = current.get("lambda_version")
    return {
        "model": target.model,
        "function": target.function_name,
        "live_version": live,
        "model_version": current.get("model_version") if recorded == live else None,
        "deployed_at": current.get("deployed_at"),
        "deployed_by": current.get("deployed_by"),
        "in_sync": recorded == live if recorded is not None else None,
        "url": url,
    }


def history_row(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "at": record.get("recorded_at"),
        "action": record.get("action"),
        "status": record.get("status"),
        "model_version": record.get("model_version"),
        "lambda_version": record.get("lambda_version"),
        "previous": record.get("previous_version"),
        "shift": record.get("shift"),
        "by": principal(record.get("deployed_by")),
    }


def human_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A summary row for a person: who deployed it as a short name, not an ARN."""
    return {**row, "deployed_by": principal(row.get("deployed_by"))}


def _without(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != key}


def deploy_client() -> Any:
    return boto3.session.Session().client("lambda", config=_DEPLOY_CALL)


def invoke_deploy(outputs: Mapping[str, str], env: str, model: str, version: int) -> Any:
    """Run the deploy step for one version; its refusal or failure is one line.

    Its own client (same standard chain as `driftline.aws.client`): the step may wait out a
    canary for minutes, and a retried invoke would start a second deployment.
    """
    function = require_output(dict(outputs), "DeployFunctionName", env)
    request = {"registered": {"model": model, "version": version}, "requested_by": who()}
    response = deploy_client().invoke(FunctionName=function, Payload=json.dumps(request))
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        detail = payload if isinstance(payload, dict) else {"errorMessage": str(payload)}
        kind = str(detail.get("errorType", "Error"))
        message = str(detail.get("errorMessage", "")).splitlines()[0] if detail else ""
        if kind in ("DeploymentRefused", "DeployInputError"):
            raise UsageError(f"deploy refused: {message}")
        raise DriftlineError(f"deploy of {model} v{version} failed: {kind}: {message}")
    return payload
