"""Which keys of the artifacts bucket each function reads and writes: those only, no deletes.

The artifacts bucket holds every step's output, so a grant on the whole bucket would let any
step overwrite (or, with CDK's `grant_read_write`, delete every version of) another step's
record: a registered model, a manifest, a capture. Each function gets `s3:GetObject*` on the
keys it reads and `s3:PutObject` (CDK's `grant_put`: no delete, no ACL) on the keys it
writes, as the key helpers build them (`functions/shared/keys.py`, `pipelines/manifests.py`,
`pipelines/batches.py`, `pipelines/monitoring.py`); `tests/infra/test_least_privilege.py`
checks every write a handler makes against these globs. In IAM globs `*` also matches `/`.

Layout of the bucket (top-level prefixes):
  datasets/<dataset>/<version_id>/   manifest.json, report.json, contract.json, parts.json,
                                     parts/<index>.json (validation of an upload)
  runs/<run_id>/                     dataset.parquet, model_config.yaml, model.zip,
                                     metrics.json, evaluation.png, model_card.md,
                                     sagemaker/ (a SageMaker training job's output)
  models/<model>/v<N>/               the registered copies; serving/ (deploy step's bundles)
  captures/<model>/                  inference traffic        reports/drift|feedback/<model>/
  monitoring/baselines/<model>/      drift baselines          part-results/ (Distributed Map)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

DATASET_VERSION = "datasets/*/"  # pipelines.manifests.dataset_prefix(dataset, version_id)
RUN = "runs/*/"  # functions.shared.keys.run_artifact(run_id, name)
REGISTERED = "models/*/v*/"  # functions.shared.keys.model_artifact(model, version, name)
PART_RESULTS = "part-results/"  # the Distributed Map's ResultWriter prefix


@dataclass(frozen=True)
class ArtifactAccess:
    """Key globs (relative to the bucket) a function may read, and may write."""

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def grant(self, bucket: s3.IBucket, grantee: iam.IGrantable) -> None:
        for pattern in self.reads:
            bucket.grant_read(grantee, pattern)
        for pattern in self.writes:
            bucket.grant_put(grantee, pattern)


def _run(*names: str) -> tuple[str, ...]:
    return tuple(f"{RUN}{name}" for name in names)


# The training pipeline's functions, by handler module.
PIPELINE_ACCESS: Mapping[str, ArtifactAccess] = {
    # A manifest is written once (read first), a rejection writes its report.
    "validate": ArtifactAccess(
        reads=(f"{DATASET_VERSION}manifest.json",),
        writes=(f"{DATASET_VERSION}manifest.json", f"{DATASET_VERSION}report.json"),
    ),
    "list_parts": ArtifactAccess(
        reads=(f"{DATASET_VERSION}manifest.json",),
        writes=(
            f"{DATASET_VERSION}contract.json",
            f"{DATASET_VERSION}parts.json",
            f"{DATASET_VERSION}report.json",
        ),
    ),
    "validate_part": ArtifactAccess(
        reads=(f"{DATASET_VERSION}contract.json",),
        writes=(f"{DATASET_VERSION}parts/*",),
    ),
    "merge_parts": ArtifactAccess(
        reads=(f"{DATASET_VERSION}*",),
        writes=(f"{DATASET_VERSION}manifest.json", f"{DATASET_VERSION}report.json"),
    ),
    "prepare": ArtifactAccess(
        reads=(f"{DATASET_VERSION}manifest.json",),
        writes=_run("dataset.parquet", "model_config.yaml"),
    ),
    "train": ArtifactAccess(
        reads=_run("dataset.parquet", "model_config.yaml"),
        writes=_run("model.zip", "metrics.json", "evaluation.png"),
    ),
    # The champion's archive is a registered model.zip.
    "evaluate": ArtifactAccess(
        reads=(f"{RUN}*", f"{REGISTERED}model.zip"),
        writes=_run("metrics.json", "evaluation.png"),
    ),
    "gate": ArtifactAccess(
        reads=(f"{RUN}*",),
        writes=_run("model_card.md", "metrics.json"),
    ),
    # Copies the run's artifacts (CopyObject: read the source, put the copy).
    "register": ArtifactAccess(
        reads=(f"{RUN}*",),
        writes=tuple(
            f"{REGISTERED}{name}"
            for name in ("model.zip", "metrics.json", "evaluation.png", "model_card.md")
        ),
    ),
    "record_outcome": ArtifactAccess(),
    "collect_training": ArtifactAccess(reads=(f"{RUN}sagemaker/*",), writes=_run("model.zip")),
}

# The monitoring functions that touch the artifacts bucket, by handler module.
MONITORING_ACCESS: Mapping[str, ArtifactAccess] = {
    # Captures, the deployed archive and its training data in; reports and baselines out.
    "drift_monitor": ArtifactAccess(
        reads=(
            "captures/*",
            f"{REGISTERED}model.zip",
            f"{RUN}dataset.parquet",
            "monitoring/baselines/*",
        ),
        writes=("reports/drift/*", "monitoring/baselines/*"),
    ),
    "drift_notifier": ArtifactAccess(reads=("reports/*",)),
    "feedback": ArtifactAccess(
        reads=("captures/*", f"{REGISTERED}model.zip"),
        writes=("reports/feedback/*",),
    ),
}

# The state machine's Distributed Map: its item list in, its result files out.
STATE_MACHINE_ACCESS = ArtifactAccess(
    reads=(f"{DATASET_VERSION}parts.json",), writes=(f"{PART_RESULTS}*",)
)
