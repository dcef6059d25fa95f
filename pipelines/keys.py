"""Every S3 key and prefix Driftline reads or writes: the one place the bucket layout is spelled.

Handlers build keys with the functions below, constructs grant and match the globs below (in
IAM and EventBridge globs `*` also matches `/`), the CLI finds objects with them.
`tests/infra/test_least_privilege.py` checks every key a function writes against the grants in
its synthesized role policy. Pure strings: no boto3, no CDK, no heavy imports.

Datasets bucket (uploads, versioned):
  datasets/<dataset>/<file>                 an upload (a folder <batch>/ holds a multi-part one)
  contracts/<dataset>.yaml                  an uploaded data contract (beside the packaged ones)
  models/<dataset>.yaml                     an uploaded model config (overrides the packaged one)
  feedback/<model>/<file>                   ground-truth labels for the model's predictions
Artifacts bucket:
  datasets/<dataset>/<version_id>/          manifest.json, report.json, contract.json,
                                            parts.json, parts/<index>.json (validation)
  runs/<run_id>/                            dataset.parquet, model_config.yaml, model.zip,
                                            metrics.json, evaluation.png, model_card.md,
                                            sagemaker/ (a SageMaker training job's output)
  models/<model>/v<N>/                      the registered copies; serving/<sha256>.pkl (the
                                            deploy step's bundles)
  models/<model>/live/                      a SageMaker serverless endpoint's model data
  captures/<model>/date=<d>/hour=<h>/       inference traffic, <request_id>.jsonl
  reports/drift/<model>/                    <stamp>.json, <stamp>.html, latest.json
  reports/feedback/<model>/                 <stamp>.json
  monitoring/baselines/<model>/             v<N>.parquet, v<N>.json
  part-results/                             the Distributed Map's ResultWriter output
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# --------------------------------------------------------------------------- datasets bucket

DATASETS_PREFIX = "datasets/"
CONTRACTS_PREFIX = "contracts/"
MODEL_CONFIGS_PREFIX = "models/"
FEEDBACK_PREFIX = "feedback/"


def upload_key(dataset: str, file_name: str) -> str:
    """Where an upload of `dataset` goes (the datasets bucket starts a run on it)."""
    return f"{DATASETS_PREFIX}{dataset}/{file_name}"


def batch_prefix(dataset: str, batch: str) -> str:
    """The folder of a multi-part upload: its parts, then a _COMPLETE/_SUCCESS marker."""
    return f"{DATASETS_PREFIX}{dataset}/{batch}/"


def contract_key(dataset: str) -> str:
    return f"{CONTRACTS_PREFIX}{dataset}.yaml"


def model_config_key(dataset: str) -> str:
    return f"{MODEL_CONFIGS_PREFIX}{dataset}.yaml"


# --------------------------------------------------------------------------- validation records

MANIFEST = "manifest.json"
REPORT = "report.json"
PINNED_CONTRACT = "contract.json"
PARTS_LIST = "parts.json"
PART_REPORTS = "parts/"


def dataset_prefix(dataset: str, version_id: str) -> str:
    """Manifest and rejection report live side by side under this prefix (artifacts bucket)."""
    return f"{DATASETS_PREFIX}{dataset}/{version_id}/"


def manifest_key(dataset: str, version_id: str) -> str:
    return f"{dataset_prefix(dataset, version_id)}{MANIFEST}"


def report_key(dataset: str, version_id: str) -> str:
    return f"{dataset_prefix(dataset, version_id)}{REPORT}"


def parts_list_key(dataset: str, version_id: str) -> str:
    """The item list the Distributed Map reads (artifacts bucket, beside the manifest)."""
    return f"{dataset_prefix(dataset, version_id)}{PARTS_LIST}"


def pinned_contract_key(dataset: str, version_id: str) -> str:
    """The contract every part of this batch is validated against, resolved once (JSON)."""
    return f"{dataset_prefix(dataset, version_id)}{PINNED_CONTRACT}"


def part_report_key(dataset: str, version_id: str, index: int) -> str:
    return f"{dataset_prefix(dataset, version_id)}{PART_REPORTS}{index:06d}.json"


PART_RESULTS_PREFIX = "part-results/"  # the Distributed Map's ResultWriter prefix

# --------------------------------------------------------------------------- runs and models

RUNS_PREFIX = "runs/"
MODELS_PREFIX = "models/"  # artifacts bucket: registered models (datasets bucket: configs)

DATASET = "dataset.parquet"
CONFIG = "model_config.yaml"
MODEL = "model.zip"
METRICS = "metrics.json"
PLOT = "evaluation.png"
CARD = "model_card.md"
REGISTERED = (MODEL, METRICS, PLOT, CARD)
SAGEMAKER_OUTPUT = "sagemaker/"  # under a run: a SageMaker training job's output


def run_artifact(run_id: str, name: str) -> str:
    return f"{RUNS_PREFIX}{run_id}/{name}"


def model_artifact(model: str, version: int, name: str) -> str:
    return f"{MODELS_PREFIX}{model}/v{version}/{name}"


def bundle_key(model: str, version: int, digest: str) -> str:
    """A serving bundle the deploy step builds from the registered archive (by its sha256)."""
    return model_artifact(model, version, f"serving/{digest}.pkl")


def live_prefix(model: str) -> str:
    """A SageMaker serverless endpoint's model data."""
    return f"{MODELS_PREFIX}{model}/live/"


