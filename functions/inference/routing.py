"""The shared endpoint's routing: which model version answers a request for model M.

The deploy step writes, per model, the Endpoints table's `current` item (see
`functions/shared/endpoints.py`): the stable model version with its serving bundle (key +
sha256), and during a canary a second version with its bundle and its share of the traffic.
This module reads that item at most once per `route_ttl_seconds` per model and execution
environment (a deploy or rollback reaches every warm environment within that time), and keeps
at most `model_cache_size` loaded models, least recently used out, so one function can serve
any number of models without holding them all in memory.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.inference.service import Deployed, InferenceSettings, prepare
from pipelines.request_schema import RequestError

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Target:
    """One servable model version: the bundle the deploy step stored for it."""

    version: int
    bundle_key: str
    bundle_sha256: str


@dataclass(frozen=True)
class Route:
    """Where a model's traffic goes: the stable version and, mid-canary, a weighted second."""

    model: str
    stable: Target
    canary: Target | None = None
    canary_weight: float = 0.0

    def pick(self, draw: Callable[[], float] = random.random) -> Target:
        if self.canary is not None and self.canary_weight > 0 and draw() < self.canary_weight:
            return self.canary
        return self.stable


def route_from_record(model: str, record: Mapping[str, Any] | None) -> Route | None:
    """The route an Endpoints-table `current` item describes; None when it serves nothing here.

    Items written for a dedicated endpoint carry no serving bundle for the shared endpoint and
    are not routed (their model answers on its own function).
    """
    if record is None or record.get("endpoint") != "shared":
        return None
    stable = _target(record, "")
    if stable is None:
        return None
    canary = _target(record, "canary_")
    weight = float(record.get("canary_weight") or 0.0) if canary is not None else 0.0
    return Route(model=model, stable=stable, canary=canary, canary_weight=min(max(weight, 0), 1))


def _target(record: Mapping[str, Any], prefix: str) -> Target | None:
    version = record.get(f"{prefix}model_version")
    key = record.get(f"{prefix}serving_key")
    digest = record.get(f"{prefix}serving_sha256")
    if version is None or not key or not digest:
        return None
    return Target(version=int(version), bundle_key=str(key), bundle_sha256=str(digest))


def requested_model(document: Any, path: str | None) -> str:
    """The model a request names: the URL path `/models/<name>[/...]` or the `model` field."""
    name: Any = None
    if path:
        parts = [part for part in path.split("/") if part]
        if len(parts) >= 2 and parts[0] == "models":
            name = parts[1]
        elif parts:
            raise RequestError(
                f"path {path} names no model; POST to /models/<model>", status=404, code="NotFound"
            )
    if name is None and isinstance(document, Mapping):
        name = document.get("model")
    if name is None:
        raise RequestError(
            'request names no model: POST to /models/<model> or send {"model": ..., "rows": [...]}',
            code="ModelRequired",
        )
    if not isinstance(name, str):
        raise RequestError("the model name must be a string")
    if not MODEL_NAME.fullmatch(name):
        raise RequestError(f"model name {name[:80]!r} is not a valid model name")
    return name


class Router:
    """Routes and loaded models of one execution environment (thread-safe, bounded)."""

    def __init__(
        self,
        settings: InferenceSettings,
        read_record: Callable[[str], Mapping[str, Any] | None],
        read_bytes: Callable[[str], bytes],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._read_record = read_record
        self._read_bytes = read_bytes
        self._clock = clock
        self._routes: dict[str, tuple[float, Route | None]] = {}
        self._models: OrderedDict[tuple[str, str], Deployed] = OrderedDict()
        self._lock = threading.Lock()

    def route(self, model: str) -> Route:
        now = self._clock()
        with self._lock:
            cached = self._routes.get(model)
        if cached is None or now - cached[0] >= self._settings.route_ttl_seconds:
            found = route_from_record(model, self._read_record(model))
            cached = (now, found)
            with self._lock:
                self._routes[model] = cached
        if cached[1] is None:
            raise RequestError(
                f"model {model} is not deployed to this endpoint; a model is served once the "
                "pipeline has registered and deployed an approved version of it",
                status=404,
                code="UnknownModel",
            )
        return cached[1]

    def deployed(self, model: str, target: Target) -> Deployed:
        """The loaded model version (loaded on first use, verified against its digest)."""
        key = (target.bundle_key, target.bundle_sha256)
        with self._lock:
            found = self._models.get(key)
            if found is not None:
                self._models.move_to_end(key)
                return found
        from pipelines.serving_bundle import load_bundle

        serving = load_bundle(self._read_bytes(target.bundle_key), target.bundle_sha256)
        loaded = prepare(serving, target.version, model)
        with self._lock:
            self._models[key] = loaded
            self._models.move_to_end(key)
            while len(self._models) > self._settings.model_cache_size:
                self._models.popitem(last=False)
        return loaded

    def loaded(self) -> list[tuple[str, int]]:
        """(model, version) of the models held in memory, least recently used first."""
        with self._lock:
            return [(d.model, d.version) for d in self._models.values()]


_router: Router | None = None


def get_router(settings: InferenceSettings) -> Router:
    """The execution environment's router, reading the Endpoints table and the bucket."""
    global _router
    if _router is None:
        from functions.shared import storage
        from functions.shared.clients import client
        from functions.shared.endpoints import EndpointRegistry

        assert settings.endpoints_table is not None
        registry = EndpointRegistry(client("dynamodb"), settings.endpoints_table)
        bucket = settings.artifacts_bucket
        _router = Router(
            settings,
            read_record=registry.current,
            read_bytes=lambda key: storage.get_bytes(bucket, key),
        )
    return _router


def reset() -> None:
    global _router
    _router = None
