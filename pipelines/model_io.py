"""A fitted model and its metadata as one byte string, for S3 and the serving image.

The archive is a zip holding `metadata.json` and `model.skops`. skops rebuilds objects from
an allowlist of types instead of running pickle's arbitrary code; only scikit-learn and numpy
types (and `functools.partial` around them) are allowed. The scikit-learn version that wrote
the model is checked before anything is deserialised, because estimators restored under
another version can load and then predict differently or fail on first use.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # reading an archive's metadata needs neither pandas nor scikit-learn
    from pipelines.training import TrainingRun

FORMAT = "driftline-model"
FORMAT_VERSION = 1
METADATA_MEMBER = "metadata.json"
MODEL_MEMBER = "model.skops"
_TRUSTED_PREFIXES = ("sklearn.", "numpy.")
_TRUSTED_EXACT = frozenset({"functools.partial"})


class ModelIOError(ValueError):
    """The bytes are not a loadable Driftline model."""


class ModelVersionError(ModelIOError):
    """The model was written by another scikit-learn version than this runtime has."""


@dataclass(frozen=True)
class DataLineage:
    """Where the training data and code came from, recorded with the model and on its card."""

    dataset: str
    s3_version_id: str
    manifest_sha256: str
    code_version: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class ModelMetadata:
    sklearn_version: str
    task: str
    target: str
    estimator: str
    features: list[str]
    feature_types: dict[str, str]
    classes: list[Any] | None
    metrics: dict[str, dict[str, float | None]]
    primary_metric: str
    created_at: str
    lineage: dict[str, str] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ModelMetadata:
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{key: value for key, value in document.items() if key in known})
        except TypeError as exc:
            raise ModelIOError(f"model metadata is incomplete: {exc}") from None


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def metadata_for_run(
    run: TrainingRun, *, created_at: str, lineage: DataLineage | None = None
) -> ModelMetadata:
    """Metadata for a fresh training run; `created_at` comes from the caller to stay pure."""
    import sklearn

    classes = (
        [_plain(label) for label in run.model.classes_]
        if run.config.task == "classification"
        else None
    )
    metrics = {
        split: {name: (None if math.isnan(value) else value) for name, value in values.items()}
        for split, values in run.evaluation.metrics.items()
    }
    return ModelMetadata(
        sklearn_version=sklearn.__version__,
        task=run.config.task,
        target=run.config.target,
        estimator=run.config.estimator_path,
        features=list(run.prepared.features),
        feature_types=dict(run.prepared.feature_types),
        classes=classes,
        metrics=metrics,
        primary_metric=run.config.primary_metric,
        created_at=created_at,
        lineage=lineage.to_dict() if lineage is not None else {},
    )


def dump_model(model: Any, metadata: ModelMetadata) -> bytes:
    import skops.io as sio

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(METADATA_MEMBER, json.dumps(metadata.to_dict(), indent=2, sort_keys=True))
        archive.writestr(MODEL_MEMBER, sio.dumps(model))
    return buffer.getvalue()


def read_metadata(data: bytes) -> ModelMetadata:
    """Only the metadata, without deserialising the model (cheap, and safe on any version)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            document = json.loads(archive.read(METADATA_MEMBER))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ModelIOError(f"not a Driftline model archive: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelIOError("not a Driftline model archive: metadata has no 'format' marker")
    if document.get("format_version") != FORMAT_VERSION:
        raise ModelIOError(
            f"model archive format version {document.get('format_version')} is not "
            f"supported (this code reads version {FORMAT_VERSION})"
        )
    return ModelMetadata.from_dict(document)


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    metadata: ModelMetadata


def _trusted(type_name: str) -> bool:
    return type_name in _TRUSTED_EXACT or type_name.startswith(_TRUSTED_PREFIXES)


def load_model(data: bytes) -> LoadedModel:
    """Deserialise a model written by `dump_model` under the same scikit-learn version."""
    import sklearn
    import skops.io as sio

    metadata = read_metadata(data)
    if metadata.sklearn_version != sklearn.__version__:
        raise ModelVersionError(
            f"model was written with scikit-learn {metadata.sklearn_version} but this runtime "
            f"has {sklearn.__version__}; load it with {metadata.sklearn_version} or retrain"
        )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        try:
            payload = archive.read(MODEL_MEMBER)
        except KeyError:
            raise ModelIOError(f"model archive has no '{MODEL_MEMBER}'") from None
    untrusted = sio.get_untrusted_types(data=payload)
    refused = [name for name in untrusted if not _trusted(name)]
    if refused:
        raise ModelIOError(f"model archive holds a type outside the allowlist: {refused[0]}")
    return LoadedModel(model=sio.loads(payload, trusted=untrusted), metadata=metadata)