# --------------------------------------------------------------------------- monitoring

CAPTURE_PREFIX = "captures/"
REPORTS_PREFIX = "reports/"
DRIFT_REPORT_PREFIX = f"{REPORTS_PREFIX}drift/"
FEEDBACK_REPORT_PREFIX = f"{REPORTS_PREFIX}feedback/"
BASELINE_PREFIX = "monitoring/baselines/"
LATEST_REPORT = "latest.json"

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def capture_key(model: str, at: datetime, request_id: str) -> str:
    """One captured request (`at` in UTC): partitioned by date and hour for the monitor."""
    return f"{CAPTURE_PREFIX}{model}/date={at:%Y-%m-%d}/hour={at:%H}/{request_id}.jsonl"


def model_of_capture_key(key: str) -> str | None:
    """`captures/<model>/...jsonl` → model, or None for a key outside that layout."""
    parts = key.split("/")
    if len(parts) < 3 or f"{parts[0]}/" != CAPTURE_PREFIX or not key.endswith(".jsonl"):
        return None
    return parts[1] if _MODEL_NAME.match(parts[1]) else None


def capture_hour_prefixes(model: str, start: datetime, end: datetime) -> list[str]:
    """The `captures/<model>/date=/hour=/` prefixes whose hour overlaps [start, end]."""
    first = _utc(start).replace(minute=0, second=0, microsecond=0)
    last = _utc(end)
    prefixes = []
    hour = first
    while hour <= last:
        prefixes.append(f"{CAPTURE_PREFIX}{model}/date={hour:%Y-%m-%d}/hour={hour:%H}/")
        hour += timedelta(hours=1)
    return prefixes


def capture_day_prefixes(model: str, end: datetime, days: int) -> list[str]:
    """The `captures/<model>/date=/` prefixes of the `days` days up to and including `end`."""
    last = _utc(end).date()
    return [
        f"{CAPTURE_PREFIX}{model}/date={last - timedelta(days=offset):%Y-%m-%d}/"
        for offset in range(days)
    ]


def request_id_of_capture_key(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".jsonl")


def model_of_feedback_key(key: str) -> str | None:
    """`feedback/<model>/<file>` → model, or None for a key outside that layout."""
    parts = key.split("/")
    if len(parts) < 3 or f"{parts[0]}/" != FEEDBACK_PREFIX or "" in parts or ".." in parts:
        return None
    return parts[1] if _MODEL_NAME.match(parts[1]) else None


def report_stamp(moment: datetime) -> str:
    """`20250102T030405.678Z`: sortable, unique per millisecond, no ':' in an S3 key."""
    moment = _utc(moment)
    return f"{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z"


def drift_report_keys(model: str, moment: datetime) -> tuple[str, str]:
    stem = f"{DRIFT_REPORT_PREFIX}{model}/{report_stamp(moment)}"
    return f"{stem}.json", f"{stem}.html"


def latest_report_key(model: str) -> str:
    return f"{DRIFT_REPORT_PREFIX}{model}/{LATEST_REPORT}"


def feedback_report_key(model: str, moment: datetime) -> str:
    return f"{FEEDBACK_REPORT_PREFIX}{model}/{report_stamp(moment)}.json"


def baseline_key(model: str, version: int) -> str:
    return f"{BASELINE_PREFIX}{model}/v{version}.parquet"


def baseline_description_key(model: str, version: int) -> str:
    return baseline_key(model, version).removesuffix(".parquet") + ".json"


# --------------------------------------------------------------------------- grant globs
# Key globs the constructs grant (IAM's `*` also matches `/`), spelled with the prefixes above.

DATASET_VERSION_GLOB = f"{DATASETS_PREFIX}*/"  # dataset_prefix(<dataset>, <version_id>)
RUN_GLOB = f"{RUNS_PREFIX}*/"  # run_artifact(<run_id>, ...)
REGISTERED_GLOB = f"{MODELS_PREFIX}*/v*/"  # model_artifact(<model>, <version>, ...)
SERVING_GLOB = f"{MODELS_PREFIX}*/serving/*"  # bundle_key(...)
