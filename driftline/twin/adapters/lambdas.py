"""Section 1: Lambda without Docker — handlers run in warm subprocesses of this interpreter.

Also the template properties moto drops from functions, S3 and SNS invoking Lambda
asynchronously, and the on-failure SQS destination of a failed asynchronous invoke.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftline.twin.adapters.base import LOG, iso, patch, settings, wrap_template_methods
from driftline.twin.adapters.faults import take_fault

_RUNNER_SCRIPT = Path(__file__).parent.parent / "lambda_runner.py"
_MAX_WORKERS_PER_FUNCTION = 4
_INIT_TIMEOUT_S = 30.0  # Lambda allows 10 s; a loaded laptop importing scikit-learn needs more
_LOG_TAIL_BYTES = 4096


class _SetupError(Exception):
    """The function cannot start (no code, no handler, not Python): a Lambda-shaped error."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class FunctionImage:
    """Everything a warm worker depends on; a change means a fresh worker, as on AWS."""

    account_id: str
    region: str
    function_name: str
    function_arn: str
    version: str
    code_dir: Path
    handler: str
    runtime: str
    environment: tuple[tuple[str, str], ...]
    timeout_s: float
    memory_mb: int
    log_group: str


@dataclass(frozen=True)
class LambdaResult:
    """One invocation's outcome, shaped like Lambda's Invoke response."""

    payload: str
    error_type: str | None
    logs: str
    cold_start: bool
    duration_ms: float

    @property
    def function_error(self) -> bool:
        return self.error_type is not None


def error_payload(error_type: str, message: str) -> str:
    return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": []})


