"""The twin's server: moto 5.2.5 in-process on 127.0.0.1, with the adapters installed.

moto runs in this process (`ThreadedMotoServer`) so the adapters can patch its backends
directly. Clients (the deployer, the CLI in another shell, the tests) reach it over HTTP only.
The state file `.driftline/twin.json` is how a second process finds a running twin.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftline import connect
from driftline.errors import UsageError
from driftline.twin.assets import LOCAL_ACCOUNT, LOCAL_REGION, ImageFolders

DEFAULT_PORT = 4566
HOST = "127.0.0.1"
# Where the state file is and what it holds is shared with `driftline.connect`, which finds a
# running twin for every `--env local` command.
STATE_FILE = connect.STATE_FILE
FAKE_CREDENTIALS = connect.TWIN_CREDENTIALS


class PortInUse(UsageError):
    """Another process (often another twin) already listens on the requested port."""


def endpoint_url(port: int) -> str:
    return f"http://{HOST}:{port}"


def ensure_port_free(port: int) -> None:
    """Raise PortInUse naming the port, before moto's server would exit its thread on it."""
    if not 0 < port < 65536:
        raise UsageError(f"port {port} is not a TCP port number (1-65535)")
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((HOST, port))
    except OSError as error:
        if error.errno in (errno.EADDRINUSE, errno.EACCES):
            raise PortInUse(
                f"port {port} on {HOST} is already in use: stop what listens there "
                "(`driftline local status`) or pass --port"
            ) from None
        raise
    finally:
        probe.close()


