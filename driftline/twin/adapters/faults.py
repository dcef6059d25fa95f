"""Section 8: fault injection, a test and chaos hook of the twin (AWS has no such thing)."""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from driftline.twin.adapters.base import LOG

if TYPE_CHECKING:
    from driftline.twin.adapters.lambdas import FunctionImage


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


def _fault_matches(fault: _Fault, image: FunctionImage) -> bool:
    environment = dict(image.environment)
    return (
        environment.get("DRIFTLINE_FUNCTION") == fault.function_match
        or fnmatch.fnmatchcase(image.function_name, fault.function_match)
        or fnmatch.fnmatchcase(image.function_arn, fault.function_match)
    )


def take_fault(image: FunctionImage) -> tuple[str, str] | None:
    """(error type, message) of the injected failure this invocation of `image` consumes."""
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
    return fault.error_type, message