class _Worker:
    """One execution environment: a child process running `lambda_runner.py` for one image."""

    def __init__(self, image: FunctionImage, log_dir: Path, port: int) -> None:
        self.image = image
        stamp = time.strftime("%Y/%m/%d", time.gmtime())
        self.log_stream = f"{stamp}/[{image.version}]{uuid.uuid4().hex}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{image.function_name}-{uuid.uuid4().hex}.log"
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, str(_RUNNER_SCRIPT), str(request_read), str(response_write)],
                env=_worker_environment(image, self.log_stream, port),
                cwd=image.code_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                pass_fds=(request_read, response_write),
                start_new_session=True,
            )
        os.close(request_read)
        os.close(response_write)
        self._requests = os.fdopen(request_write, "w", encoding="utf-8")
        self._response_fd = response_read
        self._responses = os.fdopen(response_read, "r", encoding="utf-8")
        self._log_offset = 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, request: dict[str, Any], timeout_s: float) -> tuple[str, dict[str, Any] | None]:
        """('ok', response) | ('timeout', None) | ('died', None)."""
        try:
            self._requests.write(json.dumps(request) + "\n")
            self._requests.flush()
        except OSError:
            return "died", None
        return self.receive(timeout_s)

    def initialised(self, timeout_s: float) -> tuple[str, dict[str, Any] | None]:
        """('ready', None) once the handler module is imported, else how the init failed."""
        status, message = self.receive(timeout_s)
        if status == "timeout":
            return "init_timeout", None
        if status != "ok" or message is None:
            return status, None
        if message.get("init"):
            return "ready", None
        return "init_failed", {"ok": False, "error": message["error"]}

    def receive(self, timeout_s: float) -> tuple[str, dict[str, Any] | None]:
        ready, _, _ = select.select([self._response_fd], [], [], max(0.0, timeout_s))
        if not ready:
            return "timeout", None
        line = self._responses.readline()
        if not line:
            return "died", None
        response: dict[str, Any] = json.loads(line)
        return "ok", response

    def new_output(self) -> str:
        """What the process wrote to stdout/stderr since the last call."""
        with self.log_path.open("rb") as log_file:
            log_file.seek(self._log_offset)
            data = log_file.read()
        self._log_offset += len(data)
        return data.decode("utf-8", errors="replace")

    def max_memory_mb(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        return None

    def stop(self) -> int | None:
        """Kill the process group (handlers may spawn children) and release the pipes."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for channel in (self._requests, self._responses):
            with contextlib.suppress(OSError):
                channel.close()
        with contextlib.suppress(OSError):
            self.log_path.unlink()
        return self.process.returncode


_HOST_BLAS_SETTINGS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# Lambda allots CPU in proportion to memory: one vCPU's worth at 1,769 MB, six at most.
_LAMBDA_MB_PER_VCPU = 1769
_LAMBDA_MAX_VCPUS = 6


def worker_thread_settings(memory_mb: int) -> dict[str, str]:
    """OpenMP's thread count for a twin worker: what Lambda would give it, less one host core.

    On Lambda a function's vCPUs are its own; twin workers share the host's cores with the
    twin's server, its Step Functions interpreter, the caller and each other. libgomp's
    threads spin-wait at their barriers, and when a team has more threads than free cores a
    spinning thread burns the slice its partner needs: scikit-learn's HistGradientBoosting
    fit on digits went from 1.9 s to 12-120 s on this 2-core machine with a second busy
    process. `OMP_WAIT_POLICY=PASSIVE` avoids the spinning but makes every barrier a futex
    sleep and wake-up, which made the same fit about 10x slower on an idle machine (1.8 s ->
    18 s). Bounding the team instead keeps the fit at its floor either way: with
    `min(Lambda's vCPUs for the memory, host cores - 1)` threads (at least one) a team never
    competes with the twin itself for a core, and no wait policy is set. A function's own
    `OMP_NUM_THREADS` variable still wins (it is applied after these).
    """
    try:
        host = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        host = os.cpu_count() or 1
    lambda_vcpus = min(_LAMBDA_MAX_VCPUS, math.ceil(max(memory_mb, 1) / _LAMBDA_MB_PER_VCPU))
    return {"OMP_NUM_THREADS": str(max(1, min(lambda_vcpus, host - 1)))}


def _worker_environment(image: FunctionImage, log_stream: str, port: int) -> dict[str, str]:
    """Lambda's environment: the function's variables, then the reserved ones on top.

    The host's environment is not inherited (a Lambda sees none of it), and the shared AWS
    config files are hidden so a developer's profile cannot redirect the handler's clients.
    """
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        # The twin has no X-Ray daemon; a handler may still turn tracing on explicitly.
        "POWERTOOLS_TRACE_DISABLED": "true",
        **worker_thread_settings(image.memory_mb),
    }
    # Host-specific BLAS settings that keep numpy correct on this processor, not user config.
    env.update({name: os.environ[name] for name in _HOST_BLAS_SETTINGS if name in os.environ})
    env.update(dict(image.environment))
    env.update(
        {
            "_HANDLER": image.handler,
            "LAMBDA_TASK_ROOT": str(image.code_dir),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{image.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": image.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": image.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(image.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": image.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_REGION": image.region,
            "AWS_DEFAULT_REGION": image.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )
    return env


def _outcome(
    status: str,
    response: dict[str, Any] | None,
    request_id: str,
    image: FunctionImage,
    exit_code: int | None,
) -> tuple[str, str | None, str]:
    """(payload, error type or None, extra log text) for how an invocation ended."""
    if status in ("ok", "init_failed") and response is not None:
        if response.get("ok"):
            return str(response["payload"]), None, ""
        failure = response["error"]
        return json.dumps(failure), str(failure["errorType"]), ""
    if status in ("timeout", "init_timeout"):
        limit = image.timeout_s if status == "timeout" else _INIT_TIMEOUT_S
        phase = "Task" if status == "timeout" else "Init"
        message = f"{phase} timed out after {limit:.2f} seconds"
        note = f"{iso(datetime.now(UTC))} {request_id} {message}\n"
        error = f"RequestId: {request_id} Error: {message}"
        return error_payload("Sandbox.Timedout", error), "Sandbox.Timedout", note
    message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {exit_code}"
    return error_payload("Runtime.ExitError", message), "Runtime.ExitError", ""


class LambdaRunner:
    """Warm workers per function image, started lazily and replaced when they die or hang."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[FunctionImage, list[_Worker]] = {}
        self._current: dict[str, FunctionImage] = {}
        self._slots: dict[FunctionImage, threading.BoundedSemaphore] = {}
        self._workers: set[_Worker] = set()
        self._extract_lock = threading.Lock()

    def invoke(self, fn: Any, payload: str, invoked_arn: str | None = None) -> LambdaResult:
        """Run moto LambdaFunction `fn` on `payload` (event JSON text); never raises."""
        # A Function URL names the request id in its event before invoking; others get a new one.
        request_id = getattr(INVOKED, "request_id", None) or str(uuid.uuid4())
        try:
            image = self._image_of(fn)
        except _SetupError as error:
            LOG.warning("lambda %s cannot run: %s", getattr(fn, "function_name", "?"), error)
            return LambdaResult(
                error_payload(error.error_type, str(error)), error.error_type, "", False, 0.0
            )
        injected = take_fault(image)
        if injected is not None:
            fault_type, fault_message = injected
            return LambdaResult(
                error_payload(fault_type, fault_message), fault_type, "", False, 0.0
            )
        with self._slot(image):
            worker, cold = self._checkout(image)
            status, response, init_ms = "ready", None, None
            if cold:
                # Lambda does not count the init phase against the function's timeout.
                started = time.monotonic()
                status, response = worker.initialised(_INIT_TIMEOUT_S)
                init_ms = (time.monotonic() - started) * 1000
            started = time.monotonic()
            if status == "ready":
                request = {
                    "id": request_id,
                    "payload": payload,
                    "deadline_ms": int((time.time() + image.timeout_s) * 1000),
                    "invoked_arn": invoked_arn or image.function_arn,
                }
                status, response = worker.send(request, image.timeout_s)
            duration_ms = (time.monotonic() - started) * 1000
            output = worker.new_output()
            memory = worker.max_memory_mb()
            exit_code = None
            if status == "ok":
                self._checkin(worker)
            else:  # hung, died, or failed its init: this environment is done
                exit_code = worker.stop()
                with self._lock:
                    self._workers.discard(worker)
        result_payload, error_type, note = _outcome(status, response, request_id, image, exit_code)
        logs = self._ship_logs(worker, request_id, output + note, duration_ms, memory, init_ms)
        return LambdaResult(result_payload, error_type, logs, cold, duration_ms)

    def invoke_async(self, fn: Any, payload: str, invoked_arn: str | None = None) -> None:
        """Lambda's `Event` invocation type: queue the run and return at once."""

        def run() -> None:
            result = self.invoke(fn, payload, invoked_arn)
            if result.function_error:
                LOG.warning("async invoke of %s failed: %s", fn.function_name, result.payload[:500])
                _send_to_on_failure_destination(fn, payload, result, invoked_arn)

        threading.Thread(target=run, name=f"lambda-event-{fn.function_name}", daemon=True).start()

    def shutdown(self) -> None:
        with self._lock:
            workers = list(self._workers)
            self._workers.clear()
            self._idle.clear()
            self._current.clear()
        for worker in workers:
            worker.stop()

    # -- internals --

    def _slot(self, image: FunctionImage) -> threading.BoundedSemaphore:
        with self._lock:
            return self._slots.setdefault(
                image, threading.BoundedSemaphore(_MAX_WORKERS_PER_FUNCTION)
            )

    def _checkout(self, image: FunctionImage) -> tuple[_Worker, bool]:
        retired: list[_Worker] = []
        found: _Worker | None = None
        with self._lock:
            previous = self._current.get(image.function_arn)
            if previous is not None and previous != image:
                # New code or configuration: retire the old environments, as Lambda does.
                retired.extend(self._idle.pop(previous, []))
            self._current[image.function_arn] = image
            idle = self._idle.get(image, [])
            while idle and found is None:
                worker = idle.pop()
                if worker.alive():
                    found = worker
                else:
                    retired.append(worker)
            for worker in retired:
                self._workers.discard(worker)
        for worker in retired:
            worker.stop()
        if found is not None:
            return found, False
        fresh = _Worker(image, settings().work_dir / "logs", settings().port)
        with self._lock:
            self._workers.add(fresh)
        return fresh, True

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            if worker.alive() and self._current.get(worker.image.function_arn) == worker.image:
                self._idle.setdefault(worker.image, []).append(worker)
                return
            self._workers.discard(worker)
        worker.stop()

    def _image_of(self, fn: Any) -> FunctionImage:
        code_dir, handler = self._code_of(fn)
        runtime = str(fn.run_time or "python3.11")
        variables = fn.environment_vars or {}
        return FunctionImage(
            account_id=str(fn.account_id),
            region=str(fn.region),
            function_name=str(fn.function_name),
            function_arn=str(fn.function_arn),
            version=str(fn.version),
            code_dir=code_dir,
            handler=handler,
            runtime=runtime,
            environment=tuple(sorted((str(k), str(v)) for k, v in variables.items())),
            timeout_s=float(fn.timeout or 3),
            memory_mb=int(fn.memory_size or 128),
            log_group=str(fn.logs_group_name),
        )

    def _code_of(self, fn: Any) -> tuple[Path, str]:
        if fn.package_type == "Image" or "ImageUri" in fn.code:
            image_uri = str(fn.code.get("ImageUri", ""))
            folder = settings().image_folders(image_uri)
            if folder is None:
                raise _SetupError(
                    "Runtime.InvalidEntrypoint",
                    f"no staged code folder for image {image_uri} of function {fn.function_name}",
                )
            command = list(fn.image_config.cmd or []) or _dockerfile_cmd(folder)
            if not command:
                raise _SetupError(
                    "Runtime.InvalidEntrypoint",
                    f"image function {fn.function_name} has no ImageConfig.Command and "
                    f"{folder} has no Dockerfile CMD: the twin cannot tell its handler",
                )
            return folder, str(command[0])
        runtime = str(fn.run_time or "")
        if not runtime.startswith("python"):
            raise _SetupError(
                "Runtime.InvalidRuntime",
                f"the twin runs Python handlers only; function {fn.function_name} uses {runtime!r}",
            )
        return self._extracted_zip(fn), str(fn.handler)

    def _extracted_zip(self, fn: Any) -> Path:
        code = bytes(getattr(fn, "code_bytes", b"") or b"")
        if not code and "S3Bucket" in fn.code:
            code = _s3_object_bytes(fn.account_id, fn.code["S3Bucket"], fn.code["S3Key"])
        if not code:
            raise _SetupError(
                "Runtime.InvalidEntrypoint", f"function {fn.function_name} has no code to run"
            )
        digest = hashlib.sha256(code).hexdigest()
        target = settings().work_dir / "code" / digest
        with self._extract_lock:
            if not target.is_dir():
                staging = target.with_name(f"{digest}.{uuid.uuid4().hex}.partial")
                try:
                    with zipfile.ZipFile(io.BytesIO(code)) as archive:
                        archive.extractall(staging)
                except zipfile.BadZipFile as error:
                    raise _SetupError(
                        "Runtime.InvalidEntrypoint",
                        f"code of function {fn.function_name} is not a zip file: {error}",
                    ) from None
                staging.rename(target)
        return target

    def _ship_logs(
        self,
        worker: _Worker,
        request_id: str,
        output: str,
        duration_ms: float,
        memory: int | None,
        init_ms: float | None,
    ) -> str:
        """Write the invocation's lines to CloudWatch Logs framed like Lambda's; return them."""
        image = worker.image
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {image.memory_mb} MB"
        )
        if memory is not None:
            report += f"\tMax Memory Used: {memory} MB"
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        lines = [
            f"START RequestId: {request_id} Version: {image.version}",
            *output.splitlines(),
            f"END RequestId: {request_id}",
            report,
        ]
        from moto.logs.models import logs_backends

        try:
            logs = logs_backends[image.account_id][image.region]
            logs.ensure_log_group(image.log_group)
            logs.ensure_log_stream(image.log_group, worker.log_stream)
            now = int(time.time() * 1000)
            events = [{"timestamp": now, "message": line} for line in lines if line]
            logs.put_log_events(image.log_group, worker.log_stream, events)
        except Exception as error:  # logs must never fail an invocation
            LOG.warning("could not write logs of %s: %s", image.function_name, error)
        return "\n".join(lines) + "\n"