def free_port() -> int:
    """A port nothing listens on right now (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _guarded_moto_server(port: int) -> Any:
    """A ThreadedMotoServer whose start() fails instead of hanging when the bind fails.

    werkzeug answers a failed bind with sys.exit(1) inside the server thread, so the stock
    start() would wait forever for a ready event that is never set. moto is imported here,
    not at module level, so that `driftline <other command>` does not pay for loading it.
    """
    from moto.server import ThreadedMotoServer

    class GuardedMotoServer(ThreadedMotoServer):
        startup_error: BaseException | None = None

        def _server_entry(self) -> None:
            try:
                super()._server_entry()
            except BaseException as error:  # SystemExit from werkzeug, OSError from bind
                self.startup_error = error
                self._server_ready_event.set()

        def start(self) -> None:
            super().start()
            if self.startup_error is not None:
                raise PortInUse(f"the twin could not listen on {HOST}:{port}: {self.startup_error}")

    return GuardedMotoServer(ip_address=HOST, port=port, verbose=False)


def _fresh_moto_state() -> None:
    """Forget every resource an earlier twin of this process created.

    moto keeps its backends in module globals, so without this a second twin in one process
    (the test suite starts one per module) would find the first one's stacks, functions,
    alarms and registries, including Function URLs that name the first twin's port.
    """
    from moto.core.base_backend import BackendDict
    from moto.core.model_instances import reset_model_data

    BackendDict.reset()
    reset_model_data()


class Twin:
    """One moto server with the adapters, serving the assembly in `state_dir/cdk.out`."""

    def __init__(self, *, port: int = DEFAULT_PORT, state_dir: Path) -> None:
        self.port = port
        self.state_dir = state_dir
        self.cdk_out = state_dir / "cdk.out"
        self._server: Any = None
        self._saved_environment: dict[str, str | None] = {}

    @property
    def endpoint(self) -> str:
        return endpoint_url(self.port)

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen on 127.0.0.1:port with the adapters and deploy reporting installed."""
        ensure_port_free(self.port)
        # moto's Step Functions interpreter and custom resources call back to localhost:$MOTO_PORT;
        # the process that runs the twin (and its Lambda workers) never holds real credentials.
        self._set_environment(
            {
                "MOTO_PORT": str(self.port),
                "MOTO_ACCOUNT_ID": LOCAL_ACCOUNT,
                "AWS_DEFAULT_REGION": LOCAL_REGION,
                **FAKE_CREDENTIALS,
            }
        )
        _quiet_moto()
        _fresh_moto_state()
        from driftline.twin.adapters import install_adapters

        server = _guarded_moto_server(self.port)
        install_adapters(port=self.port, image_folders=ImageFolders(self.cdk_out))
        server.start()
        self._server = server
        install_deploy_reporting()

    def stop(self) -> None:
        """Stop the adapters' worker processes, then the HTTP server. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        from driftline.twin.adapters import shutdown_adapters

        try:
            shutdown_adapters()
        finally:
            server.stop()
            uninstall_deploy_reporting()
            self._restore_environment()

    def _set_environment(self, values: dict[str, str]) -> None:
        """Set `values`, keeping what was there before the first change for the restore."""
        previous = connect.set_environment(values)
        self._saved_environment = {**previous, **self._saved_environment}

    def _restore_environment(self) -> None:
        connect.set_environment(self._saved_environment)
        self._saved_environment = {}


def serve_until_signalled(
    twin: Twin,
    *,
    on_ready: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Block until SIGINT or SIGTERM, then stop the twin (and run `on_stop`).

    `on_ready` (announcing the twin, e.g. writing its state file) runs once the signal
    handlers are in place: whoever sees the announcement and stops the twin at once gets the
    same clean stop as later, not an interrupted start-up.
    """
    stopping = False

    def _handle(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, _handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready is not None:
            on_ready()
        while not stopping:
            time.sleep(0.2)
    finally:
        # Our handler stays installed until the end: a second Ctrl-C must not cut cleanup short.
        try:
            twin.stop()
            reap_children()
        finally:
            if on_stop is not None:
                on_stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def child_pids(pid: int | None = None) -> list[int]:
    """Direct children of `pid` (default: this process), from /proc; [] where /proc is absent."""
    task_dir = Path(f"/proc/{pid or os.getpid()}/task")
    children: list[int] = []
    if not task_dir.is_dir():
        return children
    for task in task_dir.iterdir():
        try:
            children.extend(int(value) for value in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(set(children))


def reap_children(grace_seconds: float = 3.0) -> None:
    """Terminate, then kill, any child this process still has; the twin must leave none behind."""
    pending = child_pids()
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if not _reaped(pid)]
        if pending:
            time.sleep(0.05)
    for pid in pending:
        _signal(pid, signal.SIGKILL)
        _reaped(pid, block=True)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return


def _reaped(pid: int, *, block: bool = False) -> bool:
    try:
        done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def _quiet_moto() -> None:
    """One consolidated 'unsupported resource types' warning from the deployer replaces moto's
    per-resource log lines; werkzeug's per-request access log would drown the CLI's output."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_logger = logging.getLogger("moto")
    if not any(isinstance(f, _DropUnsupportedNotices) for f in moto_logger.filters):
        moto_logger.addFilter(_DropUnsupportedNotices())
    asl_logger = logging.getLogger(ASL_LOGGER)
    if not any(isinstance(f, AslNoise) for f in asl_logger.filters):
        asl_logger.addFilter(AslNoise())
    warnings.filterwarnings("ignore", message=r"Tried to parse .* not supported by moto")


class _DropUnsupportedNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No Moto CloudFormation support")


# moto's ASL interpreter logs every exception any component sees, with the component's repr.
ASL_LOGGER = "moto.stepfunctions.parser.asl.component.eval_component"
ASL_REPR_CHARS = 160


class AslNoise(logging.Filter):
    """Keep the twin's console to what needs a person; every execution's history keeps all.

    - `NoSuchJsonPathError`: a path that is not in the state's input, logged once per nesting
      level. A Choice's `Variable` catches it (IsPresent on a missing field is false, not an
      error); anywhere else the state fails with `States.Runtime` naming the path and the
      input, and that failure is kept.
    - `FailureEventException` at a `StateFail`: a Fail state ending the run as designed
      (`GateRejected`, `DatasetRejected`); the run's status and cause say so.
    - Any other failure is kept, with the component's repr (moto prints the whole state
      machine definition there) cut to its first characters.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg != "%s at '%s'" or len(args) != 2:
            return True
        summary, component = str(args[0]), str(args[1])
        if summary.startswith("Exception=NoSuchJsonPathError"):
            return False
        if summary.startswith("Exception=FailureEventException") and component.startswith(
            "(StateFail|"
        ):
            return False
        if len(component) > ASL_REPR_CHARS:
            record.args = (summary, component[:ASL_REPR_CHARS] + " …")
        return True


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def write_state(state_dir: Path, document: dict[str, Any]) -> Path:
    """Atomically replace the state file so a concurrent `local status` never reads half of it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_path(state_dir)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)
    return path


def read_state(state_dir: Path) -> dict[str, Any] | None:
    path = state_path(state_dir)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"cannot read twin state {path}: {error}") from None
    if not isinstance(document, dict):
        raise UsageError(f"twin state {path} is not a JSON object")
    return document


def clear_state(state_dir: Path) -> None:
    state_path(state_dir).unlink(missing_ok=True)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _Reporting:
    installed: bool = False
    active: bool = False


_REPORTING = _Reporting()
_FAILURES: dict[str, tuple[str, str, str]] = {}


def install_deploy_reporting() -> None:
    """Make moto's CloudFormation report progress and failures the way the deployer needs.

    moto 5.2.5 records no per-resource events; answers a resource it cannot create with HTTP
    500 and leaves the stack CREATE_IN_PROGRESS for good (describe_stacks then answers 500 too,
    re-resolving the failed resource for the outputs); and never refreshes a stack's exports
    on update, so an export added by a redeploy cannot be imported. Here every resource gets
    *_IN_PROGRESS/*_COMPLETE events, a failure ends the stack in CREATE_FAILED/UPDATE_FAILED
    with the resource's logical ID and reason, and an update re-registers the stack's exports.
    Idempotent; installed after the adapters so it wraps what they patch; active until
    `uninstall_deploy_reporting`.
    """
    _REPORTING.active = True
    if _REPORTING.installed:
        return
    from moto.cloudformation import models, parsing

    create_resource = parsing.parse_and_create_resource
    update_resource = parsing.parse_and_update_resource
    create_stack = models.CloudFormationBackend.create_stack
    outputs: Any = models.Stack.outputs
    update_stack = models.Stack.update
    delete_stack = models.Stack.delete

    def reporting(operation: Any, verb: str) -> Any:
        """Wrap moto's create/update of one resource with stack events and failure capture."""

        def reporting_operation(
            logical_id: str,
            resource_json: dict[str, Any],
            resources_map: Any,
            account_id: str,
            region_name: str,
        ) -> Any:
            if not _REPORTING.active:
                return operation(logical_id, resource_json, resources_map, account_id, region_name)
            stack = _stack(account_id, region_name, resources_map.stack_id)
            resource_type = str(resource_json.get("Type"))
            started = _started(stack, logical_id, resource_type, f"{verb}_IN_PROGRESS")
            try:
                resource = operation(
                    logical_id, resource_json, resources_map, account_id, region_name
                )
            except Exception as error:
                # setdefault: a Ref creates its target lazily, so the innermost failure is
                # the cause.
                _FAILURES.setdefault(
                    resources_map.stack_id, (logical_id, resource_type, _reason(error))
                )
                raise
            _finished(stack, started, resource, f"{verb}_COMPLETE")
            return resource

        return reporting_operation

    reporting_create_resource = reporting(create_resource, "CREATE")
    reporting_update_resource = reporting(update_resource, "UPDATE")

    def reporting_create_stack(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if not _REPORTING.active:
            return create_stack(self, name, *args, **kwargs)
        before = set(self.stacks)
        try:
            return create_stack(self, name, *args, **kwargs)
        except Exception as error:
            created = [stack for stack_id, stack in self.stacks.items() if stack_id not in before]
            if not created:
                raise  # rejected before the stack existed: moto's own error response says why
            _fail(created[0], "CREATE", error)
            return created[0]

    def reporting_outputs(self: Any) -> Any:
        if not _REPORTING.active:
            return outputs.fget(self)
        # A stack that failed to create has no outputs; resolving them would try to create
        # the failed resources again and answer describe_stacks with HTTP 500.
        if self.status.startswith(("CREATE", "ROLLBACK")) and self.status != "CREATE_COMPLETE":
            return None
        try:
            return outputs.fget(self)
        except Exception:
            return None

    def reporting_update(self: Any, *args: Any, **kwargs: Any) -> None:
        if not _REPORTING.active:
            return update_stack(self, *args, **kwargs)
        _FAILURES.pop(self.stack_id, None)
        try:
            update_stack(self, *args, **kwargs)
            _refresh_exports(self)
        except Exception as error:
            _fail(self, "UPDATE", error)

    def reporting_delete(self: Any) -> None:
        if not _REPORTING.active:
            return delete_stack(self)
        try:
            delete_stack(self)
        except Exception as error:
            # The backend has already forgotten the stack; record what the emulator left behind.
            self._add_stack_event(
                "DELETE_COMPLETE",
                resource_status_reason=f"resources left in the twin: {_reason(error)}",
            )
            self.status = "DELETE_COMPLETE"

    parsing.parse_and_create_resource = reporting_create_resource
    parsing.parse_and_update_resource = reporting_update_resource
    models.CloudFormationBackend.create_stack = reporting_create_stack  # type: ignore[method-assign]
    models.Stack.outputs = property(reporting_outputs)  # type: ignore[method-assign,assignment]
    models.Stack.update = reporting_update  # type: ignore[method-assign]
    models.Stack.delete = reporting_delete  # type: ignore[method-assign]
    _REPORTING.installed = True


def uninstall_deploy_reporting() -> None:
    """Back to moto's own behaviour (the wrappers stay, passing straight through), so other
    moto servers later in the same process (tests) see stock moto."""
    _REPORTING.active = False


def _stack(account_id: str, region_name: str, stack_id: str) -> Any:
    from moto.cloudformation.models import cloudformation_backends

    return cloudformation_backends[account_id][region_name].stacks.get(stack_id)


def _started(stack: Any, logical_id: str, resource_type: str, status: str) -> Any:
    """The *_IN_PROGRESS event that lets a client that gave up waiting name the resource."""
    if stack is None:
        return None
    return _resource_event(stack, logical_id, resource_type, status)


def _finished(stack: Any, started: Any, resource: Any, status: str) -> None:
    if stack is None or started is None:
        return
    if resource is None:  # a type moto skips, or a false Condition: nothing was created
        with contextlib.suppress(ValueError):
            stack.events.remove(started)
        return
    if not hasattr(resource, "is_created") or resource.is_created():
        _resource_event(
            stack, started.logical_resource_id, started.resource_type, status, physical=resource
        )


def _fail(stack: Any, operation: str, error: Exception | None) -> None:
    """End `operation` on `stack` as <OPERATION>_FAILED, naming the failed resource."""
    logical_id, resource_type, reason = _FAILURES.pop(
        stack.stack_id, (stack.name, "AWS::CloudFormation::Stack", _reason(error))
    )
    status = f"{operation}_FAILED"
    if logical_id != stack.name:
        _resource_event(stack, logical_id, resource_type, status, reason)
        reason = (
            f"The following resource(s) failed to {operation.lower()}: [{logical_id}]. {reason}"
        )
    stack.status = status
    stack._add_stack_event(status, resource_status_reason=reason)


def _resource_event(
    stack: Any,
    logical_id: str,
    resource_type: str,
    status: str,
    reason: str | None = None,
    *,
    physical: Any = None,
) -> Any:
    from moto.cloudformation.models import Event

    event = Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical_id,
        physical_resource_id=_physical_id(physical),
        resource_type=resource_type,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )
    stack.events.append(event)
    return event


def _physical_id(resource: Any) -> str:
    try:
        return str(resource.physical_resource_id) if resource is not None else ""
    except Exception:
        return ""


def _template_type(stack: Any, logical_id: str) -> str:
    resource = stack.template_dict.get("Resources", {}).get(logical_id, {})
    return str(resource.get("Type", "AWS::CloudFormation::CustomResource"))


def _refresh_exports(stack: Any) -> None:
    from moto.cloudformation.models import cloudformation_backends

    exports = cloudformation_backends[stack.account_id][stack.region_name].exports
    for name in [
        name for name, export in exports.items() if export.exporting_stack_id == stack.stack_id
    ]:
        del exports[name]
    for export in stack.exports:
        owner = exports.get(export.name)
        if owner is not None:
            raise ValueError(
                f"export {export.name} is already exported by stack {owner.exporting_stack_id}"
            )
        exports[export.name] = export


def _reason(error: BaseException | None) -> str:
    if error is None:
        return "unknown failure"
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"
