"""`driftline local up|deploy|status`: run the `local` env's templates on the twin, offline.

`up` serves in the foreground until Ctrl-C; `deploy` and `status` talk to that running twin
over HTTP from another shell, finding it through `.driftline/twin.json` or AWS_ENDPOINT_URL.
Every other command finds it the same way for `--env local` (`driftline.connect`).
`status` exits 0 when the twin answers and 2 (unusable: nothing to talk to) when none does,
with the command that starts one.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from driftline.connect import START_TWIN, default_state_dir, process_alive
from driftline.errors import EXIT_OK, EXIT_UNUSABLE_INPUT, UsageError
from driftline.output import emit, print_table, progress
from driftline.twin.assets import LOCAL_REGION
from driftline.twin.deployer import (
    DEFAULT_TIMEOUT_SECONDS,
    DeployResult,
    deploy,
    describe_stack,
    stack_outputs,
    twin_client,
)
from driftline.twin.server import (
    DEFAULT_PORT,
    FAKE_CREDENTIALS,
    Twin,
    clear_state,
    endpoint_url,
    ensure_port_free,
    read_state,
    reap_children,
    serve_until_signalled,
    utc_now,
    write_state,
)
from driftline.twin.synth import project_root, start_synthesis

ENV = "local"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("local", help="run the local env on the twin (moto, offline)")
    actions = parser.add_subparsers(dest="local_command", required=True)

    up = actions.add_parser(
        "up", help="start the twin, deploy the local stacks, serve until Ctrl-C"
    )
    up.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})"
    )
    _common(up)
    up.set_defaults(handler=run_up)

    redeploy = actions.add_parser("deploy", help="synthesize again and update the running twin")
    _common(redeploy)
    redeploy.add_argument(
        "--endpoint", help="twin URL (default: AWS_ENDPOINT_URL, then the state file)"
    )
    redeploy.add_argument("--json", action="store_true", help="print one JSON object")
    redeploy.set_defaults(handler=run_deploy)

    status = actions.add_parser("status", help="what the twin runs: stacks, statuses, outputs")
    status.add_argument(
        "--state-dir", type=Path, help="twin state directory (default: <project>/.driftline)"
    )
    status.add_argument(
        "--endpoint", help="twin URL (default: AWS_ENDPOINT_URL, then the state file)"
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=run_status)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, help="twin state directory (default: <project>/.driftline)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds to wait for each stack (default {DEFAULT_TIMEOUT_SECONDS:.0f})",
    )
    parser.add_argument(
        "--no-synth", action="store_true", help="deploy the assembly already in <state-dir>/cdk.out"
    )


def run_up(args: argparse.Namespace) -> int:
    root = project_root()
    state_dir = _state_dir(args.state_dir)
    ensure_port_free(args.port)
    twin = Twin(port=args.port, state_dir=state_dir)
    if args.no_synth and not (twin.cdk_out / "manifest.json").is_file():
        raise UsageError(f"{twin.cdk_out} holds no synthesized assembly: drop --no-synth")
    # Until the serve loop takes over, SIGTERM unwinds like Ctrl-C so the cleanup below runs.
    signal.signal(signal.SIGTERM, _interrupt)
    synthesis = None if args.no_synth else start_synthesis(ENV, twin.cdk_out, root=root)
    try:
        with progress(f"starting the twin on port {args.port}") as say:
            if synthesis is not None:
                say(f"synthesizing env {ENV} into {twin.cdk_out}")
            twin.start()
            started_at = utc_now()
            say(f"twin listening on {twin.endpoint}")
            if synthesis is not None:
                synthesis.wait()
                synthesis = None
            result = deploy(
                twin.cdk_out, endpoint=twin.endpoint, timeout=args.timeout, progress=say
            )
    except BaseException:
        if synthesis is not None:
            synthesis.cancel()
        twin.stop()
        reap_children()
        raise

    def announce() -> None:
        write_state(
            state_dir, _state_document(twin.port, twin.cdk_out, result, started_at=started_at)
        )
        _print_deployed(twin.endpoint, result)
        print("twin is up; Ctrl-C stops it", flush=True)

    serve_until_signalled(twin, on_ready=announce, on_stop=lambda: clear_state(state_dir))
    _say("twin stopped")
    return EXIT_OK


def run_deploy(args: argparse.Namespace) -> int:
    root = project_root()
    state_dir = _state_dir(args.state_dir)
    state = read_state(state_dir) or {}
    endpoint = _endpoint(args.endpoint, state)
    if not _answers(endpoint):
        raise UsageError(f"no twin answers at {endpoint}: start one with `driftline local up`")
    cdk_out = Path(state.get("cdk_out") or state_dir / "cdk.out")
    with progress(f"deploying to the twin at {endpoint}") as say:
        if not args.no_synth:
            say(f"synthesizing env {ENV} into {cdk_out}")
            start_synthesis(ENV, cdk_out, root=root).wait()
        result = deploy(cdk_out, endpoint=endpoint, timeout=args.timeout, progress=say)
    if state:
        write_state(
            state_dir,
            _state_document(
                int(state["port"]),
                cdk_out,
                result,
                started_at=str(state.get("started_at")),
                pid=state.get("pid"),
            ),
        )
    if args.json:
        emit({"endpoint": endpoint, **result.to_json()}, as_json=True)
    else:
        print_table(
            [{"stack": s.name, "action": s.action, "status": s.status} for s in result.stacks]
        )
        _warn_unsupported(result.unsupported)
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args.state_dir)
    state = read_state(state_dir) or {}
    endpoint = _endpoint(args.endpoint, state, required=False)
    answering = _answers(endpoint)
    stacks = _deployed_stacks(endpoint) if answering else []
    pid = state.get("pid")
    document = {
        "endpoint": endpoint,
        "answering": answering,
        "pid": pid,
        "pid_alive": process_alive(int(pid)) if pid else None,
        "started_at": state.get("started_at"),
        "deployed_at": state.get("deployed_at"),
        "stacks": stacks,
        "unsupported_resource_types": state.get("unsupported_resource_types", {}),
    }
    if args.json:
        emit(document, as_json=True)
    elif answering:
        print(f"twin at {endpoint}: answering")
        print_table([{"stack": s["name"], "status": s["status"]} for s in stacks])
        outputs = {key: value for s in stacks for key, value in s["outputs"].items()}
        if outputs:
            print_table([{"output": k, "value": v} for k, v in sorted(_visible(outputs).items())])
    if not answering:
        print(f"driftline: no twin answers at {endpoint}: {START_TWIN}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    return EXIT_OK


def _state_dir(explicit: Path | None) -> Path:
    return explicit.resolve() if explicit is not None else default_state_dir()


def _endpoint(explicit: str | None, state: Mapping[str, Any], *, required: bool = True) -> str:
    """--endpoint, then AWS_ENDPOINT_URL, then the running twin's state file."""
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get("AWS_ENDPOINT_URL"):
        return os.environ["AWS_ENDPOINT_URL"].rstrip("/")
    if state.get("port"):
        return endpoint_url(int(state["port"]))
    if required:
        raise UsageError(
            "no running twin found (.driftline/twin.json is missing): run `driftline local up`"
        )
    return endpoint_url(DEFAULT_PORT)


