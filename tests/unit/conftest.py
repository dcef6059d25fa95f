"""Fixtures shared by the unit tests."""

from __future__ import annotations

import threading
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
