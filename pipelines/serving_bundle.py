"""How a deployed model version reaches the inference function: safely once, fast ever after.

The registry's `model.zip` is a skops archive: loading it checks every type against an
allowlist, which is the right gate for an artifact that crossed a trust boundary, but
importing `skops.io` enumerates every scikit-learn estimator (about a second on its own) and
that would be paid on every cold start. So the deploy step loads the archive once through that
gate (and the scikit-learn version check) and writes a *serving bundle*: the same fitted object
and metadata, pickled, stored content-addressed at
`models/<model>/v<version>/serving/<sha256>.pkl`. The digest is baked into the environment of
the Lambda version that serves it (published versions are immutable), and the inference
function refuses bytes that do not hash to it. Swapping the bundle therefore takes the right to
change the function's configuration, the same right that could change its code.

A function whose environment names only the archive (`DRIFTLINE_MODEL_KEY`, no bundle) loads it
through skops: slower to start, same predictions.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BUNDLE_FORMAT = "driftline-serving"
BUNDLE_FORMAT_VERSION = 1


class BundleError(ValueError):
    """The bytes are not a serving bundle this function may load."""


@dataclass(frozen=True)
class ServingModel:
    """A fitted model with the metadata serving needs (features, types, classes, task)."""

    model: Any
    metadata: Mapping[str, Any]

    @property
    def task(self) -> str:
        return str(self.metadata["task"])

    @property
    def classes(self) -> list[Any] | None:
        classes = self.metadata.get("classes")
        return list(classes) if classes is not None else None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_bundle(archive: bytes) -> tuple[bytes, str]:
    """(bundle bytes, their sha256) for a registry archive, loaded through skops' allowlist."""
    from pipelines.model_io import load_model

    loaded = load_model(archive)
    document = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "sklearn_version": loaded.metadata.sklearn_version,
        "metadata": loaded.metadata.to_dict(),
        "model": loaded.model,
    }
    data = pickle.dumps(document, protocol=pickle.HIGHEST_PROTOCOL)
    return data, sha256_hex(data)


def load_bundle(data: bytes, expected_sha256: str) -> ServingModel:
    """Unpickle only bytes whose digest the function's own configuration pins."""
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise BundleError(
            f"serving bundle digest is {actual}, the function expects {expected_sha256}; "
            "refusing to load it"
        )
    # Safe to unpickle: the digest pinned in the immutable function version proves these are
    # the bytes the deploy step produced from an allowlist-checked archive.
    document = pickle.loads(data)  # noqa: S301
    if not isinstance(document, dict) or document.get("format") != BUNDLE_FORMAT:
        raise BundleError("not a Driftline serving bundle")
    if document.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise BundleError(f"serving bundle format {document.get('format_version')} is unknown")
    import sklearn

    if document["sklearn_version"] != sklearn.__version__:
        raise BundleError(
            f"serving bundle was written with scikit-learn {document['sklearn_version']}, "
            f"this runtime has {sklearn.__version__}; redeploy the model version"
        )
    return ServingModel(model=document["model"], metadata=document["metadata"])


def load_archive(archive: bytes) -> ServingModel:
    """The registry archive itself, through skops (the slow, always-available path)."""
    from pipelines.model_io import load_model

    loaded = load_model(archive)
    return ServingModel(model=loaded.model, metadata=loaded.metadata.to_dict())
