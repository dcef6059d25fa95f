"""Adapters that let moto 5.2.5 run Driftline's synthesized templates, unmodified, offline.

Stock moto cannot run the MLOps loop: it needs Docker for Lambda, its Step Functions interpreter
does not see state machines created by CloudFormation, EventBridge drops Step Functions
targets, CDK custom resources race (and a stack deletes their provider first), aws-sdk task
outputs break `describe_execution`, CloudWatch alarms are never created from templates nor
evaluated, several resource types the loop depends on are skipped, and some it has ignore
properties (a bucket's versioning) or fail outright (a tagged KMS key). Each section below closes
one gap with one named `adapt_*` function that patches moto at the narrowest point.

`install_adapters` applies them all, once per process, in the process that runs moto's
server (moto's `ThreadedMotoServer` is in-process, so patching its classes changes what the
server does). `check_moto_internals` fails loudly when a moto upgrade moved a patched
internal. `shutdown_adapters` stops the Lambda worker processes. `inject_faults` (section 8)
is a test and chaos hook of the twin, not something AWS has.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import copy
import fnmatch
import hashlib
import hmac
import importlib
import io
import json
import logging
import math
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import moto
from moto.core.common_models import CloudFormationModel

LOG = logging.getLogger("driftline.twin")

MOTO_VERSION = "5.2.5"
"""The moto release every adapter below was written against and tested on."""


class TwinAdapterError(RuntimeError):
    """moto no longer has something an adapter patches: the twin cannot run on it."""


# ---------------------------------------------------------------------------------------------
# Installation, settings and the upgrade guard
# ---------------------------------------------------------------------------------------------


@dataclass
class _Settings:
    port: int
    image_folders: Callable[[str], Path | None]
    work_dir: Path


_SETTINGS: _Settings | None = None
_INSTALLED = False
_INSTALL_LOCK = threading.Lock()

# Every moto internal an adapter patches or relies on: (module, attribute path, adapter).
_PATCH_POINTS: tuple[tuple[str, str, str], ...] = (
    ("moto.awslambda.models", "LambdaFunction.invoke", "adapt_lambda_invoke"),
    ("moto.awslambda.models", "LambdaBackend.invoke", "adapt_lambda_invoke"),
    ("moto.awslambda.models", "ImageConfig", "adapt_lambda_template_properties"),
    (
        "moto.awslambda.models",
        "LambdaFunction.create_from_cloudformation_json",
        "adapt_lambda_template_properties",
    ),
    (
        "moto.awslambda.models",
        "LambdaFunction.update_from_cloudformation_json",
        "adapt_lambda_template_properties",
    ),
    ("moto.awslambda.models", "LambdaBackend.create_function", "adapt_lambda_template_properties"),
    ("moto.s3.notifications", "_invoke_awslambda", "adapt_async_lambda_sources"),
    ("moto.sns.models", "Subscription.publish", "adapt_async_lambda_sources"),
    ("moto.core.config", "default_user_config", "adapt_stepfunctions_backend"),
    ("moto.stepfunctions.models", "stepfunctions_backends", "adapt_stepfunctions_backend"),
    (
        "moto.stepfunctions.models",
        "StateMachine.create_from_cloudformation_json",
        "adapt_stepfunctions_backend",
    ),
    (
        "moto.stepfunctions.models",
        "StateMachine.update_from_cloudformation_json",
        "adapt_stepfunctions_backend",
    ),
    (
        "moto.stepfunctions.parser.models",
        "stepfunctions_parser_backends",
        "adapt_stepfunctions_backend",
    ),
    (
        "moto.stepfunctions.parser.models",
        "StepFunctionsParserBackend.start_execution",
        "adapt_stepfunctions_backend",
    ),
    ("moto.events.models", "Rule.send_to_targets", "adapt_eventbridge_targets"),
    (
        "moto.s3.models",
        "FakeBucket.create_from_cloudformation_json",
        "adapt_s3_bucket_template_properties",
    ),
    (
        "moto.s3.models",
        "FakeBucket.update_from_cloudformation_json",
        "adapt_s3_bucket_template_properties",
    ),
    (
        "moto.s3.models",
        "FakeBucket.set_notification_configuration",
        "adapt_s3_bucket_template_properties",
    ),
    (
        "moto.cloudformation.custom_model",
        "CustomModel.create_from_cloudformation_json",
        "adapt_custom_resources",
    ),
    ("moto.cloudformation.models", "Stack.add_custom_resource", "adapt_custom_resources"),
    ("moto.cloudformation.parsing", "ResourceMap.delete", "adapt_stack_delete_order"),
    ("moto.cloudformation.parsing", "ResourceMap._delete_resource", "adapt_stack_delete_order"),
    (
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
        "state_task_service_aws_sdk",
        "StateTaskServiceAwsSdk._eval_service_task",
        "adapt_sfn_sdk_datetimes",
    ),
    (
        "moto.stepfunctions.parser.backend.execution",
        "Execution.get_start_execution_details",
        "adapt_sfn_sdk_datetimes",
    ),
    ("moto.cloudwatch.models", "CloudWatchBackend.put_metric_alarm", "adapt_cloudwatch_alarms"),
    ("moto.cloudwatch.models", "CloudWatchBackend.put_metric_data", "adapt_cloudwatch_alarms"),
    ("moto.cloudwatch.models", "CloudWatchBackend.set_alarm_state", "adapt_cloudwatch_alarms"),
    ("moto.cloudwatch.models", "CloudWatchBackend.delete_alarms", "adapt_cloudwatch_alarms"),
    ("moto.cloudwatch.models", "Alarm.update_state", "adapt_cloudwatch_alarms"),
    ("moto.cloudwatch.responses", "CloudWatchResponse", "adapt_cloudwatch_alarms"),
    ("moto.logs.models", "LogsBackend.put_log_events", "adapt_emf_metrics"),
    ("moto.events.models", "Rule.send_to_targets", "adapt_schedule_rules"),
    ("moto.cloudwatch.models", "cloudwatch_backends", "adapt_emf_metrics"),
    ("moto.cloudformation.parsing", "get_model_map", "adapt_cloudformation_types"),
    ("moto.cloudformation.parsing", "get_model_list", "adapt_cloudformation_types"),
    ("moto.cloudformation.parsing", "NULL_MODELS", "adapt_cloudformation_types"),
    ("moto.s3.models", "FakeBucket.get_permission", "adapt_cloudformation_types"),
    ("moto.kms.models", "Key.create_from_cloudformation_json", "adapt_kms_key_template"),
    ("moto.kms.models", "KmsBackend.create_key", "adapt_kms_key_template"),
    (
        "moto.scheduler.models",
        "EventBridgeSchedulerBackend.create_schedule",
        "adapt_cloudformation_types",
    ),
    ("moto.awslambda.models", "LambdaFunction.create_url_config", "adapt_function_urls"),
    ("moto.awslambda.models", "FunctionUrlConfig", "adapt_function_urls"),
    (
        "moto.moto_server.werkzeug_app",
        "DomainDispatcherApplication.__call__",
        "adapt_function_urls",
    ),
)


def check_moto_internals(points: tuple[tuple[str, str, str], ...] = _PATCH_POINTS) -> None:
    """Raise TwinAdapterError naming every patched moto internal that no longer exists.

    Runs before any patch is applied, so a moto upgrade fails at startup with a message that
    says which adapter to port, not somewhere deep inside a state machine run.
    """
    missing: list[str] = []
    for module_name, attribute_path, adapter in points:
        try:
            target: Any = importlib.import_module(module_name)
            for part in attribute_path.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{attribute_path} (used by {adapter})")
    if missing:
        raise TwinAdapterError(
            f"moto {moto.__version__} lacks what the twin's adapters patch (written against moto "
            f"{MOTO_VERSION}): {'; '.join(missing)}"
        )


def install_adapters(
    *,
    port: int,
    image_folders: Callable[[str], Path | None],
    work_dir: Path | None = None,
) -> None:
    """Patch moto in this process so the twin can run the templates. Idempotent.

    `port` is where moto's server listens on 127.0.0.1 (handlers, custom resources and moto's
    Step Functions interpreter call back there; MOTO_PORT is set to it);
    `image_folders(image_uri)` maps a container-image Lambda's ImageUri to the staged folder
    holding its code; `work_dir` holds extracted zip code and worker logs (default: a per-user
    folder under the system temp dir).
    """
    global _SETTINGS, _INSTALLED
    directory = work_dir or Path(tempfile.gettempdir()) / f"driftline-twin-{os.getuid()}"
    # moto's Step Functions interpreter calls back to localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    with _INSTALL_LOCK:
        previous = _SETTINGS
        _SETTINGS = _Settings(port=port, image_folders=image_folders, work_dir=directory)
        if previous is not None and previous.port != port:
            # Warm workers hold the old endpoint in their environment.
            _runner().shutdown()
        if _INSTALLED:
            return
        check_moto_internals()
        adapt_lambda_invoke()
        adapt_lambda_template_properties()
        adapt_async_lambda_sources()
        adapt_stepfunctions_backend()
        adapt_eventbridge_targets()
        adapt_s3_bucket_template_properties()
        adapt_custom_resources()
        adapt_stack_delete_order()
        adapt_sfn_sdk_datetimes()
        adapt_cloudwatch_alarms()
        adapt_emf_metrics()
        adapt_schedule_rules()
        adapt_cloudformation_types()
        adapt_kms_key_template()
        adapt_function_urls()
        atexit.register(shutdown_adapters)
        _INSTALLED = True


def shutdown_adapters() -> None:
    """Stop every Lambda worker process and the custom-resource response listener."""
    _runner().shutdown()
    _CUSTOM_RESOURCE_RESPONSES.stop()
    clear_faults()


def _settings() -> _Settings:
    if _SETTINGS is None:
        raise TwinAdapterError("install_adapters(port=..., image_folders=...) has not been called")
    return _SETTINGS


def _patch(owner: Any, name: str, replacement: Any) -> None:
    setattr(owner, name, replacement)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a `Z`, the timestamp form AWS JSON APIs emit."""
    text = _utc(moment).isoformat()
    return text.replace("+00:00", "Z")


class _TwinModel(CloudFormationModel):
    """Base for the CloudFormation resource models the twin adds to moto."""

    physical_id = ""

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    def is_created(self) -> bool:
        return True

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.attributes()

    @classmethod
    def attributes(cls) -> tuple[str, ...]:
        return ()

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name not in self.attributes():
            raise UnformattedGetAttTemplateException()
        return getattr(self, "attr_" + attribute_name)

    def delete(self, account_id: str, region_name: str) -> None:
        """Remove the resource from moto (stack delete, replacement); policies leave nothing."""

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        """Replace: delete the old resource, create the new one (what most updates amount to)."""
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        """Unused: moto calls `delete` on the instance first."""


# ---------------------------------------------------------------------------------------------
# 1. Lambda without Docker: handlers run in warm subprocesses of this interpreter
# ---------------------------------------------------------------------------------------------

_RUNNER_SCRIPT = Path(__file__).with_name("lambda_runner.py")
_MAX_WORKERS_PER_FUNCTION = 4
_INIT_TIMEOUT_S = 30.0  # Lambda allows 10 s; a loaded laptop importing scikit-learn needs more
_LOG_TAIL_BYTES = 4096


