"""The execution environment of one twin Lambda function: a long-lived child process.

moto runs Lambda handlers in Docker, which the twin does not have. The adapters start this
module as a script with the current interpreter instead, once per function and code version,
and keep it warm like Lambda keeps an execution environment: the handler module is imported
once (the cold start) and each request reuses it.

Protocol (both channels are inherited pipes, one JSON document per line):
- response fd, once: ``{"init": true}`` when the handler is imported, or ``{"init": false,
  "error": {...}}`` and the process exits (Lambda's init phase, timed apart from invokes).
- request fd: ``{"id", "payload", "deadline_ms", "invoked_arn"}``; ``payload`` is the raw
  event JSON text.
- response fd, per request: ``{"id", "ok": true, "payload"}`` or ``{"id", "ok": false,
  "error": {...}}``; errors have Lambda's ``errorMessage`` / ``errorType`` / ``stackTrace``.
stdout and stderr go to a file the parent ships to CloudWatch Logs; both are flushed before
each response so the parent sees every line the invocation wrote.

Only the standard library is imported here: everything else the handler imports counts as
the function's own cold start, as on AWS.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import io
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

Handler = Callable[[Any, "LambdaContext"], Any]


class LambdaContext:
    """The attributes and method of Lambda's Python context object that handlers use."""

    def __init__(self, request_id: str, invoked_arn: str, deadline_ms: int) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = invoked_arn
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


class _RequestIdFilter(logging.Filter):
    """Stamps log records with the current request id, as Lambda's runtime does."""

    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _install_lambda_logging() -> _RequestIdFilter:
    """Give the root logger Lambda's handler and format, so `logging` output reaches the logs."""
    request_filter = _RequestIdFilter()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(request_filter)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.getLogger().addHandler(handler)
    return request_filter


def _error(error_type: str, message: str, tb: Any = None) -> dict[str, Any]:
    stack = traceback.format_list(traceback.extract_tb(tb)) if tb is not None else []
    return {"errorMessage": message, "errorType": error_type, "stackTrace": stack}


def _load_handler(spec: str) -> Handler:
    """Import `module.function` the way Lambda's Python runtime resolves `_HANDLER`."""
    module_name, _, function_name = spec.replace("/", ".").rpartition(".")
    if not module_name:
        raise _InitError("Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any import-time failure is the function's init error
        traceback.print_exception(error, file=sys.stderr)
        message = f"Unable to import module '{module_name}': {error}"
        raise _InitError("Runtime.ImportModuleError", message) from None
    handler = getattr(module, function_name, None)
    if not callable(handler):
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        raise _InitError("Runtime.HandlerNotFound", message)
    return handler  # type: ignore[no-any-return]


class _TaskRootFirst(importlib.abc.MetaPathFinder):
    """Resolve the code's own top-level packages from the task root, and only from there.

    An editable install of the repo (setuptools' meta-path finder) would otherwise answer
    `import functions...` from the working tree instead of the staged code, hiding files the
    image lacks.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        entries = list(Path(root).iterdir())
        self.owned = {e.stem for e in entries if e.suffix == ".py"} | {
            e.name for e in entries if e.is_dir() and e.name.isidentifier()
        }

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname.partition(".")[0] not in self.owned:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path or [self.root])
        if spec is None:
            raise ModuleNotFoundError(f"No module named '{fullname}'", name=fullname)
        return spec


class _InitError(Exception):
    def __init__(self, error_type: str, message: str, tb: Any = None) -> None:
        super().__init__(message)
        self.error = _error(error_type, message, tb)


def _invoke(handler: Handler, request: dict[str, Any]) -> dict[str, Any]:
    context = LambdaContext(request["id"], request["invoked_arn"], int(request["deadline_ms"]))
    try:
        event = json.loads(request["payload"])
    except ValueError as error:
        return {"ok": False, "error": _error("Runtime.UnmarshalError", str(error))}
    try:
        result = handler(event, context)
    except Exception as error:
        # Lambda's stackTrace starts in the handler, not in the runtime calling it.
        handler_tb = error.__traceback__.tb_next if error.__traceback__ else None
        detail = _error(type(error).__name__, str(error), handler_tb)
        sys.stderr.write(f"[ERROR] {type(error).__name__}: {error}\n")
        traceback.print_exception(error, file=sys.stderr)
        return {"ok": False, "error": detail}
    try:
        return {"ok": True, "payload": json.dumps(result)}
    except (TypeError, ValueError) as error:
        message = f"Unable to marshal response: {error}"
        return {"ok": False, "error": _error("Runtime.MarshalError", message)}


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def main(argv: list[str]) -> int:
    request_fd, response_fd = int(argv[1]), int(argv[2])
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    # Drop this file's own folder from the path: a handler's `import server` must not find
    # the twin's modules.
    sys.path[:] = [task_root, *(p for p in sys.path[1:] if p != task_root)]
    sys.meta_path.insert(0, _TaskRootFirst(task_root))
    os.chdir(task_root)
    # One ordered stream, as in Lambda: print() must not lag behind logging's stderr.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    request_filter = _install_lambda_logging()
    requests = os.fdopen(request_fd, "r", encoding="utf-8")
    responses = os.fdopen(response_fd, "w", encoding="utf-8")
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except _InitError as error:
        sys.stderr.write(f"[ERROR] {error.error['errorType']}: {error.error['errorMessage']}\n")
        _send(responses, {"init": False, "error": error.error})
        return 1  # Lambda retries the init on the next invoke, in a new environment
    _send(responses, {"init": True})
    for line in requests:
        request = json.loads(line)
        request_filter.request_id = request["id"]
        _send(responses, {"id": request["id"], **_invoke(handler, request)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
