"""Score checked rows with the deployed model version and capture a sample of the traffic.

Two kinds of endpoint run this code:
- a *dedicated* endpoint (one function per model shipped in `models/`): the settings come from
  the environment of the *published Lambda version* being invoked. The deploy step writes the
  model version, its archive key and its serving bundle (key + digest) before publishing, so a
  version always serves the model it was deployed with, and rolling the `live` alias back to an
  older version brings its model back too. The model is loaded once per execution environment;
- the *shared* endpoint (no `DRIFTLINE_MODEL_NAME`, a `DRIFTLINE_ENDPOINTS_TABLE`): it serves
  any model the pipeline deployed to it, by name, routing each request with the model's
  Endpoints-table record (see `functions/inference/routing.py`). No redeploy is needed for a
  new model, and a model that is never called costs nothing.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from functions.shared.errors import SettingsError, setting_variable
from pipelines.keys import capture_key
from pipelines.request_schema import CheckedRows, FeatureSchema, Limits, RequestError
from pipelines.serving_bundle import ServingModel, load_archive, load_bundle

DEFAULT_MAX_ROWS = 1000
DEFAULT_MAX_PAYLOAD_BYTES = 1_000_000
# Function URLs and synchronous invokes carry at most 6 MB; a larger limit could never apply.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024


@dataclass(frozen=True)
class InferenceSettings:
    env: str
    model_name: str | None
    artifacts_bucket: str
    capture_sample_rate: float
    limits: Limits
    model_version: int | None
    model_key: str | None
    bundle_key: str | None
    bundle_sha256: str | None
    endpoints_table: str | None = None
    route_ttl_seconds: float = 10.0
    model_cache_size: int = 8

    @property
    def shared(self) -> bool:
        """Whether this function serves any deployed model by name (the shared endpoint)."""
        return self.model_name is None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> InferenceSettings:
        """`DRIFTLINE_*` variables, read like `functions.shared.settings.load_settings` reads
        them (same variables, same one-line SettingsError) but without pydantic, which would
        add about 60 ms to the cold start of the serving path (issue 14, Speed)."""

        def required(name: str) -> str:
            value = optional(name)
            if value is None:
                raise SettingsError.missing(name)
            return value

        def optional(name: str) -> str | None:
            return environ.get(setting_variable(name), "").strip() or None

        def number(name: str, default: float, low: float, high: float) -> float:
            text = optional(name)
            try:
                value = float(text) if text is not None else default
            except ValueError:
                raise SettingsError.invalid(name, f"{text!r} is not a number") from None
            if not low <= value <= high:
                raise SettingsError.invalid(name, f"{text} is outside [{low:g}, {high:g}]")
            return value

        extra = (optional("extra_features") or "ignore").lower()
        if extra not in ("ignore", "reject"):
            raise SettingsError.invalid("extra_features", f"{extra!r} must be ignore or reject")
        version_text = optional("model_version")
        if version_text is not None and not version_text.isdigit():
            raise SettingsError.invalid("model_version", f"{version_text!r} is not a version")
        bundle_key, bundle_sha256 = optional("serving_key"), optional("serving_sha256")
        if (bundle_key is None) != (bundle_sha256 is None):
            raise SettingsError(
                f"environment variables {setting_variable('serving_key')} and "
                f"{setting_variable('serving_sha256')} must be set together"
            )
        model_name = optional("model_name")
        endpoints_table = optional("endpoints_table")
        if model_name is None and endpoints_table is None:
            raise SettingsError(
                f"environment variable {setting_variable('model_name')} (a dedicated endpoint) "
                f"or {setting_variable('endpoints_table')} (the shared endpoint) must be set"
            )
        return cls(
            env=required("env"),
            model_name=model_name,
            artifacts_bucket=required("artifacts_bucket"),
            capture_sample_rate=number("capture_sample_rate", 0.0, 0.0, 1.0),
            limits=Limits(
                max_rows=int(number("max_rows", DEFAULT_MAX_ROWS, 1, 1_000_000)),
                max_payload_bytes=int(
                    number("max_payload_bytes", DEFAULT_MAX_PAYLOAD_BYTES, 1, LAMBDA_PAYLOAD_LIMIT)
                ),
                extra_features="reject" if extra == "reject" else "ignore",
            ),
            model_version=int(version_text) if version_text is not None else None,
            model_key=optional("model_key"),
            bundle_key=bundle_key,
            bundle_sha256=bundle_sha256,
            endpoints_table=endpoints_table,
            route_ttl_seconds=number("route_ttl_seconds", 10.0, 0.0, 3600.0),
            model_cache_size=int(number("model_cache_size", 8, 1, 256)),
        )


@cache
def get_settings() -> InferenceSettings:
    return InferenceSettings.from_environ(os.environ)


@dataclass(frozen=True)
class Deployed:
    """A model version ready to serve, with its schema prepared once."""

    model: str
    version: int
    serving: ServingModel
    schema: FeatureSchema
    all_numeric: bool


@cache
def _load(bucket: str, model_key: str | None, bundle_key: str | None, digest: str | None) -> Any:
    from functions.shared import storage

    if bundle_key is not None and digest is not None:
        return load_bundle(storage.get_bytes(bucket, bundle_key), digest)
    if model_key is None:
        raise SettingsError(
            f"no {setting_variable('model_key')} or {setting_variable('serving_key')} "
            "to load a model from"
        )
    return load_archive(storage.get_bytes(bucket, model_key))


def deployed_model(settings: InferenceSettings) -> Deployed:
    """The dedicated endpoint's model, loaded on first use; 503 while none was deployed."""
    if settings.model_version is None or (
        settings.model_key is None and settings.bundle_key is None
    ):
        raise RequestError(
            f"endpoint {settings.model_name} has no model deployed yet "
            "(the pipeline deploys the first approved version)",
            status=503,
            code="NoModelDeployed",
        )
    return _deployed(settings)