class _SetupError(Exception):
    """The function cannot start (no code, no handler, not Python): a Lambda-shaped error."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class _FunctionImage:
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


def _error_payload(error_type: str, message: str) -> str:
    return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": []})


class _Worker:
    """One execution environment: a child process running `lambda_runner.py` for one image."""

    def __init__(self, image: _FunctionImage, log_dir: Path, port: int) -> None:
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


def _worker_environment(image: _FunctionImage, log_stream: str, port: int) -> dict[str, str]:
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
    image: _FunctionImage,
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
        note = f"{_iso(datetime.now(UTC))} {request_id} {message}\n"
        error = f"RequestId: {request_id} Error: {message}"
        return _error_payload("Sandbox.Timedout", error), "Sandbox.Timedout", note
    message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {exit_code}"
    return _error_payload("Runtime.ExitError", message), "Runtime.ExitError", ""


class LambdaRunner:
    """Warm workers per function image, started lazily and replaced when they die or hang."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[_FunctionImage, list[_Worker]] = {}
        self._current: dict[str, _FunctionImage] = {}
        self._slots: dict[_FunctionImage, threading.BoundedSemaphore] = {}
        self._workers: set[_Worker] = set()
        self._extract_lock = threading.Lock()

    def invoke(self, fn: Any, payload: str, invoked_arn: str | None = None) -> LambdaResult:
        """Run moto LambdaFunction `fn` on `payload` (event JSON text); never raises."""
        # A Function URL names the request id in its event before invoking; others get a new one.
        request_id = getattr(_INVOKED, "request_id", None) or str(uuid.uuid4())
        try:
            image = self._image_of(fn)
        except _SetupError as error:
            LOG.warning("lambda %s cannot run: %s", getattr(fn, "function_name", "?"), error)
            return LambdaResult(
                _error_payload(error.error_type, str(error)), error.error_type, "", False, 0.0
            )
        injected = _take_fault(image)
        if injected is not None:
            return injected
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

    def _slot(self, image: _FunctionImage) -> threading.BoundedSemaphore:
        with self._lock:
            return self._slots.setdefault(
                image, threading.BoundedSemaphore(_MAX_WORKERS_PER_FUNCTION)
            )

    def _checkout(self, image: _FunctionImage) -> tuple[_Worker, bool]:
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
        fresh = _Worker(image, _settings().work_dir / "logs", _settings().port)
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

    def _image_of(self, fn: Any) -> _FunctionImage:
        code_dir, handler = self._code_of(fn)
        runtime = str(fn.run_time or "python3.11")
        variables = fn.environment_vars or {}
        return _FunctionImage(
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
            folder = _settings().image_folders(image_uri)
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
        target = _settings().work_dir / "code" / digest
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


def _runner() -> LambdaRunner:
    return _RUNNER_INSTANCE


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            return str(value)
    return None


_INVOKED = threading.local()


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
    invoked = getattr(_INVOKED, "target", None)
    invoked_arn = _invoked_arn(self, *invoked) if invoked else None
    if invocation_type == "Event":
        _runner().invoke_async(self, payload, invoked_arn)
        return b""
    result = _runner().invoke(self, payload, invoked_arn)
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
        _INVOKED.target = (function_name, qualifier)
        try:
            return backend_invoke(self, function_name, qualifier, body, headers, response_headers)
        finally:
            _INVOKED.target = None

    _patch(LambdaFunction, "invoke", _invoke_function)
    _patch(LambdaBackend, "invoke", invoke_remembering_target)


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

    create = LambdaFunction.create_from_cloudformation_json
    update = LambdaFunction.update_from_cloudformation_json
    create_function = LambdaBackend.create_function

    def create_from_template(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        fn = create(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        _apply_template_properties(fn, cloudformation_json["Properties"])
        return fn

    def update_from_template(
        cls: Any,
        /,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        fn = update(
            original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        _apply_template_properties(fn, cloudformation_json["Properties"])
        return fn

    def create_function_with_logging(self: Any, spec: dict[str, Any]) -> Any:
        fn = create_function(self, spec)
        log_group = spec.get("LoggingConfig", {}).get("LogGroup")
        if log_group:
            fn.logs_group_name = log_group
            self.get_function(fn.function_name).logs_group_name = log_group
        return fn

    _patch(LambdaFunction, "create_from_cloudformation_json", classmethod(create_from_template))
    _patch(LambdaFunction, "update_from_cloudformation_json", classmethod(update_from_template))
    _patch(LambdaBackend, "create_function", create_function_with_logging)


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
            "Timestamp": _iso(datetime.now(UTC)),
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
        _runner().invoke_async(fn, json.dumps(event_body), fn_arn)

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
        _runner().invoke_async(fn, event, self.endpoint)

    _patch(notifications, "_invoke_awslambda", invoke_from_s3)
    _patch(Subscription, "publish", publish_to_subscriber)


# ---------------------------------------------------------------------------------------------
# 2. One Step Functions backend that executes what CloudFormation creates
# ---------------------------------------------------------------------------------------------


def _definition_string(properties: dict[str, Any]) -> None:
    """Fold `Definition` and `DefinitionSubstitutions` into the DefinitionString moto reads."""
    definition = properties.get("DefinitionString")
    if definition is None and "Definition" in properties:
        definition = json.dumps(properties["Definition"])
    if definition is None:
        return
    for key, value in properties.get("DefinitionSubstitutions", {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    properties["DefinitionString"] = definition


def adapt_stepfunctions_backend() -> None:
    """moto's ASL interpreter is opt-in and lives in a second backend CloudFormation never uses.

    The switch is `moto.core.config.default_user_config["stepfunctions"]
    ["execute_state_machine"]`; with it on, the API uses `stepfunctions_parser_backends` while
    `StateMachine.create_from_cloudformation_json` writes to `stepfunctions_backends`, so a
    CFN-created machine "does not exist" for StartExecution. Here the models module's name is
    bound to the parser backends too (not the package's: that one tells moto's server where
    the Step Functions URL module lives). Also: an execution started without a name gets a
    UUID (moto names it "None", and the second one then clashes), and `Definition` /
    `DefinitionSubstitutions` are honoured.
    """
    from moto.core.config import default_user_config
    from moto.stepfunctions import models as sfn_models
    from moto.stepfunctions.parser.models import (
        StepFunctionsParserBackend,
        stepfunctions_parser_backends,
    )

    default_user_config["stepfunctions"]["execute_state_machine"] = True
    _patch(sfn_models, "stepfunctions_backends", stepfunctions_parser_backends)

    start_execution: Any = StepFunctionsParserBackend.start_execution

    def start_named_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: str | None = None,
    ) -> Any:
        return start_execution(
            self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header
        )

    _patch(StepFunctionsParserBackend, "start_execution", start_named_execution)

    machine = sfn_models.StateMachine
    create = machine.create_from_cloudformation_json
    update = machine.update_from_cloudformation_json

    def create_from_template(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        _definition_string(cloudformation_json["Properties"])
        return create(resource_name, cloudformation_json, account_id, region_name, **kwargs)

    def update_from_template(
        cls: Any,
        /,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        _definition_string(cloudformation_json.get("Properties", {}))
        return update(
            original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )

    _patch(machine, "create_from_cloudformation_json", classmethod(create_from_template))
    _patch(machine, "update_from_cloudformation_json", classmethod(update_from_template))


# ---------------------------------------------------------------------------------------------
# 3. EventBridge delivers to Step Functions (and Lambda) targets
# ---------------------------------------------------------------------------------------------

_BASE_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"


def _json_path(document: Any, path: str) -> Any:
    from jsonpath_ng.ext.parser import parse

    matches = parse(path).find(document)
    return matches[0].value if matches else None


def _normalised_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """moto's event as EventBridge sends it: ISO time, unique id, S3 details like real S3."""
    normalised = copy.deepcopy(dict(event))
    if normalised.get("id") == _BASE_EVENT_ID:
        # moto's S3 notifications reuse the template's id for every event.
        normalised["id"] = str(uuid.uuid4())
    if normalised.get("source") == "aws.s3":
        obj = normalised.get("detail", {}).get("object")
        if isinstance(obj, dict) and obj.get("version-id") is None:
            # Real S3 sends version-id only for versioned buckets.
            obj.pop("version-id", None)
    return normalised


def _delivered_event(event: Mapping[str, Any]) -> dict[str, Any]:
    delivered = _normalised_event(event)
    delivered.pop("ingestion-time", None)
    moment = delivered.get("time")
    if isinstance(moment, int | float):
        delivered["time"] = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return delivered


def render_input_template(template: str, values: Mapping[str, Any]) -> str:
    """Fill EventBridge InputTemplate `<name>` placeholders the way EventBridge does.

    Outside a JSON string a value goes in as JSON (strings quoted); inside a JSON string it
    goes in as escaped string content; a template that is not JSON (plain text) gets strings
    raw. A missing value is `null` in JSON and empty inside a string.
    """
    json_mode = template.lstrip()[:1] in ("{", "[", '"')
    out: list[str] = []
    in_string = False
    index = 0
    while index < len(template):
        char = template[index]
        if in_string and char == "\\":
            out.append(template[index : index + 2])
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        elif char == "<":
            end = template.find(">", index)
            name = template[index + 1 : end] if end != -1 else ""
            if name in values:
                out.append(_render_value(values[name], json_mode, in_string))
                index = end + 1
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _render_value(value: Any, json_mode: bool, in_string: bool) -> str:
    if not json_mode:
        return value if isinstance(value, str) else json.dumps(value)
    if in_string:
        if value is None:
            return ""
        text = value if isinstance(value, str) else json.dumps(value)
        return json.dumps(text)[1:-1]
    return json.dumps(value)


def target_input(
    target: Mapping[str, Any], event: Mapping[str, Any], rule_name: str, rule_arn: str
) -> str:
    """The JSON text EventBridge sends `target` for `event`: Input/InputPath/InputTransformer."""
    if "Input" in target:
        return str(target["Input"])
    if "InputPath" in target:
        return json.dumps(_json_path(event, str(target["InputPath"])))
    transformer = target.get("InputTransformer")
    if not transformer:
        return json.dumps(event)
    values = {
        name: _json_path(event, str(path))
        for name, path in transformer.get("InputPathsMap", {}).items()
    }
    without_detail = {key: value for key, value in event.items() if key != "detail"}
    values.update(
        {
            "aws.events.rule-arn": rule_arn,
            "aws.events.rule-name": rule_name,
            "aws.events.event.ingestion-time": event.get("time"),
            "aws.events.event": without_detail,
            "aws.events.event.json": event,
        }
    )
    return render_input_template(str(transformer["InputTemplate"]), values)


def _deliver(rule: Any, target: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    from moto.awslambda.utils import get_backend
    from moto.stepfunctions import models as sfn_models
    from moto.utilities.arns import parse_arn

    arn = parse_arn(str(target["Arn"]))
    payload = target_input(target, event, rule.name, rule.arn)
    if arn.service == "states":
        json.loads(payload)  # Step Functions rejects non-JSON input
        backend = sfn_models.stepfunctions_backends[arn.account][arn.region]
        backend.start_execution(str(target["Arn"]), name=str(uuid.uuid4()), execution_input=payload)
    else:
        fn = get_backend(arn.account, arn.region).get_function(str(target["Arn"]))
        _runner().invoke_async(fn, payload, str(target["Arn"]))


def adapt_eventbridge_targets() -> None:
    """moto 5.2.5 raises NotImplementedError for Step Functions and Lambda rule targets.

    S3's EventBridge notifications swallow that error, so an upload starts nothing. Wraps
    `Rule.send_to_targets`: state machine targets start an execution and Lambda targets are
    invoked asynchronously, with Input/InputPath/InputTransformer applied; other targets go
    on to moto. Events are normalised on the way (S3's `version-id` only when versioned).
    """
    from moto.events.models import Rule
    from moto.utilities.arns import parse_arn

    send_to_targets: Any = Rule.send_to_targets

    def send_to_all_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if not self.event_pattern.matches_event(original_event):
            return
        ours = [t for t in self.targets if parse_arn(t["Arn"]).service in ("states", "lambda")]
        rest = [t for t in self.targets if t not in ours]
        delivered = _delivered_event(original_event)
        for target in ours:
            try:
                _deliver(self, target, delivered)
            except Exception as error:  # EventBridge delivery is asynchronous: log, never raise
                LOG.warning("rule %s target %s: %s", self.name, target.get("Id"), error)
        if rest:
            others = copy.copy(self)
            others.targets = rest
            send_to_targets(others, _normalised_event(original_event), transform_input)

    _patch(Rule, "send_to_targets", send_to_all_targets)


def _apply_bucket_properties(bucket: Any, properties: Mapping[str, Any]) -> None:
    versioning = properties.get("VersioningConfiguration", {}).get("Status")
    if versioning:
        bucket.versioning_status = versioning
    notifications = properties.get("NotificationConfiguration", {})
    if "EventBridgeConfiguration" in notifications and bucket.notification_configuration is None:
        bucket.set_notification_configuration({"EventBridgeConfiguration": {}})


def adapt_s3_bucket_template_properties() -> None:
    """moto's CloudFormation ignores a bucket's VersioningConfiguration and EventBridge switch.

    A versioned datasets bucket must give its uploads version ids (and its "Object Created"
    events a `version-id`), and a bucket may turn EventBridge on in the template itself rather
    than through CDK's notifications custom resource. Wraps `FakeBucket.create/update_from_
    cloudformation_json`.
    """
    from moto.s3.models import FakeBucket

    create = FakeBucket.create_from_cloudformation_json
    update = FakeBucket.update_from_cloudformation_json

    def create_from_template(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        bucket = create(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        _apply_bucket_properties(bucket, cloudformation_json.get("Properties", {}))
        return bucket

    def update_from_template(
        cls: Any,
        /,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        bucket = update(
            original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        _apply_bucket_properties(bucket, cloudformation_json.get("Properties", {}))
        return bucket

    _patch(FakeBucket, "create_from_cloudformation_json", classmethod(create_from_template))
    _patch(FakeBucket, "update_from_cloudformation_json", classmethod(update_from_template))


# ---------------------------------------------------------------------------------------------
# 4. CDK custom resources: synchronous, with CloudFormation's string properties
# ---------------------------------------------------------------------------------------------


def cfn_stringified(value: Any) -> Any:
    """CloudFormation hands custom resources every scalar property as a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return {key: cfn_stringified(item) for key, item in value.items()}
    if isinstance(value, list):
        return [cfn_stringified(item) for item in value]
    return value


@dataclass
class _PendingResponse:
    arrived: threading.Event = field(default_factory=threading.Event)
    body: dict[str, Any] | None = None


class _ResponseListener:
    """A private HTTP endpoint for custom resources' ResponseURL PUTs.

    moto's own endpoint runs `Stack.verify_readiness` in the request thread, which creates
    any resource not created yet *concurrently* with the thread still creating the stack:
    resources get created twice and the stack can report CREATE_COMPLETE early. The twin
    instead invokes the handler synchronously and collects its response here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, _PendingResponse] = {}
        self._server: ThreadingHTTPServer | None = None

    def url_for(self, request_id: str) -> str:
        with self._lock:
            if self._server is None:
                self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
                self._server.daemon_threads = True
                threading.Thread(
                    target=self._server.serve_forever, name="cfn-response-listener", daemon=True
                ).start()
            self._pending[request_id] = _PendingResponse()
            port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/{request_id}"

    def wait(self, request_id: str, timeout_s: float) -> dict[str, Any] | None:
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None or not pending.arrived.wait(timeout_s):
            return None
        return pending.body

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._pending.pop(request_id, None)

    def deliver(self, request_id: str, body: dict[str, Any]) -> bool:
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None:
            return False
        pending.body = body
        pending.arrived.set()
        return True

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = None
                known = isinstance(body, dict) and listener.deliver(self.path.strip("/"), body)
                self.send_response(200 if known else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug("custom resource response: " + format, *args)

        return Handler


_CUSTOM_RESOURCE_RESPONSES = _ResponseListener()


def _custom_resource_request(
    service_token: str,
    account_id: str,
    region_name: str,
    event: dict[str, Any],
) -> dict[str, Any]:
    """Invoke the provider with `event`, wait for its response, raise if it failed."""
    from moto.awslambda.utils import get_backend
    from moto.cloudformation.exceptions import ValidationError

    where = f"{event['LogicalResourceId']} ({event['ResourceType']})"
    try:
        fn = get_backend(account_id, region_name).get_function(service_token)
    except Exception as error:
        raise ValidationError(message=f"{where}: service token {service_token}: {error}") from None
    request_id = event["RequestId"]
    event["ResponseURL"] = _CUSTOM_RESOURCE_RESPONSES.url_for(request_id)
    try:
        result = _runner().invoke(fn, json.dumps(event))
        body = _CUSTOM_RESOURCE_RESPONSES.wait(request_id, timeout_s=5.0)
    finally:
        _CUSTOM_RESOURCE_RESPONSES.forget(request_id)
    if body is None:
        detail = (
            result.payload if result.function_error else "no response was sent to the ResponseURL"
        )
        raise ValidationError(message=f"{where}: {event['RequestType']} failed: {detail}")
    if body.get("Status") != "SUCCESS":
        reason = body.get("Reason") or "the handler reported FAILED"
        raise ValidationError(message=f"{where}: {event['RequestType']} failed: {reason}")
    return body


def _custom_event(
    request_type: str,
    stack_id: str,
    logical_id: str,
    resource_type: str,
    properties: dict[str, Any],
) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ServiceToken": properties.get("ServiceToken"),
        "StackId": stack_id,
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResourceProperties": properties,
    }


def adapt_custom_resources() -> None:
    """Custom resources race in moto 5.2.5 and get booleans where CloudFormation sends strings.

    moto starts the provider Lambda in a thread and returns; its response, PUT to moto's own
    endpoint, runs `verify_readiness`, which creates the stack's remaining resources from the
    response thread while the creating thread goes on creating them too. Here the provider
    runs synchronously, its response comes back on a private listener, and the resource exists
    (with its PhysicalResourceId and Data) once `create_from_cloudformation_json` returns.
    Properties are stringified (True -> "true") as CloudFormation does, and Update and Delete
    requests reach the provider too (moto sends neither).
    """
    from moto.cloudformation import models as cfn_models
    from moto.cloudformation.custom_model import CustomModel

    new_custom_resource: Any = CustomModel  # abstract to mypy; moto instantiates it too

    def create(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = cfn_stringified(cloudformation_json["Properties"])
        event = _custom_event(
            "Create", kwargs["StackId"], kwargs["LogicalId"], kwargs["ResourceType"], properties
        )
        body = _custom_resource_request(properties["ServiceToken"], account_id, region_name, event)
        resource: Any = new_custom_resource(
            region_name, event["RequestId"], kwargs["LogicalId"], resource_name
        )
        resource.resource_name = str(body.get("PhysicalResourceId") or resource_name)
        resource.set_data(body.get("Data") or {})
        resource.twin_request = {
            "stack_id": kwargs["StackId"],
            "resource_type": kwargs["ResourceType"],
            "properties": properties,
            "account_id": account_id,
        }
        stack = cfn_models.cloudformation_backends[account_id][region_name].get_stack(
            kwargs["StackId"]
        )
        stack.add_custom_resource(resource)
        return resource

    def update(
        cls: Any,
        /,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        previous = original_resource.twin_request
        properties = cfn_stringified(cloudformation_json["Properties"])
        event = _custom_event(
            "Update",
            previous["stack_id"],
            original_resource.logical_id,
            previous["resource_type"],
            properties,
        )
        event["PhysicalResourceId"] = original_resource.resource_name
        event["OldResourceProperties"] = previous["properties"]
        body = _custom_resource_request(properties["ServiceToken"], account_id, region_name, event)
        original_resource.resource_name = str(
            body.get("PhysicalResourceId") or original_resource.resource_name
        )
        original_resource.set_data(body.get("Data") or {})
        original_resource.twin_request = {**previous, "properties": properties}
        return original_resource

    def delete(self: Any, account_id: str, region_name: str) -> None:
        previous = getattr(self, "twin_request", None)
        if previous is None:
            return
        event = _custom_event(
            "Delete",
            previous["stack_id"],
            self.logical_id,
            previous["resource_type"],
            previous["properties"],
        )
        event["PhysicalResourceId"] = self.resource_name
        try:
            _custom_resource_request(
                previous["properties"]["ServiceToken"], account_id, region_name, event
            )
        except Exception as error:
            # moto deletes in no particular order, so a provider may find its target gone.
            LOG.warning("custom resource %s: %s", self.logical_id, error)

    _patch(CustomModel, "create_from_cloudformation_json", classmethod(create))
    _patch(CustomModel, "update_from_cloudformation_json", classmethod(update))
    _patch(CustomModel, "delete", delete)


def _references(node: Any) -> set[str]:
    """Logical IDs a template fragment points at (Ref, GetAtt, ${X} in Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("Ref"), str):
            found.add(node["Ref"])
        attribute = node.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute:
            found.add(str(attribute[0]))
        elif isinstance(attribute, str):
            found.add(attribute.split(".")[0])
        substitution = node.get("Fn::Sub")
        text = substitution[0] if isinstance(substitution, list) else substitution
        if isinstance(text, str):
            found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
        for value in node.values():
            found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def deletion_order(resources: Mapping[str, Any]) -> list[str]:
    """Logical IDs with every resource before the ones it depends on (CloudFormation's order)."""
    depends: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        explicit = resource.get("DependsOn", [])
        explicit = [explicit] if isinstance(explicit, str) else list(explicit)
        wanted = _references(resource.get("Properties", {})) | set(explicit)
        depends[logical_id] = {d for d in wanted if d in resources and d != logical_id}
    created: list[str] = []
    done: set[str] = set()

    def visit(logical_id: str, path: frozenset[str]) -> None:
        if logical_id in done or logical_id in path:
            return
        for dependency in sorted(depends[logical_id]):
            visit(dependency, path | {logical_id})
        done.add(logical_id)
        created.append(logical_id)

    for logical_id in sorted(resources):
        visit(logical_id, frozenset())
    return list(reversed(created))


def adapt_stack_delete_order() -> None:
    """moto deletes a stack's resources in set order, so a provider can go before its resource.

    Then a custom resource's Delete cannot reach its Lambda (and an alias outlives nothing
    it needs). Wraps `ResourceMap.delete` to delete dependents first, as CloudFormation does;
    moto's own retry loop then handles whatever is left.
    """
    from moto.cloudformation.parsing import ResourceMap

    delete = ResourceMap.delete

    def delete_dependents_first(self: Any) -> None:
        for logical_id in deletion_order(self._resource_json_map):
            resource_json = self._resource_json_map[logical_id]
            parsed = self._parsed_resources.get(logical_id)
            if resource_json.get("DeletionPolicy") == "Retain" or parsed is None:
                continue
            if isinstance(parsed, str):
                continue
            try:
                self._delete_resource(parsed, resource_json)
            except Exception as error:  # moto's loop below retries, and raises if still stuck
                LOG.debug("deleting %s failed, left to moto's retries: %s", logical_id, error)
            else:
                self._parsed_resources.pop(logical_id, None)
        delete(self)

    _patch(ResourceMap, "delete", delete_dependents_first)


# ---------------------------------------------------------------------------------------------
# 5. aws-sdk task outputs as JSON (datetimes as ISO-8601 strings)
# ---------------------------------------------------------------------------------------------


def json_ready(value: Any) -> Any:
    """A boto3 response as Step Functions' JSON sees it: timestamps and bodies become strings."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if hasattr(value, "read") and callable(value.read):
        data = value.read()
        return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
    return value


def adapt_sfn_sdk_datetimes() -> None:
    """aws-sdk task results keep boto3's datetimes, so `describe_execution` answers HTTP 500.

    (`json.dumps` of the execution output fails.) Wraps the aws-sdk task's
    `_eval_service_task` so its result is JSON-ready before later states see it, as on AWS.
    """
    module = importlib.import_module(
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
        "state_task_service_aws_sdk"
    )
    task_class = module.StateTaskServiceAwsSdk
    evaluate = task_class._eval_service_task

    def eval_json_ready(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        evaluate(self, env, *args, **kwargs)
        env.stack.append(json_ready(env.stack.pop()))

    _patch(task_class, "_eval_service_task", eval_json_ready)

    # The context object's `$$.Execution.StartTime` is an ISO-8601 string on AWS; moto passes
    # its datetime through, so a Pass state that copies it breaks `describe_execution` too.
    execution_module = importlib.import_module("moto.stepfunctions.parser.backend.execution")
    execution_class = execution_module.Execution
    start_details = execution_class.get_start_execution_details

    def iso_start_details(self: Any) -> Any:
        details = start_details(self)
        if isinstance(details.start_time, datetime):
            details.start_time = json_ready(details.start_time)
        return details

    _patch(execution_class, "get_start_execution_details", iso_start_details)


# ---------------------------------------------------------------------------------------------
# 6. CloudWatch alarms: created from templates, evaluated, acting on state changes
# ---------------------------------------------------------------------------------------------

_ALARM_LOCK = threading.RLock()
_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
_STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")
_REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
}


@dataclass(frozen=True)
class _AlarmMetric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    period: int
    statistic: str
    unit: str | None


def _alarm_metric(alarm: Any) -> _AlarmMetric:
    """The single metric a metric alarm watches (directly or as one MetricStat query)."""
    from moto.cloudwatch.exceptions import ValidationError

    if alarm.metric_data_queries:
        stats = [q for q in alarm.metric_data_queries if q.metric_stat is not None]
        if len(alarm.metric_data_queries) != 1 or len(stats) != 1:
            raise ValidationError(
                f"alarm {alarm.name}: metric math (Metrics with an Expression that is not a "
                "Metrics Insights SELECT) is not evaluated by the twin"
            )
        stat = stats[0].metric_stat
        metric = stat.metric
        dimensions = tuple(sorted((d.name, d.value) for d in metric.dimensions))
        return _AlarmMetric(
            metric.namespace,
            metric.metric_name,
            dimensions,
            int(stat.period),
            str(stat.stat),
            stat.unit,
        )
    statistic = alarm.extended_statistic or alarm.statistic
    dimensions = tuple(sorted((d.name, d.value) for d in alarm.dimensions))
    return _AlarmMetric(
        alarm.namespace,
        alarm.metric_name,
        dimensions,
        int(alarm.period),
        str(statistic),
        alarm.unit,
    )


# Metrics Insights alarms: one `SELECT` query in Metrics, evaluated per returned time series.
_INSIGHTS_FUNCTIONS = {
    "AVG": "Average",
    "COUNT": "SampleCount",
    "MAX": "Maximum",
    "MIN": "Minimum",
    "SUM": "Sum",
}
_INSIGHTS_KEYWORDS = frozenset(
    {"SELECT", "FROM", "SCHEMA", "WHERE", "AND", "OR", "GROUP", "BY", "ORDER", "ASC", "DESC"}
    | {"LIMIT", *_INSIGHTS_FUNCTIONS}
)
_INSIGHTS_TOKENS = re.compile(
    r"""\s*(?:
        (?P<value>'(?:[^'\\]|\\.)*')
        |(?P<quoted>"(?:[^"\\]|\\.)*")
        |(?P<symbol>!=|[=(),])
        |(?P<word>\w+)
    )""",
    re.VERBOSE,
)
_INSIGHTS_SUBSET = (
    "the twin evaluates SELECT AVG|COUNT|MAX|MIN|SUM(metric) FROM namespace | "
    "SCHEMA(namespace[, key...]) [WHERE key =|!= 'value' [AND ...]] [GROUP BY key[, key...]] "
    "[ORDER BY FUNCTION() [ASC|DESC]] [LIMIT n]"
)


@dataclass(frozen=True)
class _InsightsQuery:
    query_id: str
    expression: str
    period: int
    function: str  # AVG, COUNT, MAX, MIN or SUM
    metric: str
    namespace: str
    schema: tuple[str, ...] | None  # SCHEMA(...): a metric's dimension keys must be exactly these
    where: tuple[tuple[str, str, str], ...]  # (key, "=" or "!=", value), all must hold
    group_by: tuple[str, ...]
    order: tuple[str, bool] | None  # (function, descending)
    limit: int | None


class _InsightsParser:
    """Cursor over a Metrics Insights query's tokens; raises ValueError saying what is wrong."""

    def __init__(self, expression: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        self.index = 0
        position, text = 0, expression.rstrip()
        while position < len(text):
            match = _INSIGHTS_TOKENS.match(text, position)
            if match is None:
                raise ValueError(f"cannot parse {text[position:].strip()!r}")
            kind = str(match.lastgroup)
            token = match.group(kind)
            if kind in ("value", "quoted"):
                token = re.sub(r"\\(.)", r"\1", token[1:-1])
            self.tokens.append((kind, token))
            position = match.end()

    def _next(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _unexpected(self, wanted: str) -> ValueError:
        found = self._next()
        return ValueError(
            f"expected {wanted} but found {found[1]!r}"
            if found
            else f"ends early, expected {wanted}"
        )

    def keyword(self, *words: str) -> str | None:
        found = self._next()
        if found and found[0] == "word" and found[1].upper() in words:
            self.index += 1
            return found[1].upper()
        return None

    def expect_keyword(self, word: str) -> None:
        if self.keyword(word) is None:
            raise self._unexpected(word)

    def symbol(self, symbol: str) -> bool:
        if self._next() == ("symbol", symbol):
            self.index += 1
            return True
        return False

    def expect_symbol(self, symbol: str) -> None:
        if not self.symbol(symbol):
            raise self._unexpected(repr(symbol))

    def function(self) -> str:
        name = self.keyword(*_INSIGHTS_FUNCTIONS)
        if name is None:
            raise self._unexpected(f"one of {', '.join(_INSIGHTS_FUNCTIONS)}")
        return name

    def identifier(self, what: str) -> str:
        found = self._next()
        if found and (found[0] == "quoted" or (found[0] == "word" and not found[1].isdigit())):
            if found[0] == "word" and found[1].upper() in _INSIGHTS_KEYWORDS:
                raise ValueError(f"{what} {found[1]!r} is a keyword: double-quote it")
            self.index += 1
            return found[1]
        raise self._unexpected(what)

    def comparison(self) -> tuple[str, str, str]:
        key = self.identifier("a dimension key")
        found = self._next()
        if found not in (("symbol", "="), ("symbol", "!=")):
            raise self._unexpected("= or !=")
        self.index += 1
        value = self._next()
        if value is None or value[0] != "value":
            raise self._unexpected("a 'single-quoted' value")
        self.index += 1
        return key, found[1], value[1]

    def number(self) -> int:
        found = self._next()
        if found is None or found[0] != "word" or not found[1].isdigit():
            raise self._unexpected("a number")
        self.index += 1
        return int(found[1])

    def end(self) -> None:
        if self._next() is not None:
            raise self._unexpected("the end of the query")


def _parse_insights_query(expression: str, query_id: str, period: int) -> _InsightsQuery:
    """Parse the Metrics Insights subset the twin evaluates (see `_INSIGHTS_SUBSET`)."""
    parser = _InsightsParser(expression)
    parser.expect_keyword("SELECT")
    function = parser.function()
    parser.expect_symbol("(")
    metric = parser.identifier("a metric name")
    parser.expect_symbol(")")
    parser.expect_keyword("FROM")
    schema: tuple[str, ...] | None = None
    if parser.keyword("SCHEMA"):
        parser.expect_symbol("(")
        namespace = parser.identifier("a namespace")
        keys: list[str] = []
        while parser.symbol(","):
            keys.append(parser.identifier("a dimension key"))
        parser.expect_symbol(")")
        schema = tuple(keys)
    else:
        namespace = parser.identifier("a namespace or SCHEMA(...)")
    where: list[tuple[str, str, str]] = []
    if parser.keyword("WHERE"):
        where.append(parser.comparison())
        while parser.keyword("AND"):
            where.append(parser.comparison())
    group_by: list[str] = []
    if parser.keyword("GROUP"):
        parser.expect_keyword("BY")
        group_by.append(parser.identifier("a dimension key"))
        while parser.symbol(","):
            group_by.append(parser.identifier("a dimension key"))
    order: tuple[str, bool] | None = None
    if parser.keyword("ORDER"):
        parser.expect_keyword("BY")
        order_function = parser.function()
        parser.expect_symbol("(")
        parser.expect_symbol(")")
        order = (order_function, parser.keyword("ASC", "DESC") == "DESC")
    limit: int | None = None
    if parser.keyword("LIMIT"):
        limit = parser.number()
        if not 1 <= limit <= 500:
            raise ValueError(f"LIMIT {limit} is outside 1..500")
    parser.end()
    return _InsightsQuery(
        query_id=query_id,
        expression=expression,
        period=period,
        function=function,
        metric=metric,
        namespace=namespace,
        schema=schema,
        where=tuple(where),
        group_by=tuple(group_by),
        order=order,
        limit=limit,
    )


def _insights_query(alarm: Any) -> _InsightsQuery | None:
    """The Metrics Insights query a metric alarm watches; None when Metrics has no SELECT."""
    from moto.cloudwatch.exceptions import ValidationError

    queries = list(alarm.metric_data_queries or [])
    selects = [q for q in queries if str(q.expression or "").lstrip()[:6].upper() == "SELECT"]
    if not selects:
        return None
    query = selects[0]
    if len(queries) != 1:
        raise ValidationError(
            f"alarm {alarm.name}: a Metrics Insights query must be the only entry in Metrics "
            "(the twin does not combine it with other queries or metric math)"
        )
    try:
        period = int(query.period or 0)
    except (TypeError, ValueError):
        period = 0
    if period <= 0:
        raise ValidationError(f"alarm {alarm.name}: the Metrics Insights query needs a Period")
    try:
        return _parse_insights_query(str(query.expression).strip(), str(query.id), period)
    except ValueError as error:
        raise ValidationError(
            f"alarm {alarm.name}: Metrics Insights query {str(query.expression).strip()!r}: "
            f"{error}; {_INSIGHTS_SUBSET}"
        ) from None


def _alarm_namespace(alarm: Any) -> str:
    query = _insights_query(alarm)
    return query.namespace if query is not None else _alarm_metric(alarm).namespace


def _validate_alarm(alarm: Any) -> None:
    from moto.cloudwatch.exceptions import ValidationError

    if alarm.rule is not None:
        _parse_alarm_rule(alarm.rule)
        return
    if alarm.comparison_operator not in _COMPARISONS:
        raise ValidationError(
            f"alarm {alarm.name}: ComparisonOperator {alarm.comparison_operator} (anomaly "
            "detection "
            f"bands) is not evaluated by the twin; use one of {', '.join(_COMPARISONS)}"
        )
    query = _insights_query(alarm)
    if query is not None:
        period = query.period
    else:
        metric = _alarm_metric(alarm)
        if metric.statistic not in _STATISTICS and not _PERCENTILE.match(metric.statistic):
            raise ValidationError(
                f"alarm {alarm.name}: statistic {metric.statistic} is not evaluated by the twin "
                f"(supported: {', '.join(_STATISTICS)}, pNN)"
            )
        period = metric.period
    if period <= 0 or int(alarm.evaluation_periods or 0) <= 0:
        raise ValidationError(f"alarm {alarm.name}: Period and EvaluationPeriods must be positive")
    if alarm.treat_missing_data not in (None, "missing", "notBreaching", "breaching", "ignore"):
        raise ValidationError(
            f"alarm {alarm.name}: TreatMissingData {alarm.treat_missing_data} is not valid"
        )


def _period_value(data: list[Any], statistic: str) -> float | None:
    """One period's statistic over moto's datums (single values and statistic sets)."""
    values = [float(d.value) for d in data if hasattr(d, "value")]
    sets = [d for d in data if not hasattr(d, "value")]
    count = len(values) + sum(float(s.sample_count) for s in sets)
    if count == 0:
        return None
    total = sum(values) + sum(float(s.sum) for s in sets)
    if statistic == "SampleCount":
        return count
    if statistic == "Sum":
        return total
    if statistic == "Average":
        return total / count
    if statistic == "Minimum":
        return min([*values, *(float(s.min) for s in sets)])
    if statistic == "Maximum":
        return max([*values, *(float(s.max) for s in sets)])
    if not values:
        return None  # percentiles need the individual values
    ordered = sorted(values)
    rank = math.ceil(float(statistic[1:]) / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def _datum_dimensions(datum: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((d.name, d.value) for d in datum.dimensions))


def _window_start(now: datetime, period: int, periods: int) -> int:
    """Start (epoch seconds) of the last `periods` periods, the current partial one included."""
    end = (math.floor(now.timestamp() / period) + 1) * period
    return end - periods * period


def _period_index(datum: Any, start: int, period: int, periods: int) -> int | None:
    """Which of the window's periods `datum` falls in (None: outside the window)."""
    index = math.floor((_utc(datum.timestamp).timestamp() - start) / period)
    return index if 0 <= index < periods else None


def _evaluate_metric_alarm(backend: Any, alarm: Any, now: datetime) -> tuple[str, str, str]:
    """(state, reason, reason data) from the last EvaluationPeriods periods, M out of N."""
    metric = _alarm_metric(alarm)
    periods = int(alarm.evaluation_periods)
    start = _window_start(now, metric.period, periods)
    buckets: list[list[Any]] = [[] for _ in range(periods)]
    for datum in list(backend.metric_data):
        if datum.namespace != metric.namespace or datum.name != metric.name:
            continue
        if _datum_dimensions(datum) != metric.dimensions:
            continue
        if metric.unit and datum.unit and datum.unit != metric.unit:
            continue
        index = _period_index(datum, start, metric.period, periods)
        if index is not None:
            buckets[index].append(datum)
    values = [_period_value(bucket, metric.statistic) for bucket in buckets]
    return _judge_periods(alarm, values, start, metric.period, metric.statistic, now)


def _breaches(alarm: Any, values: list[float | None]) -> list[bool]:
    """Per period: does it breach? Missing periods count per TreatMissingData or are skipped."""
    compare, _ = _COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    treat = alarm.treat_missing_data or "missing"
    flags: list[bool] = []
    for value in values:
        if value is not None:
            flags.append(compare(value, threshold))
        elif treat == "breaching":
            flags.append(True)
        elif treat == "notBreaching":
            flags.append(False)
    return flags


def _judge_periods(
    alarm: Any,
    values: list[float | None],
    start: int,
    period: int,
    statistic: str,
    now: datetime,
) -> tuple[str, str, str]:
    """(state, reason, reason data) of one series' per-period values (oldest first), M of N."""
    periods = len(values)
    needed = int(alarm.datapoints_to_alarm or periods)
    _, wording = _COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    treat = alarm.treat_missing_data or "missing"
    flags = _breaches(alarm, values)
    present = [
        (value, datetime.fromtimestamp(start + i * period, UTC))
        for i, value in enumerate(values)
        if value is not None
    ]
    shown = ", ".join(f"{v} ({m:%d/%m/%y %H:%M:%S})" for v, m in reversed(present))
    reason_data = json.dumps(
        {
            "version": "1.0",
            "queryDate": _iso(now),
            "startDate": _iso(datetime.fromtimestamp(start, UTC)),
            "statistic": statistic,
            "period": period,
            "recentDatapoints": [v for v, _ in present],
            "threshold": threshold,
            "evaluatedDatapoints": [
                {"timestamp": _iso(m), "value": v} for v, m in reversed(present)
            ],
        }
    )
    if not flags:
        if treat == "ignore":
            return alarm.state_value, alarm.state_reason, alarm.state_reason_data
        reason = (
            f"Insufficient Data: {periods} datapoint{'s were' if periods > 1 else ' was'} unknown."
        )
        return "INSUFFICIENT_DATA", reason, reason_data
    # With data missing ("missing"/"ignore"), CloudWatch judges on the datapoints it has.
    required = needed if treat in ("breaching", "notBreaching") else min(needed, len(flags))
    breaching = sum(flags)
    if breaching >= required:
        reason = (
            f"Threshold Crossed: {breaching} out of the last {len(flags)} datapoints [{shown}] "
            f"{'was' if breaching == 1 else 'were'} {wording} the threshold ({threshold}) "
            f"(minimum {required} datapoint{'s' if required > 1 else ''} "
            "for OK -> ALARM transition)."
        )
        return "ALARM", reason, reason_data
    reason = (
        f"Threshold Crossed: {len(flags) - breaching} out of the last {len(flags)} datapoints "
        f"[{shown}] {'was' if len(flags) - breaching == 1 else 'were'} not {wording} the threshold "
        f"({threshold}) (minimum {len(flags) - required + 1} datapoint"
        f"{'s' if len(flags) - required + 1 > 1 else ''} for ALARM -> OK transition)."
    )
    return "OK", reason, reason_data


SeriesKey = tuple[tuple[str, str], ...]


def _insights_series(
    backend: Any, query: _InsightsQuery, start: int, periods: int
) -> dict[SeriesKey, list[list[Any]]]:
    """The query's time series in the window: GROUP BY (key, value) pairs -> datums per period.

    Without GROUP BY every matching metric feeds one aggregated series, keyed (). A metric that
    lacks a GROUP BY key falls in that key's `Other` group, as on AWS. Series come in GROUP BY
    value order unless ORDER BY says otherwise; LIMIT keeps the first n.
    """
    groups: dict[SeriesKey, list[list[Any]]] = {}
    for datum in list(backend.metric_data):
        if datum.namespace != query.namespace or datum.name != query.metric:
            continue
        dimensions = dict(_datum_dimensions(datum))
        if query.schema is not None and set(dimensions) != set(query.schema):
            continue
        # `key != 'v'` also keeps metrics without the key: their value is not 'v'.
        if any((dimensions.get(key) == value) != (op == "=") for key, op, value in query.where):
            continue
        index = _period_index(datum, start, query.period, periods)
        if index is None:
            continue
        key = tuple((name, dimensions.get(name, "Other")) for name in query.group_by)
        groups.setdefault(key, [[] for _ in range(periods)])[index].append(datum)
    keys = sorted(groups)
    if query.order is not None:
        function, descending = query.order
        statistic = _INSIGHTS_FUNCTIONS[function]
        score = {
            key: _period_value([d for bucket in groups[key] for d in bucket], statistic) or 0.0
            for key in keys
        }
        keys.sort(key=lambda key: score[key], reverse=descending)
    return {key: groups[key] for key in keys[: query.limit]}


@dataclass
class _Contributor:
    """One series of a GROUP BY Metrics Insights alarm: ALARM or OK, never INSUFFICIENT_DATA."""

    id: str
    attributes: dict[str, str]
    timestamp: datetime
    state: str = "OK"
    reason: str = ""


def _contributor_id(alarm_name: str, attributes: Mapping[str, str]) -> str:
    """A stable 16-hex-digit id per alarm and attribute values (AWS's ids have this form)."""
    text = json.dumps([alarm_name, sorted(attributes.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _contributor_reason(
    alarm: Any, state: str, values: list[float | None], start: int, period: int
) -> str:
    """CloudWatch's short per-contributor reason (no reason data): count and latest datapoint."""
    compare, wording = _COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    present = [
        (value, datetime.fromtimestamp(start + i * period, UTC))
        for i, value in enumerate(values)
        if value is not None
    ]
    crossed = [(v, m) for v, m in present if compare(v, threshold)]
    chosen = crossed if state == "ALARM" else [(v, m) for v, m in present if (v, m) not in crossed]
    if not chosen:
        return (
            f"Threshold Crossed: missing datapoints were treated as "
            f"{'breaching' if state == 'ALARM' else 'not breaching'} the threshold ({threshold})."
        )
    value, moment = chosen[-1]
    many = len(chosen) > 1
    return (
        f"Threshold Crossed: {len(chosen)} datapoint{'s were' if many else ' was'} "
        f"{'' if state == 'ALARM' else 'not '}{wording} the threshold ({threshold}). "
        f"The most recent datapoint{'s' if many else ''} which "
        f"{'crossed' if state == 'ALARM' else 'did not cross'} the threshold: "
        f"[{value} ({moment:%d/%m/%y %H:%M:%S})]."
    )


def _judge_insights_alarm(
    backend: Any, alarm: Any, query: _InsightsQuery, now: datetime
) -> tuple[str, str, str]:
    """Judge a Metrics Insights alarm: each GROUP BY series on its own (acting on contributor
    transitions), then the alarm: ALARM while any contributor is. Returns the alarm's verdict."""
    periods = int(alarm.evaluation_periods)
    start = _window_start(now, query.period, periods)
    statistic = _INSIGHTS_FUNCTIONS[query.function]
    series = _insights_series(backend, query, start, periods)
    if not query.group_by:
        alarm.twin_contributors = {}
        buckets = series.get((), [[] for _ in range(periods)])
        values = [_period_value(bucket, statistic) for bucket in buckets]
        return _judge_periods(alarm, values, start, query.period, statistic, now)
    contributors: dict[str, _Contributor] = getattr(alarm, "twin_contributors", None) or {}
    alarm.twin_contributors = contributors
    current: set[str] = set()
    for key, buckets in series.items():
        attributes = dict(key)
        identifier = _contributor_id(alarm.name, attributes)
        current.add(identifier)
        contributor = contributors.setdefault(
            identifier, _Contributor(identifier, attributes, timestamp=now)
        )
        values = [_period_value(bucket, statistic) for bucket in buckets]
        state, _, _ = _judge_periods(alarm, values, start, query.period, statistic, now)
        reason = _contributor_reason(alarm, state, values, start, query.period)
        _change_contributor_state(backend, alarm, contributor, state, reason, now)
    ended = set(contributors) - current
    for identifier in sorted(ended, key=lambda i: tuple(contributors[i].attributes.items())):
        # No datapoint left in the window (or out of the LIMIT): the series ends, as OK.
        reason = f"No datapoints in the last {periods} periods: the time series is not evaluated."
        _change_contributor_state(backend, alarm, contributors.pop(identifier), "OK", reason, now)
    if not contributors:
        return _judge_periods(alarm, [None] * periods, start, query.period, statistic, now)
    in_alarm = sum(contributor.state == "ALARM" for contributor in contributors.values())
    reason_data = json.dumps(
        {
            "version": "1.0",
            "queryDate": _iso(now),
            "startDate": _iso(datetime.fromtimestamp(start, UTC)),
            "period": query.period,
            "threshold": float(alarm.threshold),
        }
    )
    reason = f"{in_alarm} out of {len(contributors)} time series evaluated to ALARM"
    return ("ALARM" if in_alarm else "OK"), reason, reason_data


def _judge_metric_alarm(backend: Any, alarm: Any, now: datetime) -> None:
    """Evaluate a metric alarm and move it (and a GROUP BY query's contributors)."""
    query = _insights_query(alarm)
    if query is None:
        alarm.twin_contributors = {}
        verdict = _evaluate_metric_alarm(backend, alarm, now)
    else:
        verdict = _judge_insights_alarm(backend, alarm, query, now)
        if query.group_by and verdict[0] == alarm.state_value:
            # Same state, new count of contributors in ALARM: the reason follows, nothing acts.
            alarm.state_reason, alarm.state_reason_data = verdict[1], verdict[2]
            return
    _change_alarm_state(backend, alarm, *verdict)


# Composite alarm rules: ALARM(x) / OK(x) / INSUFFICIENT_DATA(x), AND, OR, NOT, parentheses.
_RULE_TOKENS = re.compile(
    r"""\s*(?:
        (?P<state>ALARM|OK|INSUFFICIENT_DATA)\s*\(\s*(?P<name>"(?:[^"\\]|\\.)*"|[^()\s]+)\s*\)
        |(?P<word>AND|OR|NOT|TRUE|FALSE)\b
        |(?P<paren>[()])
    )""",
    re.VERBOSE,
)

RuleNode = tuple[Any, ...]


def _parse_alarm_rule(rule: str) -> RuleNode:
    """Parse an AlarmRule into a tree; raise ValidationError naming the offending position."""
    from moto.cloudwatch.exceptions import ValidationError

    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(rule.rstrip()):
        match = _RULE_TOKENS.match(rule, position)
        if match is None:
            raise ValidationError(
                f"AlarmRule: cannot parse {rule[position:].strip()!r} in {rule!r}"
            )
        if match.group("state"):
            name = match.group("name")
            if name.startswith('"'):
                name = json.loads(name)
            tokens.append(("state", f"{match.group('state')}|{name.rsplit(':alarm:', 1)[-1]}"))
        elif match.group("word"):
            tokens.append(("word", match.group("word")))
        else:
            tokens.append(("paren", match.group("paren")))
        position = match.end()

    def expect(index: int) -> tuple[str, str]:
        if index >= len(tokens):
            raise ValidationError(f"AlarmRule: unexpected end of {rule!r}")
        return tokens[index]

    def parse_or(index: int) -> tuple[RuleNode, int]:
        node, index = parse_and(index)
        while index < len(tokens) and tokens[index] == ("word", "OR"):
            right, index = parse_and(index + 1)
            node = ("or", node, right)
        return node, index

    def parse_and(index: int) -> tuple[RuleNode, int]:
        node, index = parse_not(index)
        while index < len(tokens) and tokens[index] == ("word", "AND"):
            right, index = parse_not(index + 1)
            node = ("and", node, right)
        return node, index

    def parse_not(index: int) -> tuple[RuleNode, int]:
        kind, value = expect(index)
        if (kind, value) == ("word", "NOT"):
            node, index = parse_not(index + 1)
            return ("not", node), index
        if (kind, value) == ("paren", "("):
            node, index = parse_or(index + 1)
            if expect(index) != ("paren", ")"):
                raise ValidationError(f"AlarmRule: missing ')' in {rule!r}")
            return node, index + 1
        if kind == "word" and value in ("TRUE", "FALSE"):
            return ("const", value == "TRUE"), index + 1
        if kind == "state":
            state, name = value.split("|", 1)
            return ("state", state, name), index + 1
        raise ValidationError(f"AlarmRule: unexpected {value!r} in {rule!r}")

    tree, end = parse_or(0)
    if end != len(tokens):
        raise ValidationError(f"AlarmRule: unexpected {tokens[end][1]!r} in {rule!r}")
    return tree


def _rule_alarm_names(node: RuleNode) -> set[str]:
    if node[0] == "state":
        return {str(node[2])}
    if node[0] == "const":
        return set()
    return set().union(*(_rule_alarm_names(child) for child in node[1:]))


def _rule_holds(node: RuleNode, state_of: Callable[[str], str | None]) -> bool:
    kind = node[0]
    if kind == "const":
        return bool(node[1])
    if kind == "state":
        return state_of(str(node[2])) == str(node[1])
    if kind == "not":
        return not _rule_holds(node[1], state_of)
    results = [_rule_holds(child, state_of) for child in node[1:]]
    return all(results) if kind == "and" else any(results)


def _evaluate_composite(backend: Any, alarm: Any) -> tuple[str, str, str]:
    tree = _parse_alarm_rule(alarm.rule)

    def state_of(name: str) -> str | None:
        child = backend.alarms.get(name)
        return None if child is None else str(child.state_value)

    names = sorted(_rule_alarm_names(tree))
    triggering = [n for n in names if state_of(n) == "ALARM"]
    reason_data = json.dumps(
        {"triggeringAlarms": [backend.alarms[n].alarm_arn for n in triggering]}
    )
    if _rule_holds(tree, state_of):
        return "ALARM", f"arn(s) in ALARM: {', '.join(triggering) or 'none'}", reason_data
    return "OK", "the alarm rule evaluates to FALSE", reason_data


def _alarm_message(alarm: Any, account_id: str, old_state: str) -> dict[str, Any]:
    """The JSON CloudWatch publishes to an alarm's SNS actions."""
    message: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": _iso(alarm.configuration_updated_timestamp),
        "NewStateValue": alarm.state_value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": _iso(alarm.state_updated_timestamp),
        "Region": _REGION_NAMES.get(alarm.region_name, alarm.region_name),
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old_state,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
    }
    if alarm.rule is not None:
        message["AlarmRule"] = alarm.rule
        return message
    trigger: dict[str, Any] = {}
    query = _insights_query(alarm)
    if query is not None:
        trigger["Metrics"] = [
            {
                "Expression": query.expression,
                "Id": query.query_id,
                "Period": query.period,
                "ReturnData": True,
            }
        ]
        period = query.period
    else:
        metric = _alarm_metric(alarm)
        trigger.update(
            MetricName=metric.name,
            Namespace=metric.namespace,
            Unit=metric.unit,
            Dimensions=[{"value": value, "name": name} for name, value in metric.dimensions],
        )
        if _PERCENTILE.match(metric.statistic):
            trigger.update(StatisticType="ExtendedStatistic", ExtendedStatistic=metric.statistic)
        else:
            trigger.update(StatisticType="Statistic", Statistic=metric.statistic.upper())
        period = metric.period
    trigger.update(
        Period=period,
        EvaluationPeriods=int(alarm.evaluation_periods),
        DatapointsToAlarm=int(alarm.datapoints_to_alarm or alarm.evaluation_periods),
        ComparisonOperator=alarm.comparison_operator,
        Threshold=float(alarm.threshold),
        TreatMissingData=alarm.treat_missing_data or "missing",
        EvaluateLowSampleCountPercentile=alarm.evaluate_low_sample_count_percentile or "",
    )
    message["Trigger"] = trigger
    return message


def _alarm_configuration(alarm: Any) -> dict[str, Any]:
    """`detail.configuration` of an alarm's EventBridge events."""
    configuration: dict[str, Any] = {"description": alarm.description}
    query = None if alarm.rule is not None else _insights_query(alarm)
    if alarm.rule is not None:
        configuration["alarmRule"] = alarm.rule
    elif query is not None:
        configuration["metrics"] = [
            {
                "id": query.query_id,
                "expression": query.expression,
                "returnData": True,
                "period": query.period,
            }
        ]
    else:
        metric = _alarm_metric(alarm)
        configuration["metrics"] = [
            {
                "id": "m1",
                "metricStat": {
                    "metric": {
                        "namespace": metric.namespace,
                        "name": metric.name,
                        "dimensions": dict(metric.dimensions),
                    },
                    "period": metric.period,
                    "stat": metric.statistic,
                },
                "returnData": True,
            }
        ]
    return configuration


def _alarm_event_detail(alarm: Any, old: dict[str, str]) -> dict[str, Any]:
    """`detail` of EventBridge's "CloudWatch Alarm State Change" event."""
    return {
        "alarmName": alarm.name,
        "state": {
            "value": alarm.state_value,
            "reason": alarm.state_reason,
            "reasonData": alarm.state_reason_data,
            "timestamp": _iso(alarm.state_updated_timestamp),
        },
        "previousState": old,
        "configuration": _alarm_configuration(alarm),
    }


def _contributor_event_detail(alarm: Any, contributor: _Contributor) -> dict[str, Any]:
    """`detail` of "CloudWatch Alarm Contributor State Change", as CloudWatch's documented
    sample has it: no previousState, no reasonData."""
    return {
        "alarmName": alarm.name,
        "alarmContributor": {"id": contributor.id, "attributes": dict(contributor.attributes)},
        "state": {
            "value": contributor.state,
            "reason": contributor.reason,
            "timestamp": _iso(contributor.timestamp),
        },
        "configuration": _alarm_configuration(alarm),
    }


def _alarm_history_item(alarm: Any, old_state: str, when: datetime) -> dict[str, Any]:
    return {
        "AlarmName": alarm.name,
        "AlarmType": "CompositeAlarm" if alarm.rule is not None else "MetricAlarm",
        "Timestamp": when,
        "HistoryItemType": "StateUpdate",
        "HistorySummary": f"Alarm updated from {old_state} to {alarm.state_value}",
        "HistoryData": json.dumps(
            {
                "version": "1.0",
                "oldState": {"stateValue": old_state},
                "newState": {
                    "stateValue": alarm.state_value,
                    "stateReason": alarm.state_reason,
                    "stateReasonData": alarm.state_reason_data,
                },
            }
        ),
    }


def _contributor_history_item(
    alarm: Any, contributor: _Contributor, old_state: str
) -> dict[str, Any]:
    return {
        "AlarmName": alarm.name,
        "AlarmContributorId": contributor.id,
        "AlarmContributorAttributes": dict(contributor.attributes),
        "AlarmType": "MetricAlarm",
        "Timestamp": contributor.timestamp,
        "HistoryItemType": "AlarmContributorStateUpdate",
        "HistorySummary": f"Contributor updated from {old_state} to {contributor.state}",
        "HistoryData": json.dumps(
            {
                "version": "1.0",
                "oldState": {"stateValue": old_state},
                "newState": {"stateValue": contributor.state, "stateReason": contributor.reason},
            }
        ),
    }


def _change_contributor_state(
    backend: Any, alarm: Any, contributor: _Contributor, state: str, reason: str, now: datetime
) -> None:
    """Move one contributor; on a change record it, run the alarm's actions for the contributor
    and emit "CloudWatch Alarm Contributor State Change" (the alarm's own state may not move)."""
    contributor.reason = reason
    if state == contributor.state:
        return
    old_state = contributor.state
    contributor.state, contributor.timestamp = state, now
    if not hasattr(alarm, "twin_history"):
        alarm.twin_history = []
    alarm.twin_history.append(_contributor_history_item(alarm, contributor, old_state))
    if alarm.actions_enabled:
        message = _alarm_message(alarm, backend.account_id, old_state)
        message.update(
            NewStateValue=state,
            NewStateReason=reason,
            StateChangeTime=_iso(now),
            AlarmContributorId=contributor.id,
            AlarmContributorAttributes=dict(contributor.attributes),
        )
        _publish_alarm_actions(backend, alarm, state, message)
    _put_alarm_event(
        backend,
        alarm,
        "CloudWatch Alarm Contributor State Change",
        _contributor_event_detail(alarm, contributor),
    )


def _change_alarm_state(
    backend: Any, alarm: Any, state: str, reason: str, reason_data: str
) -> None:
    """Move `alarm` to `state`; on a change run its actions, emit the event, re-judge composites."""
    with _ALARM_LOCK:
        old = {
            "value": alarm.state_value,
            "reason": alarm.state_reason,
            "timestamp": _iso(alarm.state_updated_timestamp),
        }
        if state == alarm.state_value:
            return
        alarm.update_state(reason, reason_data, state)
        if not hasattr(alarm, "twin_history"):
            alarm.twin_history = []
        alarm.twin_history.append(_alarm_history_item(alarm, old["value"], datetime.now(UTC)))
        if alarm.actions_enabled:
            _run_alarm_actions(backend, alarm, old["value"])
        _emit_alarm_event(backend, alarm, old)
        for other in list(backend.alarms.values()):
            if other.rule is not None and alarm.name in _rule_alarm_names(
                _parse_alarm_rule(other.rule)
            ):
                _change_alarm_state(backend, other, *_evaluate_composite(backend, other))


def _run_alarm_actions(backend: Any, alarm: Any, old_state: str) -> None:
    message = _alarm_message(alarm, backend.account_id, old_state)
    _publish_alarm_actions(backend, alarm, alarm.state_value, message)


def _publish_alarm_actions(backend: Any, alarm: Any, state: str, document: dict[str, Any]) -> None:
    """Publish `document` to the alarm's SNS actions for `state` (other actions: logged)."""
    from moto.sns.models import sns_backends
    from moto.utilities.arns import parse_arn

    actions = {
        "ALARM": alarm.alarm_actions,
        "OK": alarm.ok_actions,
        "INSUFFICIENT_DATA": alarm.insufficient_data_actions,
    }[state]
    message = json.dumps(document)
    region = _REGION_NAMES.get(alarm.region_name, alarm.region_name)
    subject = f'{state}: "{alarm.name}" in {region}'[:99]
    for action in actions or []:
        try:
            arn = parse_arn(action)
            if arn.service == "sns":
                sns_backends[arn.account][arn.region].publish(message, arn=action, subject=subject)
            else:
                LOG.warning("alarm %s: action %s is not run by the twin", alarm.name, action)
        except Exception as error:  # an action failure must not stop the state change
            LOG.warning("alarm %s: action %s failed: %s", alarm.name, action, error)


def _emit_alarm_event(backend: Any, alarm: Any, old: dict[str, str]) -> None:
    detail = _alarm_event_detail(alarm, old)
    _put_alarm_event(backend, alarm, "CloudWatch Alarm State Change", detail)


def _put_alarm_event(backend: Any, alarm: Any, detail_type: str, detail: dict[str, Any]) -> None:
    """Put an aws.cloudwatch event about `alarm` on the default bus."""
    from moto.events.models import events_backends

    entry = {
        "Source": "aws.cloudwatch",
        "DetailType": detail_type,
        "Detail": json.dumps(detail),
        "Resources": [alarm.alarm_arn],
    }
    try:
        events_backends[backend.account_id][backend.region_name].put_events([entry])
    except Exception as error:
        LOG.warning("alarm %s: %s event failed: %s", alarm.name, detail_type, error)


def evaluate_alarms(
    backend: Any, namespaces: set[str] | None = None, now: datetime | None = None
) -> None:
    """Re-judge the backend's metric alarms (optionally only those on `namespaces`) as of `now`
    (default: the current time; a later time shows what the alarms do when data stops)."""
    now = now or datetime.now(UTC)
    with _ALARM_LOCK:
        for alarm in list(backend.alarms.values()):
            if alarm.rule is not None:
                continue
            if namespaces is not None and _alarm_namespace(alarm) not in namespaces:
                continue
            _judge_metric_alarm(backend, alarm, now)


def _describe_alarm_history(self: Any) -> Any:
    from moto.core.responses import ActionResult

    name = self._get_param("AlarmName")
    item_type = self._get_param("HistoryItemType")
    contributor = self._get_param("AlarmContributorId")
    start = self._get_param("StartDate")
    end = self._get_param("EndDate")
    limit = self._get_param("MaxRecords")
    oldest_first = self._get_param("ScanBy") == "TimestampAscending"
    items: list[dict[str, Any]] = []
    for alarm in self.cloudwatch_backend.alarms.values():
        if name and alarm.name != name:
            continue
        items.extend(getattr(alarm, "twin_history", []))
    # Contributor items only when asked for, by their type or a contributor id.
    contributor_items = contributor is not None or str(item_type).startswith("AlarmContributor")
    items = [
        item
        for item in items
        if (not item_type or item["HistoryItemType"] == item_type)
        and ("AlarmContributorId" in item) == contributor_items
        and (contributor is None or item["AlarmContributorId"] == contributor)
        and (start is None or item["Timestamp"] >= _utc(start))
        and (end is None or item["Timestamp"] <= _utc(end))
    ]
    items.sort(key=lambda item: item["Timestamp"], reverse=not oldest_first)
    if limit:
        items = items[: int(limit)]
    return ActionResult({"AlarmHistoryItems": items})


def _describe_alarm_contributors(self: Any) -> Any:
    """The contributors of a GROUP BY Metrics Insights alarm that are in ALARM (one page)."""
    from moto.cloudwatch.exceptions import ResourceNotFoundException
    from moto.core.responses import ActionResult

    name = self._get_param("AlarmName")
    alarm = self.cloudwatch_backend.alarms.get(name)
    if alarm is None:
        raise ResourceNotFoundException(f"Alarm {name} does not exist")
    with _ALARM_LOCK:
        contributors = [
            {
                "ContributorId": contributor.id,
                "ContributorAttributes": dict(contributor.attributes),
                "StateReason": contributor.reason,
                "StateTransitionedTimestamp": contributor.timestamp,
            }
            for contributor in getattr(alarm, "twin_contributors", {}).values()
            if contributor.state == "ALARM"
        ]
    return ActionResult({"AlarmContributors": contributors})


def _put_composite_alarm(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    actions_enabled = self._get_param("ActionsEnabled")
    self.cloudwatch_backend.put_metric_alarm(
        name=self._get_param("AlarmName"),
        namespace=None,
        metric_name=None,
        comparison_operator=None,
        evaluation_periods=None,
        period=None,
        threshold=None,
        statistic=None,
        description=self._get_param("AlarmDescription"),
        dimensions=[],
        alarm_actions=self._get_param("AlarmActions", []),
        ok_actions=self._get_param("OKActions", []),
        insufficient_data_actions=self._get_param("InsufficientDataActions", []),
        actions_enabled=True if actions_enabled is None else actions_enabled,
        rule=self._get_param("AlarmRule"),
        tags=self._get_param("Tags", []),
    )
    return EmptyResult()


def adapt_cloudwatch_alarms() -> None:
    """moto 5.2.5 stores alarms but never evaluates them, acts on them, or records history.

    Wraps `CloudWatchBackend.put_metric_alarm` (validate, start INSUFFICIENT_DATA, keep state
    on update, evaluate), `put_metric_data` (evaluate the namespace's alarms), and
    `set_alarm_state` (a manual change acts like an evaluated one); adds the missing
    `PutCompositeAlarm`, `DescribeAlarmHistory` and `DescribeAlarmContributors` actions. A state
    change publishes CloudWatch's SNS message to the actions, emits "CloudWatch Alarm State
    Change" on the default bus and re-judges composite alarms watching the alarm. An alarm on a
    Metrics Insights query with GROUP BY judges each series (contributor) on its own, and every
    contributor change publishes to the actions and emits "CloudWatch Alarm Contributor State
    Change" too.
    """
    from moto.cloudwatch.exceptions import InvalidFormat, ValidationError
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse

    put_metric_alarm = CloudWatchBackend.put_metric_alarm
    put_metric_data = CloudWatchBackend.put_metric_data
    set_alarm_state = CloudWatchBackend.set_alarm_state

    def put_evaluated_alarm(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs["name"] if "name" in kwargs else args[0]
        with _ALARM_LOCK:
            previous = self.alarms.get(name)
            alarm: Any = put_metric_alarm(self, *args, **kwargs)
            try:
                _validate_alarm(alarm)
                if alarm.rule is not None:
                    unknown = _rule_alarm_names(_parse_alarm_rule(alarm.rule)) - set(self.alarms)
                    if unknown:
                        raise ValidationError(
                            f"alarm {name}: AlarmRule names alarms that do not exist: "
                            f"{', '.join(sorted(unknown))}"
                        )
            except Exception:
                if previous is None:
                    self.alarms.pop(name, None)
                else:
                    self.alarms[name] = previous
                raise
            if previous is not None:
                # CloudWatch keeps an updated alarm's state and history.
                alarm.state_value = previous.state_value
                alarm.state_reason = previous.state_reason
                alarm.state_reason_data = previous.state_reason_data
                alarm.state_updated_timestamp = previous.state_updated_timestamp
                alarm.twin_history = getattr(previous, "twin_history", [])
                alarm.twin_contributors = getattr(previous, "twin_contributors", {})
            else:
                alarm.state_value = "INSUFFICIENT_DATA"
                alarm.twin_history = []
            if alarm.rule is not None:
                _change_alarm_state(self, alarm, *_evaluate_composite(self, alarm))
            else:
                _judge_metric_alarm(self, alarm, datetime.now(UTC))
        return alarm

    def put_and_evaluate(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        put_metric_data(self, namespace, metric_data)
        evaluate_alarms(self, {namespace})

    def set_state_and_act(
        self: Any, alarm_name: str, reason: str, reason_data: str, state_value: str
    ) -> None:
        with _ALARM_LOCK:
            # moto's own method validates and raises for unknown alarms and bad states.
            alarm = self.alarms.get(alarm_name)
            if alarm is None or state_value not in ("OK", "ALARM", "INSUFFICIENT_DATA"):
                set_alarm_state(self, alarm_name, reason, reason_data, state_value)
                return
            try:
                if reason_data is not None:
                    json.loads(reason_data)
            except ValueError:
                raise InvalidFormat("Unknown") from None
            _change_alarm_state(self, alarm, state_value, reason, reason_data or "{}")

    _patch(CloudWatchBackend, "put_metric_alarm", put_evaluated_alarm)
    _patch(CloudWatchBackend, "put_metric_data", put_and_evaluate)
    _patch(CloudWatchBackend, "set_alarm_state", set_state_and_act)
    _patch(CloudWatchResponse, "describe_alarm_history", _describe_alarm_history)
    _patch(CloudWatchResponse, "put_composite_alarm", _put_composite_alarm)
    _patch(CloudWatchResponse, "describe_alarm_contributors", _describe_alarm_contributors)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _integer(value: Any) -> int | None:
    return None if value is None else int(value)


def _alarm_metric_queries(metrics: list[dict[str, Any]] | None) -> list[Any] | None:
    from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat

    if not metrics:
        return None
    queries = []
    for query in metrics:
        stat = query.get("MetricStat")
        metric_stat = None
        if stat:
            metric = stat["Metric"]
            metric_stat = MetricStat(
                metric=Metric(
                    metric_name=metric["MetricName"],
                    namespace=metric["Namespace"],
                    dimensions=[
                        Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])
                    ],
                ),
                period=stat["Period"],
                stat=stat["Stat"],
                unit=stat.get("Unit"),
            )
        queries.append(
            MetricDataQuery(
                query_id=query["Id"],
                label=query.get("Label", ""),
                period=query.get("Period", ""),
                return_data=query.get("ReturnData", True),
                expression=query.get("Expression"),
                metric_stat=metric_stat,
            )
        )
    return queries


class CloudWatchAlarmResource(_TwinModel):
    """AWS::CloudWatch::Alarm — Ref is the alarm name, GetAtt Arn its ARN."""

    def __init__(self, alarm: Any, account_id: str, region_name: str) -> None:
        self.physical_id = alarm.name
        self.attr_Arn = alarm.alarm_arn
        self.account_id = account_id
        self.region_name = region_name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @classmethod
    def attributes(cls) -> tuple[str, ...]:
        return ("Arn",)

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CloudWatchAlarmResource:
        from moto.cloudwatch.models import cloudwatch_backends

        props = cloudformation_json["Properties"]
        backend: Any = cloudwatch_backends[account_id][region_name]
        alarm = backend.put_metric_alarm(
            name=props.get("AlarmName", resource_name),
            namespace=props.get("Namespace"),
            metric_name=props.get("MetricName"),
            metric_data_queries=_alarm_metric_queries(props.get("Metrics")),
            comparison_operator=props.get("ComparisonOperator"),
            evaluation_periods=_integer(props.get("EvaluationPeriods")),
            datapoints_to_alarm=_integer(props.get("DatapointsToAlarm")),
            period=_integer(props.get("Period")),
            threshold=_number(props.get("Threshold")),
            statistic=props.get("Statistic"),
            extended_statistic=props.get("ExtendedStatistic"),
            description=props.get("AlarmDescription"),
            dimensions=props.get("Dimensions", []),
            alarm_actions=props.get("AlarmActions", []),
            ok_actions=props.get("OKActions", []),
            insufficient_data_actions=props.get("InsufficientDataActions", []),
            unit=props.get("Unit"),
            actions_enabled=str(props.get("ActionsEnabled", True)).lower() != "false",
            treat_missing_data=props.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=props.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=props.get("ThresholdMetricId"),
            tags=props.get("Tags"),
        )
        return cls(alarm, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        """Same name: update in place (state kept). New name: replace."""
        name = cloudformation_json["Properties"].get("AlarmName", original_resource.physical_id)
        if name != original_resource.physical_id:
            original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        cloudwatch_backends[account_id][region_name].delete_alarms([self.physical_id])


class CloudWatchCompositeAlarmResource(CloudWatchAlarmResource):
    """AWS::CloudWatch::CompositeAlarm — Ref is the alarm name, GetAtt Arn its ARN."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::CompositeAlarm"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CloudWatchCompositeAlarmResource:
        from moto.cloudwatch.models import cloudwatch_backends

        props = cloudformation_json["Properties"]
        backend: Any = cloudwatch_backends[account_id][region_name]
        alarm = backend.put_metric_alarm(
            name=props.get("AlarmName", resource_name),
            namespace=None,
            metric_name=None,
            comparison_operator=None,
            evaluation_periods=None,
            period=None,
            threshold=None,
            statistic=None,
            description=props.get("AlarmDescription"),
            dimensions=[],
            alarm_actions=props.get("AlarmActions", []),
            ok_actions=props.get("OKActions", []),
            insufficient_data_actions=props.get("InsufficientDataActions", []),
            actions_enabled=str(props.get("ActionsEnabled", True)).lower() != "false",
            rule=props["AlarmRule"],
            tags=props.get("Tags"),
        )
        return cls(alarm, account_id, region_name)


# ---------------------------------------------------------------------------------------------
# 6b. Embedded metric format: log lines that CloudWatch Logs turns into metrics
# ---------------------------------------------------------------------------------------------

_EMF_MAX_VALUES = 100


def _emf_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def emf_metric_data(message: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, MetricData) for each directive of an EMF log line; [] for any other line.

    Follows CloudWatch's embedded metric format: `_aws.Timestamp` (epoch ms) and
    `_aws.CloudWatchMetrics` directives, each with a Namespace, DimensionSets (lists of
    root keys holding string values) and Metrics (root keys holding a number or up to 100
    numbers). A directive CloudWatch would reject (a dimension value missing or not a string,
    too many values) is skipped as a whole, as CloudWatch skips it; a metric whose root key is
    absent is skipped alone.
    """
    text = message.strip()
    if not text.startswith("{") or '"_aws"' not in text:
        return []
    try:
        document = json.loads(text)
    except ValueError:
        return []
    meta = document.get("_aws") if isinstance(document, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("CloudWatchMetrics"), list):
        return []
    stamp: Any = meta.get("Timestamp")
    if not _emf_number(stamp):
        return []
    # moto keeps naive UTC datetimes, as its own PutMetricData parsing does.
    moment = datetime.fromtimestamp(float(stamp) / 1000, UTC).replace(tzinfo=None)
    found: list[tuple[str, list[dict[str, Any]]]] = []
    for directive in meta["CloudWatchMetrics"]:
        data = _emf_directive(document, directive, moment)
        if data is not None:
            found.append(data)
    return found


def _emf_directive(
    document: Mapping[str, Any], directive: Any, moment: datetime
) -> tuple[str, list[dict[str, Any]]] | None:
    if not isinstance(directive, dict):
        return None
    namespace = directive.get("Namespace")
    dimension_sets = directive.get("Dimensions")
    metrics = directive.get("Metrics")
    if not isinstance(namespace, str) or not namespace:
        return None
    if not isinstance(dimension_sets, list) or not isinstance(metrics, list):
        return None
    resolved: list[list[dict[str, str]]] = []
    for names in dimension_sets or [[]]:
        if not isinstance(names, list):
            return None
        dimensions = []
        for name in names:
            value = document.get(name) if isinstance(name, str) else None
            if not isinstance(value, str) or not value:
                return None
            dimensions.append({"Name": name, "Value": value})
        resolved.append(dimensions)
    data: list[dict[str, Any]] = []
    for metric in metrics:
        name = metric.get("Name") if isinstance(metric, dict) else None
        if not isinstance(name, str) or name not in document:
            continue
        value = document[name]
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > _EMF_MAX_VALUES or not all(map(_emf_number, values)):
            return None
        unit = metric.get("Unit")
        for dimensions in resolved:
            datum: dict[str, Any] = {
                "MetricName": name,
                "Dimensions": dimensions,
                "Timestamp": moment,
            }
            if isinstance(unit, str) and unit:
                datum["Unit"] = unit
            if len(values) == 1:
                datum["Value"] = float(values[0])
            else:
                datum["Values"] = [float(v) for v in values]
            data.append(datum)
    return (namespace, data) if data else None


def adapt_emf_metrics() -> None:
    """moto 5.2.5 stores log events but never extracts embedded-metric-format metrics.

    On AWS, CloudWatch Logs turns every EMF line a Lambda prints (Powertools Metrics does
    that) into metric datapoints. Wraps `LogsBackend.put_log_events`, the point both the
    PutLogEvents API and the twin's Lambda log shipping go through, to hand each EMF line's
    datapoints to `CloudWatchBackend.put_metric_data`, so the alarm evaluation of
    `adapt_cloudwatch_alarms` runs on them. A line that is not EMF is only stored.
    """
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.logs.models import LogsBackend

    put_log_events = LogsBackend.put_log_events

    def put_and_extract_metrics(
        self: Any, log_group_name: str, log_stream_name: str, log_events: list[dict[str, Any]]
    ) -> Any:
        result = put_log_events(self, log_group_name, log_stream_name, log_events)
        for event in log_events:
            for namespace, metric_data in emf_metric_data(str(event.get("message", ""))):
                try:
                    backend = cloudwatch_backends[self.account_id][self.region_name]
                    backend.put_metric_data(namespace, metric_data)
                except Exception as error:  # metrics must never fail the log write
                    LOG.warning("EMF metrics in %s: %s", log_group_name, error)
        return result

    _patch(LogsBackend, "put_log_events", put_and_extract_metrics)


def adapt_schedule_rules() -> None:
    """moto 5.2.5 hands every event on the bus to a rule that has only a ScheduleExpression.

    Such a rule has an empty event pattern, and moto's (and `adapt_eventbridge_targets`')
    `Rule.send_to_targets` reads an empty pattern as "match everything", so each S3 upload or
    alarm change would invoke the schedule's target (a drift check per event). On AWS a
    schedule rule matches no events; the twin never fires schedules, so its targets run only
    when invoked by hand. Wraps the current `Rule.send_to_targets` (install after
    `adapt_eventbridge_targets`).
    """
    from moto.events.models import Rule

    send_to_targets: Any = Rule.send_to_targets

    def send_unless_schedule_only(
        self: Any, original_event: Any, transform_input: bool = True
    ) -> None:
        if self.scheduled_expression and not self.event_pattern.get_pattern():
            return
        send_to_targets(self, original_event, transform_input)

    _patch(Rule, "send_to_targets", send_unless_schedule_only)


# ---------------------------------------------------------------------------------------------
# 7. Resource types moto's CloudFormation lacks
# ---------------------------------------------------------------------------------------------


class LambdaVersionResource(_TwinModel):
    """AWS::Lambda::Version — Ref is the version ARN; GetAtt Version and FunctionArn.

    moto has this type, but its model has neither a Ref value nor GetAtt Version, so an
    alias pointing at `!GetAtt Version.Version` gets nothing.
    """

    def __init__(self, version: Any) -> None:
        self.physical_id = version.function_arn
        self.attr_Version = str(version.version)
        self.attr_FunctionArn = version.function_arn
        self.function_name = version.function_name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Version"

    @classmethod
    def attributes(cls) -> tuple[str, ...]:
        return ("Version", "FunctionArn")

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LambdaVersionResource:
        from moto.awslambda.utils import get_backend

        props = cloudformation_json["Properties"]
        backend = get_backend(account_id, region_name)
        version = backend.publish_version(props["FunctionName"], props.get("Description", ""))
        return cls(version)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.awslambda.utils import get_backend

        with contextlib.suppress(Exception):  # already gone with its function
            get_backend(account_id, region_name).delete_function(
                self.function_name, self.attr_Version
            )


def _alias_routing(props: Mapping[str, Any]) -> dict[str, Any] | None:
    weights = props.get("RoutingConfig", {}).get("AdditionalVersionWeights", [])
    if not weights:
        return None
    return {
        "AdditionalVersionWeights": {
            str(w["FunctionVersion"]): float(w["FunctionWeight"]) for w in weights
        }
    }


class LambdaAliasResource(_TwinModel):
    """AWS::Lambda::Alias — Ref is the alias ARN; GetAtt AliasArn. Weights are recorded only."""

    def __init__(self, alias: Any, function_name: str) -> None:
        self.physical_id = alias.arn
        self.attr_AliasArn = alias.arn
        self.name = alias.name
        self.function_name = function_name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Alias"

    @classmethod
    def attributes(cls) -> tuple[str, ...]:
        return ("AliasArn",)

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LambdaAliasResource:
        from moto.awslambda.utils import get_backend

        props = cloudformation_json["Properties"]
        backend = get_backend(account_id, region_name)
        function_name = str(props["FunctionName"]).rsplit(":function:", 1)[-1].split(":")[0]
        alias = backend.create_alias(
            name=props["Name"],
            function_name=function_name,
            function_version=str(props["FunctionVersion"]),
            description=props.get("Description", ""),
            routing_config=_alias_routing(props),  # type: ignore[arg-type]
        )
        return cls(alias, function_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        """Same function and name: move the alias (how a deploy shifts traffic). Else replace."""
        from moto.awslambda.utils import get_backend

        props = cloudformation_json["Properties"]
        function_name = str(props["FunctionName"]).rsplit(":function:", 1)[-1].split(":")[0]
        if (
            props["Name"] != original_resource.name
            or function_name != original_resource.function_name
        ):
            return super().update_from_cloudformation_json(
                original_resource, new_resource_name, cloudformation_json, account_id, region_name
            )
        alias = get_backend(account_id, region_name).update_alias(
            name=props["Name"],
            function_name=function_name,
            function_version=str(props["FunctionVersion"]),
            description=props.get("Description", ""),
            routing_config=_alias_routing(props),  # type: ignore[arg-type]
        )
        return cls(alias, function_name)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.awslambda.utils import get_backend

        with contextlib.suppress(Exception):
            get_backend(account_id, region_name).delete_alias(self.name, self.function_name)


class LambdaUrlResource(_TwinModel):
    """AWS::Lambda::Url — served by the twin (section 7b) on the alias or version it targets;
    GetAtt FunctionUrl is the twin's address for it."""

    def __init__(self, config: Any, target: str) -> None:
        self.physical_id = config.function.function_arn
        self.attr_FunctionUrl = config.url
        self.attr_FunctionArn = config.function.function_arn
        self.target = target

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Url"

    @classmethod
    def attributes(cls) -> tuple[str, ...]:
        return ("FunctionUrl", "FunctionArn")

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LambdaUrlResource:
        from moto.awslambda.utils import get_backend

        props = cloudformation_json["Properties"]
        # moto takes no qualifier: the URL is recorded on the function, and the twin's URL
        # server remembers the alias or version (ARN ending ":live") to invoke.
        target, qualifier = _split_qualifier(str(props["TargetFunctionArn"]))
        config = {key: props[key] for key in ("AuthType", "Cors", "InvokeMode") if key in props}
        url = get_backend(account_id, region_name).create_function_url_config(target, config)
        _serve_function_url(url, qualifier)
        return cls(url, target)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.awslambda.utils import get_backend

        _FUNCTION_URLS.pop(_url_id(self.attr_FunctionUrl), None)
        with contextlib.suppress(Exception):
            get_backend(account_id, region_name).delete_function_url_config(self.target)


class SnsSubscriptionResource(_TwinModel):
    """AWS::SNS::Subscription — a real moto subscription (SQS delivery, Lambda via the runner)."""

    def __init__(self, arn: str, region_name: str) -> None:
        self.physical_id = arn
        self.attr_Arn = arn
        self.region_name = region_name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SNS::Subscription"

    @classmethod
    def attributes(cls) -> tuple[str, ...]:
        return ("Arn",)

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SnsSubscriptionResource:
        from moto.sns.models import sns_backends

        props = cloudformation_json["Properties"]
        topic_arn = str(props["TopicArn"])
        backend = sns_backends[account_id][topic_arn.split(":")[3]]
        subscription = backend.subscribe(topic_arn, str(props["Endpoint"]), str(props["Protocol"]))
        if "FilterPolicyScope" in props:
            backend.set_subscription_attributes(
                subscription.arn, "FilterPolicyScope", props["FilterPolicyScope"]
            )
        for name in ("FilterPolicy", "RedrivePolicy", "DeliveryPolicy"):
            if name in props:
                value = props[name]
                text = value if isinstance(value, str) else json.dumps(value)
                backend.set_subscription_attributes(subscription.arn, name, text)
        if str(props.get("RawMessageDelivery", "false")).lower() == "true":
            # moto tests the attribute's truthiness, so only ever set it when on.
            backend.set_subscription_attributes(subscription.arn, "RawMessageDelivery", "true")
        return cls(subscription.arn, topic_arn.split(":")[3])

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.sns.models import sns_backends

        sns_backends[account_id][self.region_name].unsubscribe(self.physical_id)


class SnsTopicPolicyResource(_TwinModel):
    """AWS::SNS::TopicPolicy — stored on the topics, not enforced."""

    def __init__(self, topics: list[str], physical_id: str) -> None:
        self.physical_id = physical_id
        self.topics = topics

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SNS::TopicPolicy"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SnsTopicPolicyResource:
        from moto.sns.models import sns_backends

        props = cloudformation_json["Properties"]
        topics = [str(arn) for arn in props["Topics"]]
        for arn in topics:
            sns_backends[account_id][arn.split(":")[3]].get_topic(arn).policy = json.dumps(
                props["PolicyDocument"]
            )
        return cls(topics, resource_name)


class SqsQueuePolicyResource(_TwinModel):
    """AWS::SQS::QueuePolicy — stored as the queues' Policy attribute, not enforced."""

    def __init__(self, physical_id: str) -> None:
        self.physical_id = physical_id

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SQS::QueuePolicy"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SqsQueuePolicyResource:
        from moto.sqs.models import sqs_backends

        props = cloudformation_json["Properties"]
        policy = json.dumps(props["PolicyDocument"])
        for url in props["Queues"]:
            queue_name = str(url).rstrip("/").rsplit("/", 1)[-1]
            sqs_backends[account_id][region_name].set_queue_attributes(
                queue_name, {"Policy": policy}
            )
        return cls(resource_name)


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
        "timestamp": _iso(at),
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


class LambdaEventInvokeConfigResource(_TwinModel):
    """AWS::Lambda::EventInvokeConfig — stored on the function (GetFunctionEventInvokeConfig
    returns it); a failed asynchronous invoke is sent to its on-failure SQS destination after
    the one attempt the twin makes (retries and event age are recorded, not applied)."""

    def __init__(self, physical_id: str, account_id: str, region: str, function: str) -> None:
        self.physical_id = physical_id
        self.account_id = account_id
        self.region = region
        self.function = function

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::EventInvokeConfig"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LambdaEventInvokeConfigResource:
        from moto.awslambda.models import EventInvokeConfig, lambda_backends

        props = cloudformation_json["Properties"]
        fn = lambda_backends[account_id][region_name].get_function(str(props["FunctionName"]))
        config: dict[str, Any] = {
            key: int(props[key])
            for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds")
            if key in props
        }
        if "DestinationConfig" in props:
            config["DestinationConfig"] = props["DestinationConfig"]
        fn.event_invoke_config = [EventInvokeConfig(fn.function_arn, fn.last_modified, config)]
        return cls(resource_name, account_id, region_name, fn.function_name)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.awslambda.models import lambda_backends

        try:
            fn = lambda_backends[self.account_id][self.region].get_function(self.function)
        except Exception:  # the function went first
            return
        fn.event_invoke_config = []


class S3BucketPolicyResource(_TwinModel):
    """AWS::S3::BucketPolicy — stored on the bucket (GetBucketPolicy returns it), not enforced."""

    def __init__(self, bucket: str) -> None:
        self.physical_id = bucket
        self.bucket = bucket

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> S3BucketPolicyResource:
        from moto.s3.models import s3_backends

        props = cloudformation_json["Properties"]
        bucket = str(props["Bucket"])
        policy = json.dumps(props["PolicyDocument"]).encode("utf-8")
        s3_backends[account_id]["aws"].put_bucket_policy(bucket, policy)
        return cls(bucket)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.s3.models import s3_backends

        with contextlib.suppress(Exception):
            s3_backends[account_id]["aws"].delete_bucket_policy(self.bucket)


class SchedulerScheduleResource(_TwinModel):
    """AWS::Scheduler::Schedule — created in moto's scheduler backend; not fired.

    Ref is the schedule name, GetAtt Arn its ARN.
    """

    def __init__(self, schedule: Any) -> None:
        self.physical_id = schedule.name
        self.attr_Arn = schedule.arn
        self.group_name = schedule.group_name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Scheduler::Schedule"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @classmethod
    def attributes(cls) -> tuple[str, ...]:
        return ("Arn",)

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SchedulerScheduleResource:
        from moto.scheduler.models import scheduler_backends

        props = cloudformation_json["Properties"]
        schedule = scheduler_backends[account_id][region_name].create_schedule(
            description=props.get("Description"),
            end_date=props.get("EndDate"),
            flexible_time_window=props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
            group_name=props.get("GroupName"),
            kms_key_arn=props.get("KmsKeyArn"),
            name=props.get("Name", resource_name),
            schedule_expression=props["ScheduleExpression"],
            schedule_expression_timezone=props.get("ScheduleExpressionTimezone"),
            start_date=props.get("StartDate"),
            state=props.get("State"),
            target=copy.deepcopy(props["Target"]),
            action_after_completion=props.get("ActionAfterCompletion"),
        )
        return cls(schedule)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.scheduler.models import scheduler_backends

        with contextlib.suppress(Exception):
            scheduler_backends[account_id][region_name].delete_schedule(
                self.group_name, self.physical_id
            )


def _kms_key_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    policy = properties.get("KeyPolicy")
    return {
        "policy": policy if policy is None or isinstance(policy, str) else json.dumps(policy),
        "description": properties.get("Description"),
        "tags": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in properties.get("Tags", [])],
    }


def adapt_kms_key_template() -> None:
    """moto's AWS::KMS::Key fails on tagged keys and is dropped by any stack update.

    It hands CloudFormation's `Key`/`Value` tags to a tagger expecting `TagKey`/`TagValue`
    (KeyError, so every CDK-tagged key fails) and has no update, which moto turns into a
    `None` resource. Replaces `Key.create_from_cloudformation_json` and adds an in-place
    update.
    """
    from moto.kms.models import Key, kms_backends

    def create_from_template(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        key = kms_backends[account_id][region_name].create_key(
            key_usage=properties.get("KeyUsage", "ENCRYPT_DECRYPT"),
            key_spec=properties.get("KeySpec", "SYMMETRIC_DEFAULT"),
            **_kms_key_properties(properties),
        )
        key.key_rotation_status = str(properties.get("EnableKeyRotation", False)).lower() == "true"
        key.enabled = str(properties.get("Enabled", True)).lower() == "true"
        return key

    def update_in_place(
        cls: Any,
        /,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        wanted = _kms_key_properties(properties)
        backend = kms_backends[account_id][region_name]
        if wanted["policy"] is not None:
            original_resource.policy = wanted["policy"]
        original_resource.description = wanted["description"] or ""
        tags = {t["Key"]: t["Value"] for t in properties.get("Tags", [])}
        if tags:
            backend.tag_resource(original_resource.arn, tags)
        rotation = str(properties.get("EnableKeyRotation", False)).lower() == "true"
        original_resource.key_rotation_status = rotation
        return original_resource

    _patch(Key, "create_from_cloudformation_json", classmethod(create_from_template))
    _patch(Key, "update_from_cloudformation_json", classmethod(update_in_place))


_TWIN_MODELS: tuple[type[Any], ...] = (
    CloudWatchAlarmResource,
    CloudWatchCompositeAlarmResource,
    LambdaVersionResource,
    LambdaAliasResource,
    LambdaUrlResource,
    SnsSubscriptionResource,
    SnsTopicPolicyResource,
    SqsQueuePolicyResource,
    S3BucketPolicyResource,
    SchedulerScheduleResource,
    LambdaEventInvokeConfigResource,
)

# Types moto skips that have no runtime behaviour for the loop to miss.
_INERT_TYPES = frozenset({"AWS::CDK::Metadata"})


def adapt_cloudformation_types() -> None:
    """Register the twin's resource models with moto's CloudFormation parsing.

    `parsing.get_model_map`/`get_model_list` are cached views of CloudFormationModel's
    subclasses; they are replaced by views where the twin's models come first (so its
    AWS::Lambda::Version wins over moto's). S3 bucket policies are stored but, like every IAM
    policy on the twin, not enforced: moto would enforce them ignoring their Conditions, and
    CDK's enforceSSL statement would then deny every request.
    """
    from moto.cloudformation import parsing
    from moto.cloudformation.custom_model import CustomModel
    from moto.s3.models import FakeBucket

    base_list = parsing.get_model_list
    base_map = parsing.get_model_map
    twin_types = {model.cloudformation_type() for model in _TWIN_MODELS}

    def model_list() -> list[type[CloudFormationModel]]:
        others = [m for m in base_list() if m.cloudformation_type() not in twin_types]
        return [*_TWIN_MODELS, *others]

    def model_map() -> dict[str, Any]:
        twin = {m.cloudformation_type(): m for m in _TWIN_MODELS}
        # CDK's CustomResource defaults to the generic type, which moto does not route.
        return {**base_map(), **twin, "AWS::CloudFormation::CustomResource": CustomModel}

    def bucket_policy_not_enforced(self: Any, action: str, resource: str) -> Any:
        from moto.iam.access_control import PermissionResult

        return PermissionResult.NEUTRAL

    _patch(parsing, "get_model_list", model_list)
    _patch(parsing, "get_model_map", model_map)
    parsing.get_name_type_map.cache_clear()
    _patch(FakeBucket, "get_permission", bucket_policy_not_enforced)


def unsupported_resource_types(template: Mapping[str, Any]) -> list[str]:
    """The resource types in `template` that moto's CloudFormation (with the adapters) skips."""
    from moto.cloudformation import parsing

    known = parsing.get_model_map()
    types = {str(resource.get("Type", "")) for resource in template.get("Resources", {}).values()}
    return sorted(
        t
        for t in types
        if t not in known
        and not t.startswith("Custom::")
        and t not in parsing.NULL_MODELS
        and t not in _INERT_TYPES
    )


# ---------------------------------------------------------------------------------------------
# 7b. Function URLs: answered on the twin's own address, with AWS_IAM (SigV4) auth
# ---------------------------------------------------------------------------------------------

FUNCTION_URL_PREFIX = "/_lambda-url/"
"""A twin Function URL is `http://127.0.0.1:<port>/_lambda-url/<url-id>/`.

Not `http://<url-id>.lambda-url.<region>.localhost:<port>/`: `*.localhost` names reach
loopback only where the resolver special-cases them (systemd-resolved, nss-myhostname,
browsers); glibc with `hosts: files dns`, as in most containers and CI runners, answers "Name
or service not known", so urllib, requests and botocore would need /etc/hosts entries. The
path form is the twin's endpoint itself: whatever reaches the twin reaches its URLs, and the
port is known when a stack is created. S3 bucket names cannot contain `_`, so the prefix
never shadows a path-style S3 request.
"""

_SIGNATURE_MAX_SKEW_S = 15 * 60
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_URL_ERROR_BODY = b'{"Message":"Internal Server Error"}'
_TEXT_BODY_TYPES = frozenset({"application/json", "application/javascript", "application/xml"})
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class _ServedUrl:
    """Where one Function URL's requests go: the function and the alias or version it targets."""

    url: str
    account_id: str
    region: str
    function_name: str
    qualifier: str | None


_FUNCTION_URLS: dict[str, _ServedUrl] = {}


def function_url(url_id: str) -> str:
    """The twin's address for Function URL `url_id` (see FUNCTION_URL_PREFIX)."""
    return f"http://127.0.0.1:{_settings().port}{FUNCTION_URL_PREFIX}{url_id}/"


def _url_id(url: str) -> str:
    """The <url-id> of a twin Function URL, or of moto's `https://<url-id>.lambda-url...`."""
    if FUNCTION_URL_PREFIX in url:
        return url.split(FUNCTION_URL_PREFIX, 1)[1].split("/", 1)[0]
    return url.split("//", 1)[-1].split(".", 1)[0]


def _split_qualifier(target: str) -> tuple[str, str | None]:
    """(function ARN or name, alias or version or None) of a TargetFunctionArn."""
    parts = target.split(":")
    if target.startswith("arn:"):
        return ":".join(parts[:7]), parts[7] if len(parts) > 7 else None
    return parts[0], parts[1] if len(parts) > 1 else None


def _serve_function_url(config: Any, qualifier: str | None) -> None:
    fn = config.function
    _FUNCTION_URLS[_url_id(config.url)] = _ServedUrl(
        config.url, str(fn.account_id), str(fn.region), str(fn.function_name), qualifier
    )


def _served_url(url_id: str) -> tuple[_ServedUrl, str] | None:
    """(target, AuthType) while the function still has this URL; None once it was deleted."""
    from moto.awslambda.utils import get_backend

    served = _FUNCTION_URLS.get(url_id)
    if served is None:
        return None
    try:
        fn = get_backend(served.account_id, served.region).get_function(served.function_name)
    except Exception:
        return None
    config = getattr(fn, "url_config", None)
    if config is None or config.url != served.url:
        return None
    return served, str(config.config.get("AuthType") or "AWS_IAM")


@dataclass(frozen=True)
class _Signature:
    """The SigV4 fields of a request, from its Authorization header or a presigned query."""

    algorithm: str
    credential: str
    signed_headers: str
    signature: str
    amz_date: str
    expires_s: int | None  # presigned requests only


def _request_signature(headers: Mapping[str, str], query: str) -> _Signature | None:
    authorization = headers.get("authorization", "").strip()
    if authorization:
        algorithm, _, rest = authorization.partition(" ")
        fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
        return _Signature(
            algorithm,
            fields.get("Credential", ""),
            fields.get("SignedHeaders", ""),
            fields.get("Signature", ""),
            headers.get("x-amz-date", ""),
            None,
        )
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if "X-Amz-Signature" not in params:
        return None
    expires = params.get("X-Amz-Expires", "")
    return _Signature(
        params.get("X-Amz-Algorithm", ""),
        params.get("X-Amz-Credential", ""),
        params.get("X-Amz-SignedHeaders", ""),
        params["X-Amz-Signature"],
        params.get("X-Amz-Date", ""),
        int(expires) if expires.isdigit() else 0,
    )


def sigv4_problem(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    region: str,
    now: datetime | None = None,
) -> str | None:
    """Why a request is not SigV4-signed by the twin's credentials for `lambda` in `region`
    (the message AWS answers with 403), or None when it is.

    `url` is what the client sent (scheme, Host, raw path and query), `headers` have lowercase
    names. Both the Authorization header and presigned queries (X-Amz-Signature) are checked,
    by recomputing the signature with botocore's signer over the headers the client signed.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from driftline.twin.server import FAKE_CREDENTIALS

    split = urllib.parse.urlsplit(url)
    signature = _request_signature(headers, split.query)
    if signature is None:
        return "Forbidden"
    if signature.algorithm != "AWS4-HMAC-SHA256":
        return f"Unsupported signature algorithm {signature.algorithm!r}: sign with SigV4"
    access_key, _, scope = signature.credential.partition("/")
    scope_date, scope_region, scope_service, terminator = [*scope.split("/"), "", "", "", ""][:4]
    if access_key != FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]:
        return "The security token included in the request is invalid."
    if scope_region != region:
        return f"Credential should be scoped to a valid region, not '{scope_region}'."
    if scope_service != "lambda":
        return "Credential should be scoped to correct service: 'lambda'."
    try:
        signed_at = datetime.strptime(signature.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "Signed requests need an X-Amz-Date header (or query parameter)."
    if scope_date != signature.amz_date[:8] or terminator != "aws4_request":
        return _SIGNATURE_MISMATCH
    age_s = ((now or datetime.now(UTC)) - signed_at).total_seconds()
    if signature.expires_s is None and abs(age_s) > _SIGNATURE_MAX_SKEW_S:
        return f"Signature expired or not yet current: signed at {signature.amz_date}."
    if signature.expires_s is not None and not 0 <= age_s <= signature.expires_s:
        return "Request has expired"
    names = [name for name in signature.signed_headers.split(";") if name]
    declared_hash = headers.get("x-amz-content-sha256") if "x-amz-content-sha256" in names else None
    if declared_hash not in (None, "UNSIGNED-PAYLOAD", hashlib.sha256(body).hexdigest()):
        return "The provided 'x-amz-content-sha256' header does not match what was computed."
    query = "&".join(
        pair for pair in split.query.split("&") if pair and not pair.startswith("X-Amz-Signature=")
    )
    request = AWSRequest(
        method=method,
        url=urllib.parse.urlunsplit((split.scheme, split.netloc, split.path, query, "")),
        data=body,
        headers={name: headers.get(name, "") for name in names},
    )
    request.context["timestamp"] = signature.amz_date
    signer = SigV4Auth(
        Credentials(access_key, FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]), "lambda", region
    )
    # botocore always signs Host and never some headers: a different list cannot be recomputed.
    if signer.signed_headers(signer.headers_to_sign(request)) != ";".join(names):
        return _SIGNATURE_MISMATCH
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    return None if hmac.compare_digest(expected, signature.signature) else _SIGNATURE_MISMATCH


@dataclass(frozen=True)
class _UrlRequest:
    """One HTTP request to a Function URL, as the client sent it."""

    method: str
    raw_path: str  # below the URL's root, e.g. /models/iris
    raw_query: str
    headers: tuple[tuple[str, str], ...]  # lowercase names, in arrival order
    body: bytes
    source_ip: str
    protocol: str


def _environ_request(environ: dict[str, Any]) -> tuple[str, str, _UrlRequest]:
    """(url id, URL as sent, request) of a WSGI request under FUNCTION_URL_PREFIX."""
    from werkzeug.wsgi import get_input_stream

    raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    if raw_uri.startswith(("http://", "https://")):  # absolute-form request line
        split = urllib.parse.urlsplit(raw_uri)
        raw_uri = split.path + (f"?{split.query}" if split.query else "")
    if not raw_uri:
        query = str(environ.get("QUERY_STRING") or "")
        raw_uri = urllib.parse.quote(str(environ.get("PATH_INFO", ""))) + (
            f"?{query}" if query else ""
        )
    raw_path, _, raw_query = raw_uri.partition("?")
    url_id, _, below = raw_path[len(FUNCTION_URL_PREFIX) :].partition("/")
    headers = [
        (key[5:].replace("_", "-").lower(), str(value))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    headers += [
        (key.replace("_", "-").lower(), str(environ[key]))
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH")
        if environ.get(key)
    ]
    request = _UrlRequest(
        method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
        raw_path=f"/{below}",
        raw_query=raw_query,
        headers=tuple(headers),
        body=get_input_stream(environ).read(),
        source_ip=str(environ.get("REMOTE_ADDR", "127.0.0.1")),
        protocol=str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
    )
    host = str(environ.get("HTTP_HOST") or f"127.0.0.1:{_settings().port}")
    return url_id, f"http://{host}{raw_uri}", request


def _text_body(content_type: str | None) -> bool:
    """Whether Lambda passes a body with this content type as text (else base64)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_BODY_TYPES
        or media_type.endswith(("+json", "+xml"))
    )


def _iam_caller(account_id: str, access_key: str) -> dict[str, Any]:
    """requestContext.authorizer.iam: the twin's fake credentials act as the account root."""
    return {
        "accessKey": access_key,
        "accountId": account_id,
        "callerId": account_id,
        "cognitoIdentity": None,
        "principalOrgId": None,
        "userArn": f"arn:aws:iam::{account_id}:root",
        "userId": account_id,
    }


def function_url_event(
    request: _UrlRequest,
    *,
    url_id: str,
    account_id: str,
    caller: dict[str, Any] | None,
    request_id: str,
    now: datetime,
) -> dict[str, Any]:
    """The event Lambda hands a function behind a Function URL (payload format 2.0)."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        if name == "cookie":
            cookies += [cookie.strip() for cookie in value.split(";") if cookie.strip()]
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    host = headers.get("host", "")
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    headers.setdefault("x-forwarded-port", host.rpartition(":")[2] if ":" in host else "80")
    parameters: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(request.raw_query, keep_blank_values=True):
        parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
    moment = _utc(now)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": account_id if caller is not None else "anonymous",
            "apiId": url_id,
            "authentication": None,
            "domainName": host.partition(":")[0] or "127.0.0.1",
            "domainPrefix": url_id,
            "http": {
                "method": request.method,
                "path": urllib.parse.unquote(request.raw_path),
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": f"{moment:%d}/{_MONTHS[moment.month - 1]}/{moment:%Y:%H:%M:%S} +0000",
            "timeEpoch": int(moment.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if parameters:
        event["queryStringParameters"] = parameters
    if caller is not None:
        event["requestContext"]["authorizer"] = {"iam": caller}
    if request.body:
        text: str | None = None
        if _text_body(headers.get("content-type")):
            with contextlib.suppress(UnicodeDecodeError):
                text = request.body.decode("utf-8")
        event["body"] = text if text is not None else base64.b64encode(request.body).decode()
        event["isBase64Encoded"] = text is None
    return event


def function_url_response(
    payload: bytes, function_error: bool
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of the HTTP response for a function's result.

    A `{"statusCode", "headers", "body", "cookies", "isBase64Encoded"}` object is that response;
    any other JSON is a 200 `application/json` response whose body is the JSON itself; an
    error of the function, or a response Lambda cannot read, is 502 Internal Server Error.
    """
    failed = 502, [("content-type", "application/json")], _URL_ERROR_BODY
    if function_error:
        return failed
    try:
        document = json.loads(payload or b"null")
    except ValueError:
        return failed
    if not isinstance(document, dict) or "statusCode" not in document:
        return 200, [("content-type", "application/json")], payload or b"null"
    try:
        status = int(document["statusCode"])
        given = document.get("headers") or {}
        headers = [(str(name).lower(), str(value)) for name, value in given.items()]
        cookies = [("set-cookie", str(cookie)) for cookie in document.get("cookies") or []]
        body = document.get("body")
        if body is None:
            content = b""
        elif not isinstance(body, str):
            content = json.dumps(body).encode("utf-8")
        elif document.get("isBase64Encoded"):
            content = base64.b64decode(body, validate=True)
        else:
            content = body.encode("utf-8")
    except (AttributeError, TypeError, ValueError):  # binascii.Error is a ValueError
        return failed
    if not 100 <= status <= 599:
        return failed
    if not any(name == "content-type" for name, _ in headers):
        headers.append(("content-type", "application/json"))
    return status, headers + cookies, content


def _url_message(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"Message": message}, separators=(",", ":")).encode("utf-8")
    return status, [("content-type", "application/json")], body


def _function_url_exchange(
    environ: dict[str, Any], request_id: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    from moto.awslambda.utils import get_backend

    url_id, sent_url, request = _environ_request(environ)
    found = _served_url(url_id)
    if found is None:
        return _url_message(404, "Not Found")
    served, auth_type = found
    caller = None
    if auth_type == "AWS_IAM":
        headers = dict(request.headers)
        problem = sigv4_problem(
            request.method, sent_url, headers, request.body, region=served.region
        )
        if problem is not None:
            return _url_message(403, problem)
        signature = _request_signature(headers, request.raw_query)
        access_key = signature.credential.partition("/")[0] if signature else ""
        caller = _iam_caller(served.account_id, access_key)
    event = function_url_event(
        request,
        url_id=url_id,
        account_id=served.account_id,
        caller=caller,
        request_id=request_id,
        now=datetime.now(UTC),
    )
    target = f"arn:aws:lambda:{served.region}:{served.account_id}:function:{served.function_name}"
    if served.qualifier:
        target = f"{target}:{served.qualifier}"
    response_headers: dict[str, str] = {}
    _INVOKED.request_id = request_id
    try:
        payload = get_backend(served.account_id, served.region).invoke(
            target, None, json.dumps(event).encode("utf-8"), {}, response_headers
        )
    finally:
        _INVOKED.request_id = None
    content = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload or b"")
    return function_url_response(content, "x-amz-function-error" in response_headers)


def _answer_function_url(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The WSGI answer to a request under FUNCTION_URL_PREFIX."""
    request_id = str(uuid.uuid4())
    try:
        status, headers, body = _function_url_exchange(environ, request_id)
    except Exception:  # a twin bug: answer like Lambda, leave the traceback in the log
        LOG.exception("function URL request %s failed in the twin", request_id)
        status, headers, body = 502, [("content-type", "application/json")], _URL_ERROR_BODY
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    headers = [*headers, ("content-length", str(len(body))), ("x-amzn-requestid", request_id)]
    start_response(f"{status} {reason}", headers)
    return [body]


def adapt_function_urls() -> None:
    """moto records Function URLs (at `https://<id>.lambda-url.<region>.on.aws`, which nothing
    answers): give each one the twin's address and serve it there.

    Patches `LambdaFunction.create_url_config` (every URL, from the API or a template, gets
    `http://127.0.0.1:<port>/_lambda-url/<id>/`) and the server's WSGI dispatcher
    (`DomainDispatcherApplication.__call__`): a request under the prefix becomes a payload
    2.0 event, AWS_IAM URLs first checking its SigV4 signature against the twin's fake
    credentials (403 otherwise), and runs through `LambdaBackend.invoke` on the alias or version
    the URL targets, like any Invoke; the result becomes the HTTP response by Lambda's rules.
    """
    from moto.awslambda.models import LambdaFunction
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    create_url_config = LambdaFunction.create_url_config
    dispatch = DomainDispatcherApplication.__call__

    def create_served_url_config(self: Any, config: dict[str, Any]) -> Any:
        url_config = create_url_config(self, config)
        url_config.url = function_url(_url_id(url_config.url))
        _serve_function_url(url_config, None)
        return url_config

    def dispatch_function_urls(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if str(environ.get("PATH_INFO", "")).startswith(FUNCTION_URL_PREFIX):
            return _answer_function_url(environ, start_response)
        return dispatch(self, environ, start_response)

    _patch(LambdaFunction, "create_url_config", create_served_url_config)
    _patch(DomainDispatcherApplication, "__call__", dispatch_function_urls)


# ---------------------------------------------------------------------------------------------
# 8. Fault injection: a test and chaos hook of the twin (AWS has no such thing)
# ---------------------------------------------------------------------------------------------


@dataclass
class _Fault:
    """`remaining` more invocations of functions matching `function_match` fail this way."""

    function_match: str
    error_type: str
    message: str | None
    remaining: int


_FAULTS: list[_Fault] = []
_FAULTS_LOCK = threading.Lock()


def inject_faults(
    function_match: str,
    *,
    error_type: str = "TransientError",
    count: int = 1,
    message: str | None = None,
) -> None:
    """Make the next `count` invocations of matching functions fail before their handler runs.

    Not an AWS feature: it lets tests and chaos drills on the twin exercise the Retry and
    Catch paths of the state machines with the errors real faults produce (a throttled call
    surfacing as `TransientError`, `Lambda.ServiceException`, ...), without editing handlers.
    A function matches when `function_match` equals its `DRIFTLINE_FUNCTION` environment
    variable (the handler module, e.g. `train`) or is a glob (`fnmatch`, case-sensitive) over
    its name or ARN. The failure is what Lambda returns for an unhandled error: a payload with
    `errorType`/`errorMessage` and the `Unhandled` function error. Faults live in the process
    running moto's server; each `inject_faults` call queues its own, consumed in call order.
    """
    if not function_match.strip():
        raise ValueError("inject_faults: function_match is empty; name a function or a glob")
    if not error_type.strip():
        raise ValueError("inject_faults: error_type is empty; Step Functions routes on it")
    if count < 1:
        raise ValueError(f"inject_faults: count must be at least 1, got {count}")
    with _FAULTS_LOCK:
        _FAULTS.append(_Fault(function_match, error_type, message, count))


def clear_faults() -> None:
    """Forget every injected fault not yet consumed."""
    with _FAULTS_LOCK:
        _FAULTS.clear()


def pending_faults() -> int:
    """How many injected failures are still waiting for an invocation."""
    with _FAULTS_LOCK:
        return sum(fault.remaining for fault in _FAULTS)


def _fault_matches(fault: _Fault, image: _FunctionImage) -> bool:
    environment = dict(image.environment)
    return (
        environment.get("DRIFTLINE_FUNCTION") == fault.function_match
        or fnmatch.fnmatchcase(image.function_name, fault.function_match)
        or fnmatch.fnmatchcase(image.function_arn, fault.function_match)
    )


def _take_fault(image: _FunctionImage) -> LambdaResult | None:
    """The injected failure this invocation of `image` consumes, if any."""
    with _FAULTS_LOCK:
        fault = next((f for f in _FAULTS if _fault_matches(f, image)), None)
        if fault is None:
            return None
        fault.remaining -= 1
        if fault.remaining == 0:
            _FAULTS.remove(fault)
    message = fault.message or (
        f"injected by the twin's fault hook into {image.function_name} "
        f"(inject_faults({fault.function_match!r})); the handler did not run"
    )
    LOG.info("lambda %s: injected %s", image.function_name, fault.error_type)
    return LambdaResult(_error_payload(fault.error_type, message), fault.error_type, "", False, 0.0)
