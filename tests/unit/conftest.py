"""Fixtures shared by the unit tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def atomic_items(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's item writes atomic, as DynamoDB's are.

    moto applies an UpdateItem as read-modify-write in Python, so two threads can both read
    counter 0; the real service applies each item write atomically. One lock per write call
    restores that guarantee and nothing more: code that read a value and wrote it back in two
    calls would still race and fail these tests.
    """
    from moto.dynamodb.responses import DynamoHandler

    # The lock spans the whole request, response included: moto builds ReturnValues from the
    # live item after the backend call, so locking only the backend still lets a second writer
    # change the item before the first response is serialized.
    lock = threading.Lock()
    for name in ("update_item", "put_item"):
        original = getattr(DynamoHandler, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoHandler, name, locked)


@pytest.fixture(scope="module")
def emulated_aws() -> Iterator[None]:
    """One in-process moto account for a test module, reached through the default chain.

    Step Functions executions run their definitions (moto's ASL interpreter), so a test can
    start an execution of a small state machine and read a real history. Nothing points at a
    real account: credentials are fake and AWS_ENDPOINT_URL/AWS_PROFILE are unset meanwhile.
    """
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        patch.delenv("AWS_PROFILE", raising=False)
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            yield