def _dockerfile_cmd(folder: Path) -> list[str]:
    """The exec-form CMD of the folder's Dockerfile, the handler of a Lambda image."""
    dockerfile = folder / "Dockerfile"
    if not dockerfile.is_file():
        return []
    command: list[str] = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.upper().startswith("CMD "):
            with contextlib.suppress(ValueError):
                parsed = json.loads(stripped[4:])
                command = [str(part) for part in parsed] if isinstance(parsed, list) else []
    return command


def _s3_object_bytes(account_id: str, bucket: str, key: str) -> bytes:
    from moto.s3.models import s3_backends

    try:
        obj = s3_backends[account_id]["aws"].get_object(bucket, key)
    except Exception:
        return b""
    return bytes(obj.value) if obj is not None else b""


_RUNNER_INSTANCE = LambdaRunner()


def runner() -> LambdaRunner:
    return _RUNNER_INSTANCE


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            return str(value)
    return None


INVOKED = threading.local()


def _invoked_arn(fn: Any, name: str, qualifier: str | None) -> str:
    """The ARN the caller named (an alias ARN stays an alias ARN), as context reports it."""
    arn = (
        name
        if name.startswith("arn:")
        else f"{fn.function_arn.split(':function:')[0]}:function:{name}"
    )
    if qualifier and len(arn.split(":")) == 7:
        arn = f"{arn}:{qualifier}"
    return arn


