"""Which keys of the artifacts bucket each function reads and writes: those only, no deletes.

The artifacts bucket holds every step's output, so a grant on the whole bucket would let any
step overwrite (or, with CDK's `grant_read_write`, delete every version of) another step's
record: a registered model, a manifest, a capture. Each function gets `s3:GetObject*` on the
keys it reads and `s3:PutObject` (CDK's `grant_put`: no delete, no ACL) on the keys it
writes, as the key helpers build them (`pipelines/keys.py`, which also shows the bucket's
layout); `tests/infra/test_least_privilege.py` checks every write a handler makes against
these globs. In IAM globs `*` also matches `/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from pipelines.keys import (
    BASELINE_PREFIX,
    CAPTURE_PREFIX,
    CARD,
    CONFIG,
    DATASET,
    DRIFT_REPORT_PREFIX,
    FEEDBACK_REPORT_PREFIX,
    MANIFEST,
    METRICS,
    MODEL,
    PART_REPORTS,
    PART_RESULTS_PREFIX,
    PARTS_LIST,
    PINNED_CONTRACT,
    PLOT,
    REPORT,
    REPORTS_PREFIX,
    SAGEMAKER_OUTPUT,
)
from pipelines.keys import DATASET_VERSION_GLOB as DATASET_VERSION
from pipelines.keys import REGISTERED as REGISTERED_FILES
from pipelines.keys import REGISTERED_GLOB as REGISTERED
from pipelines.keys import RUN_GLOB as RUN


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
        reads=(f"{DATASET_VERSION}{MANIFEST}",),
        writes=(f"{DATASET_VERSION}{MANIFEST}", f"{DATASET_VERSION}{REPORT}"),
    ),
    "list_parts": ArtifactAccess(
        reads=(f"{DATASET_VERSION}{MANIFEST}",),
        writes=(
            f"{DATASET_VERSION}{PINNED_CONTRACT}",
            f"{DATASET_VERSION}{PARTS_LIST}",
            f"{DATASET_VERSION}{REPORT}",
        ),
    ),
    "validate_part": ArtifactAccess(
        reads=(f"{DATASET_VERSION}{PINNED_CONTRACT}",),
        writes=(f"{DATASET_VERSION}{PART_REPORTS}*",),
    ),
    "merge_parts": ArtifactAccess(
        reads=(f"{DATASET_VERSION}*",),
        writes=(f"{DATASET_VERSION}{MANIFEST}", f"{DATASET_VERSION}{REPORT}"),
    ),
    "prepare": ArtifactAccess(
        reads=(f"{DATASET_VERSION}{MANIFEST}",),
        writes=_run(DATASET, CONFIG),
    ),
    "train": ArtifactAccess(
        reads=_run(DATASET, CONFIG),
        writes=_run(MODEL, METRICS, PLOT),
    ),
    # The champion's archive is a registered model.zip.
    "evaluate": ArtifactAccess(
        reads=(f"{RUN}*", f"{REGISTERED}{MODEL}"),
        writes=_run(METRICS, PLOT),
    ),
    "gate": ArtifactAccess(
        reads=(f"{RUN}*",),
        writes=_run(CARD, METRICS),
    ),
    # Copies the run's artifacts (CopyObject: read the source, put the copy).
    "register": ArtifactAccess(
        reads=(f"{RUN}*",),
        writes=tuple(f"{REGISTERED}{name}" for name in REGISTERED_FILES),
    ),
    "record_outcome": ArtifactAccess(),
    "collect_training": ArtifactAccess(reads=(f"{RUN}{SAGEMAKER_OUTPUT}*",), writes=_run(MODEL)),
}

# The monitoring functions that touch the artifacts bucket, by handler module.
MONITORING_ACCESS: Mapping[str, ArtifactAccess] = {
    # Captures, the deployed archive and its training data in; reports and baselines out.
    "drift_monitor": ArtifactAccess(
        reads=(
            f"{CAPTURE_PREFIX}*",
            f"{REGISTERED}{MODEL}",
            f"{RUN}{DATASET}",
            f"{BASELINE_PREFIX}*",
        ),
        writes=(f"{DRIFT_REPORT_PREFIX}*", f"{BASELINE_PREFIX}*"),
    ),
    "drift_notifier": ArtifactAccess(reads=(f"{REPORTS_PREFIX}*",)),
    "feedback": ArtifactAccess(
        reads=(f"{CAPTURE_PREFIX}*", f"{REGISTERED}{MODEL}"),
        writes=(f"{FEEDBACK_REPORT_PREFIX}*",),
    ),
}

# The state machine's Distributed Map: its item list in, its result files out.
STATE_MACHINE_ACCESS = ArtifactAccess(
    reads=(f"{DATASET_VERSION}{PARTS_LIST}",), writes=(f"{PART_RESULTS_PREFIX}*",)
)