@cache
def _deployed(settings: InferenceSettings) -> Deployed:
    serving: ServingModel = _load(
        settings.artifacts_bucket, settings.model_key, settings.bundle_key, settings.bundle_sha256
    )
    assert settings.model_version is not None and settings.model_name is not None
    return prepare(serving, settings.model_version, settings.model_name)


def prepare(serving: ServingModel, version: int, model: str) -> Deployed:
    """A loaded model with its schema worked out once, ready to score requests."""
    schema = FeatureSchema.from_metadata(serving.metadata)
    all_numeric = all(schema.kind(name) != "categorical" for name in schema.features)
    return Deployed(
        model=model, version=version, serving=serving, schema=schema, all_numeric=all_numeric
    )


@dataclass(frozen=True)
class Scored:
    predictions: list[Any]
    classes: list[Any] | None
    probabilities: list[list[float]] | None


def score(deployed: Deployed, checked: CheckedRows) -> Scored:
    """Labels (and class probabilities for classifiers) for every checked row, in order.

    A classifier's label is the class with the highest probability, computed from one
    predict_proba call: half the work of predict + predict_proba, and label and probabilities
    can never disagree (they can with predict on some estimators, e.g. SVC's Platt scaling).
    """
    import numpy as np
    import pandas as pd

    features = list(deployed.schema.features)
    if deployed.all_numeric:
        matrix = np.array([checked.columns[name] for name in features], dtype="float64").T
        frame = pd.DataFrame(matrix, columns=features)
    else:
        frame = pd.DataFrame(
            {
                name: pd.Series(
                    checked.columns[name],
                    dtype="object" if deployed.schema.kind(name) == "categorical" else "float64",
                )
                for name in features
            }
        )
    model = deployed.serving.model
    if deployed.serving.task == "classification" and hasattr(model, "predict_proba"):
        probabilities = np.asarray(model.predict_proba(frame), dtype="float64")
        classes = np.asarray(model.classes_)
        labels = classes[np.argmax(probabilities, axis=1)]
        return Scored(
            predictions=labels.tolist(),
            classes=classes.tolist(),
            probabilities=probabilities.tolist(),
        )
    predictions = np.asarray(model.predict(frame)).tolist()
    if deployed.serving.task != "classification":
        predictions = [
            value if not isinstance(value, float) or math.isfinite(value) else None
            for value in predictions
        ]
    return Scored(predictions=predictions, classes=deployed.serving.classes, probabilities=None)


def response_document(
    deployed: Deployed, checked: CheckedRows, scored: Scored, rid: str
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "status": 200,
        "request_id": rid,
        "model": deployed.model,
        "model_version": deployed.version,
        "predictions": scored.predictions,
    }
    if scored.probabilities is not None:
        document["classes"] = scored.classes
        document["probabilities"] = scored.probabilities
    if checked.ignored_features:
        document["ignored_features"] = list(checked.ignored_features)
    return document


def sampled(rate: float) -> bool:
    """Whether this request is captured; capture is a sample, not an audit log."""
    return rate >= 1.0 or (rate > 0.0 and random.random() < rate)


def capture_lines(
    deployed: Deployed,
    checked: CheckedRows,
    scored: Scored,
    request_id: str,
    at: datetime,
) -> str:
    """One JSON line per row: what came in, what went out, which model answered, and when."""
    timestamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    lines = []
    for index, row in enumerate(checked.rows):
        record: dict[str, Any] = {
            "request_id": request_id,
            "row": index,
            "features": row,
            "prediction": scored.predictions[index],
            "model": deployed.model,
            "model_version": deployed.version,
            "timestamp": timestamp,
        }
        if scored.probabilities is not None and scored.classes is not None:
            record["probabilities"] = dict(
                zip((str(c) for c in scored.classes), scored.probabilities[index], strict=True)
            )
        lines.append(json.dumps(record, separators=(",", ":"), allow_nan=False))
    return "\n".join(lines) + "\n"


def capture(
    settings: InferenceSettings,
    deployed: Deployed,
    checked: CheckedRows,
    scored: Scored,
    request_id: str,
) -> str:
    """Write the request's capture object; returns its key."""
    from functions.shared import storage

    at = datetime.now(UTC)
    key = capture_key(deployed.model, at, request_id)
    body = capture_lines(deployed, checked, scored, request_id, at)
    storage.put_bytes(settings.artifacts_bucket, key, body.encode("utf-8"), "application/x-ndjson")
    return key


def reset() -> None:
    """Forget settings and loaded models (tests change the environment between cases)."""
    from functions.inference import routing

    get_settings.cache_clear()
    _deployed.cache_clear()
    _load.cache_clear()
    routing.reset()