def _invoke_function(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
    """LambdaFunction.invoke for the twin: RequestResponse runs now, Event is queued."""
    invocation_type = _header(request_headers, "x-amz-invocation-type") or "RequestResponse"
    if invocation_type == "DryRun":
        return b""
    payload = body.decode("utf-8") if isinstance(body, bytes) else str(body or "") or "{}"
    invoked = getattr(INVOKED, "target", None)
    invoked_arn = _invoked_arn(self, *invoked) if invoked else None
    if invocation_type == "Event":
        runner().invoke_async(self, payload, invoked_arn)
        return b""
    result = runner().invoke(self, payload, invoked_arn)
    response_headers["x-amz-executed-version"] = str(self.version)
    if result.function_error:
        # What Lambda answers for an error the handler did not catch.
        response_headers["x-amz-function-error"] = "Unhandled"
    if _header(request_headers, "x-amz-log-type") == "Tail":
        tail = result.logs.encode("utf-8")[-_LOG_TAIL_BYTES:]
        response_headers["x-amz-log-result"] = base64.b64encode(tail).decode("ascii")
    return result.payload.encode("utf-8")


def adapt_lambda_invoke() -> None:
    """moto 5.2.5 invokes Lambda only through Docker: run handlers in warm subprocesses.

    Patches `LambdaFunction.invoke`, the point every invoker (API, Step Functions, custom
    resources, event sources) goes through, and `LambdaBackend.invoke` to remember the ARN
    the caller used (the context's `invoked_function_arn` names the alias, as on AWS).
    """
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    backend_invoke = LambdaBackend.invoke

    def invoke_remembering_target(
        self: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> Any:
        INVOKED.target = (function_name, qualifier)
        try:
            return backend_invoke(self, function_name, qualifier, body, headers, response_headers)
        finally:
            INVOKED.target = None

    patch(LambdaFunction, "invoke", _invoke_function)
    patch(LambdaBackend, "invoke", invoke_remembering_target)


def _apply_template_properties(fn: Any, properties: Mapping[str, Any]) -> None:
    from moto.awslambda.models import ImageConfig

    code = properties.get("Code", {})
    fn.package_type = properties.get("PackageType", "Image" if "ImageUri" in code else "Zip")
    fn.image_config = ImageConfig(properties.get("ImageConfig", {}))
    log_group = properties.get("LoggingConfig", {}).get("LogGroup")
    if log_group:
        fn.logs_group_name = log_group
    if "Architectures" in properties:
        fn.architectures = properties["Architectures"]
    if "Tags" in properties:
        fn.tags = {tag["Key"]: tag["Value"] for tag in properties["Tags"]}


def adapt_lambda_template_properties() -> None:
    """moto's CloudFormation drops PackageType, ImageConfig and LoggingConfig of functions.

    Without them an image function has no handler (ImageConfig.Command) and logs go to the
    default group. Wraps `LambdaFunction.create/update_from_cloudformation_json` and, for
    LoggingConfig through the API, `LambdaBackend.create_function`.
    """
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    create_function = LambdaBackend.create_function

    def create_function_with_logging(self: Any, spec: dict[str, Any]) -> Any:
        fn = create_function(self, spec)
        log_group = spec.get("LoggingConfig", {}).get("LogGroup")
        if log_group:
            fn.logs_group_name = log_group
            self.get_function(fn.function_name).logs_group_name = log_group
        return fn

    wrap_template_methods(LambdaFunction, after=_apply_template_properties)
    patch(LambdaBackend, "create_function", create_function_with_logging)


def _sns_lambda_event(
    subscription: Any, message: str, message_id: str, subject: str | None, attributes: Any
) -> str:
    """The event SNS hands a Lambda subscriber (moto's has placeholder topic and attributes)."""
    record = {
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription.arn,
        "EventSource": "aws:sns",
        "Sns": {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": subscription.topic.arn,
            "Subject": subject,
            "Message": message,
            "Timestamp": iso(datetime.now(UTC)),
            "SignatureVersion": "1",
            "Signature": "",
            "SigningCertUrl": "",
            "UnsubscribeUrl": "",
            "MessageAttributes": {
                name: {"Type": value.get("Type"), "Value": value.get("Value")}
                for name, value in (attributes or {}).items()
            },
        },
    }
    return json.dumps({"Records": [record]})


def adapt_async_lambda_sources() -> None:
    """S3 notifications and SNS invoke Lambda asynchronously on AWS; moto blocks the caller.

    Patches `moto.s3.notifications._invoke_awslambda` and the Lambda branch of
    `sns.models.Subscription.publish`, so a PutObject or Publish returns before the handler
    runs, and the SNS event carries the real topic, message id and attributes.
    """
    from moto.awslambda.utils import get_backend
    from moto.s3 import notifications
    from moto.sns.models import Subscription

    publish = Subscription.publish

    def invoke_from_s3(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        try:
            fn = get_backend(account_id, region_name).get_function(fn_arn)
        except Exception as error:  # S3 delivers asynchronously; a bad target is only logged
            LOG.warning("S3 notification target %s: %s", fn_arn, error)
            return
        runner().invoke_async(fn, json.dumps(event_body), fn_arn)

    def publish_to_subscriber(
        self: Any,
        message: str,
        message_id: str,
        subject: str | None = None,
        message_attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        message_structure: str | None = None,
    ) -> None:
        if self.protocol != "lambda":
            publish(
                self,
                message,
                message_id,
                subject=subject,
                message_attributes=message_attributes,
                group_id=group_id,
                deduplication_id=deduplication_id,
                message_structure=message_structure,
            )
            return
        matcher = self._filter_policy_matcher
        if matcher is not None and not matcher.matches(message_attributes, message):
            return
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        region = self.endpoint.split(":")[3]
        try:
            fn = get_backend(self.account_id, region).get_function(self.endpoint)
        except Exception as error:
            LOG.warning("SNS subscription %s: %s", self.arn, error)
            return
        event = _sns_lambda_event(self, message, message_id, subject, message_attributes)
        runner().invoke_async(fn, event, self.endpoint)

    patch(notifications, "_invoke_awslambda", invoke_from_s3)
    patch(Subscription, "publish", publish_to_subscriber)


def on_failure_record(
    function_arn: str, payload: str, result: LambdaResult, *, at: datetime
) -> dict[str, Any]:
    """Lambda's on-failure destination record for a failed asynchronous invocation."""

    def document(text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            return text

    return {
        "version": "1.0",
        "timestamp": iso(at),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 1,  # the twin delivers once and does not retry
        },
        "requestPayload": document(payload),
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": document(result.payload),
    }


def _send_to_on_failure_destination(
    fn: Any, payload: str, result: LambdaResult, invoked_arn: str | None
) -> None:
    """Deliver the record to the function's on-failure SQS destination, if it has one."""
    from moto.sqs.models import sqs_backends
    from moto.utilities.arns import parse_arn

    configs = getattr(fn, "event_invoke_config", None) or []
    destination = next(
        (
            config.config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            for config in configs
        ),
        None,
    )
    if not destination:
        return
    arn = parse_arn(str(destination))
    if arn.service != "sqs":
        LOG.warning("on-failure destination %s of %s: only SQS is delivered", arn, fn.function_name)
        return
    record = on_failure_record(
        invoked_arn or f"{fn.function_arn}:$LATEST", payload, result, at=datetime.now(UTC)
    )
    try:
        sqs_backends[arn.account][arn.region].send_message(arn.resource_id, json.dumps(record))
    except Exception as error:  # Lambda retries destination delivery; the twin only logs
        LOG.warning("on-failure destination %s of %s: %s", destination, fn.function_name, error)
