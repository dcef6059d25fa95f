"""Which AWS a command reaches, and what to do when it cannot reach it.

`--env local` means the local twin. When `AWS_ENDPOINT_URL` is not set, the CLI finds the
running twin itself from the state file `driftline local up` writes (`.driftline/twin.json`:
its port and pid) and points the standard boto3 chain at it, with the twin's fake credentials
and region, for the duration of the command. Other envs use the standard chain untouched.

Every connection failure becomes one line naming the fix: no region configured, no
credentials, credentials expired, or a twin that is not running ("run `driftline local up`").
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from driftline.errors import DriftlineError, UsageError

# Overrides where `driftline local up` keeps its state (default: <project>/.driftline).
STATE_DIR_VARIABLE = "DRIFTLINE_STATE_DIR"
STATE_FILE = "twin.json"
LOCAL_ENV = "local"
TWIN_REGION = "us-east-1"
TWIN_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
START_TWIN = "run `driftline local up` (it serves until Ctrl-C) and try again"


def default_state_dir() -> Path:
    """$DRIFTLINE_STATE_DIR, else `.driftline` in the project root (cdk.json + app.py), else cwd."""
    explicit = os.environ.get(STATE_DIR_VARIABLE)
    if explicit:
        return Path(explicit).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "cdk.json").is_file() and (candidate / "app.py").is_file():
            return candidate / ".driftline"
    return here / ".driftline"


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (one owned by another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recorded_twin(state_dir: Path | None = None) -> str | None:
    """The endpoint of the twin recorded in the state file, if its process still runs."""
    path = (state_dir or default_state_dir()) / STATE_FILE
    try:
        document: Any = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or not document.get("port"):
        return None
    pid = document.get("pid")
    if isinstance(pid, int) and not process_alive(pid):
        return None
    endpoint = document.get("endpoint") or f"http://127.0.0.1:{int(document['port'])}"
    return str(endpoint).rstrip("/")


class Target:
    """What the current command reaches: the env, and the twin's endpoint when it is the twin."""

    env: str | None = None
    twin_endpoint: str | None = None
    discovered: bool = False


CURRENT = Target()


def set_environment(values: Mapping[str, str | None]) -> dict[str, str | None]:
    """Set each variable (unset it for None); returns what was there, to set back later."""
    previous = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return previous


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """The variables set (None: unset) for the block, then restored."""
    saved = set_environment(values)
    try:
        yield
    finally:
        set_environment(saved)


@contextmanager
def target(env: str | None) -> Iterator[Target]:
    """Point the boto3 chain at the running twin for `--env local`, and restore it after."""
    saved: dict[str, str | None] = {}
    CURRENT.env, CURRENT.twin_endpoint, CURRENT.discovered = env, None, False
    if env == LOCAL_ENV:
        explicit = os.environ.get("AWS_ENDPOINT_URL")
        if explicit:
            CURRENT.twin_endpoint = explicit.rstrip("/")
        else:
            endpoint = recorded_twin()
            if endpoint is not None:
                CURRENT.twin_endpoint, CURRENT.discovered = endpoint, True
                values: dict[str, str | None] = {
                    "AWS_ENDPOINT_URL": endpoint,
                    "AWS_DEFAULT_REGION": TWIN_REGION,
                    "AWS_REGION": TWIN_REGION,
                    "AWS_PROFILE": None,
                    **TWIN_CREDENTIALS,
                }
                saved = set_environment(values)
    try:
        yield CURRENT
    finally:
        set_environment(saved)
        CURRENT.env, CURRENT.twin_endpoint, CURRENT.discovered = None, None, False


_EXPIRED = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def explain(error: BaseException, env: str | None) -> DriftlineError | None:
    """A one-line error naming the fix for a connection/credential failure, else None."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    twin = env == LOCAL_ENV
    for cause in _causes(error):
        if isinstance(cause, NoRegionError):
            if twin:
                return UsageError(f"no local twin is running (no region to reach): {START_TWIN}")
            return UsageError(
                "no AWS region is configured: export AWS_DEFAULT_REGION=<region> or set "
                "`region` in your AWS profile (AWS_PROFILE)"
            )
        if isinstance(cause, EndpointConnectionError):
            url = str(cause.kwargs.get("endpoint_url", "") or CURRENT.twin_endpoint or "")
            local = twin or "127.0.0.1" in url or "localhost" in url
            if local:
                return UsageError(f"cannot reach the local twin at {_origin(url)}: {START_TWIN}")
            return UsageError(
                f"cannot reach {_origin(url)}: check the network, AWS_DEFAULT_REGION and "
                "AWS_ENDPOINT_URL"
            )
        if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
            if twin:
                return UsageError(f"no local twin is running (no credentials): {START_TWIN}")
            return UsageError(
                "no AWS credentials found: set AWS_PROFILE, or run `aws sso login` / "
                "`aws configure`"
            )
        if isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
            if code in _EXPIRED:
                return UsageError(
                    f"AWS rejected the credentials ({code}): refresh them (`aws sso login`, "
                    "or new keys) or choose another AWS_PROFILE"
                )
    return None


def _origin(url: str) -> str:
    """`scheme://host[:port]` of an endpoint URL (botocore reports the full request URL)."""
    if "://" not in url:
        return url or "the endpoint"
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"
