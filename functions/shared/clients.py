"""boto3 clients, created once per execution environment and reused across invocations."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5)


@cache
def client(service: str) -> Any:
    """A client from the standard chain (honours AWS_ENDPOINT_URL, so the twin works too)."""
    return boto3.session.Session().client(service, config=_CONFIG)


def reset() -> None:
    """Forget cached clients (tests start a fresh emulator per test)."""
    client.cache_clear()
