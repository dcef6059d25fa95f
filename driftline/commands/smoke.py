"""`driftline smoke --env ENV [--json] [--fresh-twin]`: is a deployed env alive and wired?

The delivery pipeline runs it after each stage deploys (`make smoke ENV=<env>`, under a role of
the env's account), and it runs the same way against the twin. Checks, in order:

- stacks: the four `Driftline-<env>-*` stacks exist and are in a `*_COMPLETE` state;
- outputs: the outputs the CLI and the loop depend on are there;
- state machine: the training state machine is ACTIVE;
- drift monitor: invoking it as its schedule does (`{"trigger": "schedule"}`) returns without a
  function error (it checks every deployed model, or none on a fresh env);
- each endpoint's `live` alias and the shared endpoint answer a health probe: `{"rows": [{}]}`
  must come back as the endpoint's own refusal (400 naming a missing feature once a model is
  deployed, which proves the model bundle loaded; 503 while none is; 404 from the shared
  endpoint for an unknown model), never a function error or another 5xx.

Nothing is written except what a scheduled drift check writes anyway. Exit 0 when every check
passes, 1 when one fails, 2 when the env cannot be reached at all.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from driftline.aws import STACK_PARTS, client, stack_name
from driftline.connect import environment
from driftline.errors import EXIT_NEGATIVE_VERDICT, EXIT_OK, UsageError
from driftline.output import emit
from functions.shared.endpoints import LIVE_ALIAS

REQUIRED_OUTPUTS: tuple[str, ...] = (
    "DatasetsBucketName",
    "ArtifactsBucketName",
    "ModelsTableName",
    "AlertsTopicArn",
    "TrainingStateMachineArn",
    "DriftMonitorFunctionName",
    "DeployFunctionName",
)
PROBE: dict[str, Any] = {"rows": [{}]}
SHARED_PROBE_MODEL = "driftline-smoke-probe"
# The endpoint's own answers to the probe: a refused row, no model yet, unknown model.
HEALTHY_PROBE_STATUSES = frozenset({400, 404, 503})


@dataclass(frozen=True)
class Check:
    check: str
    ok: bool
    detail: str


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "smoke", help="smoke-test a deployed env: stacks, outputs, drift monitor, endpoints"
    )
    parser.add_argument(
        "--env", default="local", help="local, dev, staging or prod (default: local)"
    )
    parser.add_argument(
        "--fresh-twin",
        action="store_true",
        help="start a twin on a free port, deploy the local env onto it, smoke-test it, stop it",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.fresh_twin and args.env != "local":
        raise UsageError(f"--fresh-twin deploys the local env; drop it for env {args.env!r}")
    if args.fresh_twin:
        with (
            tempfile.TemporaryDirectory(prefix="driftline-smoke-") as state,
            _fresh_twin(Path(state)),
        ):
            checks = smoke(args.env)
    else:
        checks = smoke(args.env)
    ok = all(check.ok for check in checks)
    document = {"env": args.env, "ok": ok, "checks": [asdict(check) for check in checks]}
    emit(document, as_json=args.json, rows=[asdict(check) for check in checks])
    return EXIT_OK if ok else EXIT_NEGATIVE_VERDICT


def smoke(env: str) -> list[Check]:
    """Every check, in order; later checks are skipped (failed) when what they need is missing."""
    outputs, checks = _stacks(env)
    missing = [name for name in REQUIRED_OUTPUTS if not outputs.get(name)]
    checks.append(
        Check(
            "outputs",
            not missing,
            f"missing: {', '.join(missing)}" if missing else f"{len(outputs)} outputs",
        )
    )
    if outputs.get("TrainingStateMachineArn"):
        checks.append(_state_machine(outputs["TrainingStateMachineArn"]))
    if outputs.get("DriftMonitorFunctionName"):
        checks.append(_drift_monitor(outputs["DriftMonitorFunctionName"]))
    for model, function_name in sorted(_endpoints(outputs).items()):
        checks.append(_probe(f"endpoint {model}", function_name, PROBE))
    if outputs.get("SharedEndpointFunction"):
        checks.append(
            _probe(
                "shared endpoint",
                outputs["SharedEndpointFunction"],
                {"model": SHARED_PROBE_MODEL, **PROBE},
            )
        )
    return checks


def _stacks(env: str) -> tuple[dict[str, str], list[Check]]:
    cloudformation = client("cloudformation")
    outputs: dict[str, str] = {}
    checks: list[Check] = []
    found = 0
    for part in STACK_PARTS:
        name = stack_name(env, part)
        try:
            stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        except ClientError as error:
            message = error.response["Error"]["Message"]
            if "does not exist" not in message:
                raise UsageError(f"cannot read stack {name}: {message}") from None
            checks.append(Check(f"stack {part}", False, f"{name} does not exist"))
            continue
        found += 1
        status = str(stack["StackStatus"])
        healthy = status.endswith("_COMPLETE") and "ROLLBACK" not in status
        checks.append(Check(f"stack {part}", healthy, f"{name} {status}"))
        for output in stack.get("Outputs", []):
            outputs[output["OutputKey"]] = output["OutputValue"]
    if not found:
        raise UsageError(
            f"no stack of env {env!r} exists ({stack_name(env, 'Data')} and the others): "
            "deploy it first, or check AWS_PROFILE / AWS_ENDPOINT_URL"
        )
    return outputs, checks


def _state_machine(arn: str) -> Check:
    try:
        status = client("stepfunctions").describe_state_machine(stateMachineArn=arn)["status"]
    except (ClientError, BotoCoreError) as error:
        return Check("state machine", False, f"cannot describe {arn}: {error}")
    return Check("state machine", status == "ACTIVE", f"{arn.rsplit(':', 1)[-1]} {status}")


def _invoke(function_name: str, payload: Mapping[str, Any]) -> tuple[str | None, Any]:
    """(function error or None, decoded reply); the call itself failing raises."""
    response = client("lambda").invoke(
        FunctionName=function_name, Payload=json.dumps(payload).encode("utf-8")
    )
    raw = response["Payload"].read() or b"null"
    try:
        reply = json.loads(raw)
    except json.JSONDecodeError:
        reply = raw.decode("utf-8", errors="replace")
    return response.get("FunctionError"), reply


def _error_text(reply: Any) -> str:
    if isinstance(reply, dict):
        message = str(reply.get("errorMessage", reply)).splitlines()
        return f"{reply.get('errorType', 'Error')}: {message[0] if message else ''}"
    return str(reply)[:200]


def _drift_monitor(function_name: str) -> Check:
    try:
        error, reply = _invoke(function_name, {"trigger": "schedule"})
    except (ClientError, BotoCoreError) as failure:
        return Check("drift monitor", False, f"cannot invoke {function_name}: {failure}")
    if error:
        return Check("drift monitor", False, _error_text(reply))
    summary = reply if isinstance(reply, dict) else {}
    counts = {key: len(summary.get(key) or []) for key in ("checked", "skipped")}
    return Check(
        "drift monitor",
        True,
        f"scheduled check ran: {counts['checked']} model(s) checked, {counts['skipped']} skipped",
    )


def _probe(name: str, function_name: str, payload: Mapping[str, Any]) -> Check:
    try:
        alias_arn = client("lambda").get_alias(FunctionName=function_name, Name=LIVE_ALIAS)[
            "AliasArn"
        ]
        # The alias ARN, not a Qualifier: the twin's emulator ignores a separate Qualifier.
        error, reply = _invoke(alias_arn, payload)
    except (ClientError, BotoCoreError) as failure:
        return Check(name, False, f"cannot invoke {function_name}:{LIVE_ALIAS}: {failure}")
    if error:
        return Check(name, False, _error_text(reply))
    status = reply.get("status") if isinstance(reply, dict) else None
    problem = (reply.get("error") or {}) if isinstance(reply, dict) else {}
    detail = f"{status} {problem.get('code', '')}: {str(problem.get('message', ''))[:120]}"
    return Check(name, status in HEALTHY_PROBE_STATUSES, detail.strip())


def _endpoints(outputs: Mapping[str, str]) -> dict[str, str]:
    """model → endpoint function, from the Serving stack's `Endpoints` output (if any)."""
    try:
        document = json.loads(outputs.get("Endpoints") or "{}")
    except json.JSONDecodeError:
        return {}
    return {
        str(model): str(entry["function_name"])
        for model, entry in document.items()
        if isinstance(entry, dict) and entry.get("function_name")
    }


@contextmanager
def _fresh_twin(state_dir: Path) -> Iterator[None]:
    """A twin on a free port with the local env deployed, reached through AWS_ENDPOINT_URL."""
    from driftline.twin.assets import LOCAL_REGION
    from driftline.twin.deployer import deploy
    from driftline.twin.server import FAKE_CREDENTIALS, Twin, free_port
    from driftline.twin.synth import synthesize

    twin = Twin(port=free_port(), state_dir=state_dir)
    values: dict[str, str | None] = {
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": twin.endpoint,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_REGION": LOCAL_REGION,
        "AWS_PROFILE": None,
    }
    with environment(values):
        try:
            twin.start()
            synthesize("local", twin.cdk_out)
            deploy(twin.cdk_out, endpoint=twin.endpoint)
            yield
        finally:
            twin.stop()