def _answers(endpoint: str) -> bool:
    try:
        twin_client(endpoint, "cloudformation", attempts=1, timeout=5).list_stacks()
    except (BotoCoreError, ClientError):
        return False
    return True


def _deployed_stacks(endpoint: str) -> list[dict[str, Any]]:
    cloudformation = twin_client(endpoint, "cloudformation")
    summaries = cloudformation.list_stacks()["StackSummaries"]
    stacks = []
    for summary in sorted(summaries, key=lambda s: s["CreationTime"]):
        if summary["StackStatus"] == "DELETE_COMPLETE":
            continue
        stack = describe_stack(cloudformation, summary["StackName"]) or summary
        stacks.append(
            {
                "name": summary["StackName"],
                "status": stack["StackStatus"],
                "outputs": stack_outputs(stack),
            }
        )
    return stacks


def _state_document(
    port: int, cdk_out: Path, result: DeployResult, *, started_at: str, pid: Any = None
) -> dict[str, Any]:
    return {
        "port": port,
        "pid": pid if pid is not None else os.getpid(),
        "endpoint": endpoint_url(port),
        "cdk_out": str(cdk_out),
        "started_at": started_at,
        "deployed_at": utc_now(),
        "stacks": {
            stack.name: {"status": stack.status, "template_hash": stack.template_hash}
            for stack in result.stacks
        },
        "outputs": result.outputs,
        "unsupported_resource_types": result.unsupported,
        "deploy_seconds": round(result.seconds, 3),
    }


def export_line(endpoint: str) -> str:
    """What other tools (the aws CLI, a notebook) need to reach the twin; `driftline` itself
    finds it from the state file."""
    credentials = " ".join(f"{name}={value}" for name, value in FAKE_CREDENTIALS.items())
    return f"export AWS_ENDPOINT_URL={endpoint} {credentials} AWS_DEFAULT_REGION={LOCAL_REGION}"


def _print_deployed(endpoint: str, result: DeployResult) -> None:
    print("# driftline finds this twin by itself; for the aws CLI and other tools:")
    print(export_line(endpoint))
    print_table([{"stack": s.name, "action": s.action, "status": s.status} for s in result.stacks])
    print_table([{"output": k, "value": v} for k, v in sorted(_visible(result.outputs).items())])
    _warn_unsupported(result.unsupported)
    sys.stdout.flush()


def _visible(outputs: Mapping[str, str]) -> dict[str, str]:
    """Outputs people use; CDK's cross-stack `ExportsOutput…` plumbing is left out."""
    return {key: value for key, value in outputs.items() if not key.startswith("ExportsOutput")}


def _warn_unsupported(unsupported: Mapping[str, list[str]]) -> None:
    if not unsupported:
        return
    _say("warning: unsupported resource types (the twin's CloudFormation skipped them):")
    for resource_type, resources in sorted(unsupported.items()):
        _say(f"  {resource_type}: {', '.join(resources)}")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
