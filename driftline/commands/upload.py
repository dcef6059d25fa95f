"""`driftline upload FILE|FOLDER --dataset D [--contract C] [--model-config M] [--wait] [--json]`.

Puts a dataset where the pipeline starts from it (docs/datasets.md):

- a file goes to `datasets/<D>/<file>`; its S3 VersionId is the dataset version and names the
  run `<D>-<VersionId>` (`pipelines.uploads.execution_name`, as StartRun names it);
- a folder is a multi-part batch: each part (names starting with `_` or `.` are not parts,
  as for ListParts) goes to `datasets/<D>/<batch>/<path>`, then the `_COMPLETE` marker, whose
  VersionId names the version and the run. A batch prefix is write-once, so an existing one is
  refused.

Files go through boto3's managed transfer (multipart above 16 MiB, progress on a terminal).
`--contract` and `--model-config` are checked offline with the pipeline's own code first and
uploaded before the data, to `contracts/<D>.yaml` and `models/<D>.yaml` in the datasets bucket,
where Validate and Prepare look for overrides. `--wait` then follows the run like `runs wait`
and exits as it does.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from driftline import executions
from driftline.aws import client, require_output, stack_outputs
from driftline.checks import (
    CheckedModelConfig,
    check_contract,
    check_model_config,
    parse_contract_text,
)
from driftline.commands.runs import add_timeout
from driftline.envs import add_env_argument
from driftline.errors import UsageError
from driftline.output import console, print_json, print_table
from driftline.run_follow import follow, state_machine_arn, summary_line, verdict_exit
from pipelines.batches import is_part
from pipelines.keys import batch_prefix, contract_key, model_config_key, upload_key
from pipelines.uploads import BATCH_MARKERS, SUPPORTED_SUFFIXES, execution_name, is_name

MiB = 1024 * 1024
TRANSFER = TransferConfig(multipart_threshold=16 * MiB, multipart_chunksize=16 * MiB)
# Object metadata that tells this upload's version apart from a concurrent one's.
UPLOAD_MARKER_KEY = "driftline-upload"
START_SECONDS = 30.0  # how long to look for the run an upload started, without --wait
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "upload",
        help="upload a dataset file or a folder of parts and start its run",
        description="Exit 0 uploaded (with --wait: deployed), 1 a negative verdict of the run, "
        "2 unusable input or a failed run.",
    )
    parser.add_argument(
        "path",
        type=Path,
        metavar="FILE",
        help="a .csv, .csv.gz or .parquet file, or a folder of part files (a multi-part batch)",
    )
    parser.add_argument("--dataset", required=True, help="dataset name: datasets/<DATASET>/")
    parser.add_argument("--batch", help="batch name for a folder (default: a UTC timestamp)")
    parser.add_argument("--contract", type=Path, help="upload this contract first (checked)")
    parser.add_argument(
        "--model-config", type=Path, help="upload this model config first (checked)"
    )
    parser.add_argument("--wait", action="store_true", help="follow the run like `runs wait`")
    add_timeout(parser)
    add_env_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class Plan:
    """What goes where: (local file, key) pairs, and the marker key of a batch."""

    files: list[tuple[Path, str]]
    marker: str | None


def plan(path: Path, dataset: str, batch: str | None) -> Plan:
    if not is_name(dataset):
        raise UsageError(f"dataset name {dataset!r} is not [A-Za-z0-9_.-], max 64 chars")
    if path.is_dir():
        name = batch or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        if not is_name(name):
            raise UsageError(f"batch name {name!r} is not [A-Za-z0-9_.-], max 64 chars")
        prefix = batch_prefix(dataset, name)
        files = [
            (file, prefix + file.relative_to(path).as_posix())
            for file in sorted(path.rglob("*"))
            if file.is_file()
        ]
        parts = [(file, key) for file, key in files if is_part(key, prefix)]
        if not parts:
            raise UsageError(
                f"{path}: no part files ({', '.join(SUPPORTED_SUFFIXES)}, names not starting "
                "with '_' or '.')"
            )
        return Plan(parts, prefix + BATCH_MARKERS[0])
    if batch is not None:
        raise UsageError("--batch applies to a folder of parts, not to one file")
    if not path.is_file():
        raise UsageError(f"{path}: no such file or folder")
    if not path.name.lower().endswith(SUPPORTED_SUFFIXES):
        raise UsageError(
            f"{path}: not one of {', '.join(SUPPORTED_SUFFIXES)} (the pipeline would ignore it)"
        )
    file_name = _UNSAFE_FILE_CHARS.sub("_", path.name)
    return Plan([(path, upload_key(dataset, file_name))], None)


class _Progress:
    """Bytes sent as a progress bar on a terminal's stderr (rich; boto3 calls it from threads,
    and rich's progress is thread-safe)."""

    def __init__(self, label: str, total: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(
            TextColumn("upload {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console(stderr=True),
        )
        self.task = self.bar.add_task(label, total=max(total, 1))
        self.bar.start()

    def __call__(self, sent: int) -> None:
        self.bar.update(self.task, advance=sent)

    def done(self) -> None:
        self.bar.stop()


def upload_file(s3: Any, bucket: str, path: Path, key: str) -> str:
    """Managed (multipart-aware) upload; the VersionId this upload created."""
    token = uuid.uuid4().hex
    size = path.stat().st_size
    progress = _Progress(key, size) if size >= TRANSFER.multipart_threshold else None
    if progress is not None and not sys.stderr.isatty():
        progress = None
    try:
        s3.upload_file(
            str(path),
            bucket,
            key,
            ExtraArgs={"Metadata": {UPLOAD_MARKER_KEY: token}},
            Config=TRANSFER,
            Callback=progress,
        )
    finally:
        if progress is not None:
            progress.done()
    return _version_with_token(s3, bucket, key, token)


def _version_with_token(s3: Any, bucket: str, key: str, token: str) -> str:
    """The managed transfer does not return the VersionId: find the version carrying `token`.

    Usually the current version; a concurrent upload to the same key may have superseded it.
    """
    head = s3.head_object(Bucket=bucket, Key=key)
    if head.get("Metadata", {}).get(UPLOAD_MARKER_KEY) == token and head.get("VersionId"):
        return str(head["VersionId"])
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key, MaxKeys=50)
    for version in listing.get("Versions", []):
        if version["Key"] != key:
            continue
        head = s3.head_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
        if head.get("Metadata", {}).get(UPLOAD_MARKER_KEY) == token:
            return str(version["VersionId"])
    raise UsageError(
        f"uploaded s3://{bucket}/{key} but cannot find its VersionId (is the bucket versioned?)"
    )


def _put_text(s3: Any, bucket: str, key: str, text: str) -> str:
    response = s3.put_object(
        Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType="application/yaml"
    )
    version = response.get("VersionId")
    if not version:
        raise UsageError(f"s3://{bucket}/{key} has no VersionId (is the bucket versioned?)")
    return str(version)


def _bucket_text(s3: Any, bucket: str, key: str) -> str | None:
    try:
        return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8"))
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise


def contract_columns(
    s3: Any, bucket: str, dataset: str
) -> tuple[dict[str, str] | None, str | None]:
    """The columns Prepare will see when no contract is uploaded now, and where they are from:
    the bucket's override, else the contract in this checkout's contracts/ (what a deployment
    ships)."""
    key = contract_key(dataset)
    text = _bucket_text(s3, bucket, key)
    if text is not None:
        source = f"s3://{bucket}/{key}"
        return parse_contract_text(text, source).column_types(), source
    try:
        from driftline.twin.synth import project_root

        packaged = project_root() / "contracts" / f"{dataset}.yaml"
    except UsageError:
        return None, None
    if packaged.is_file():
        return check_contract(packaged, dataset).column_types(), contract_key(dataset)
    return None, None


def _started(stepfunctions: Any, arn: str, timeout: float) -> str:
    """The run's status once it exists, or "not started" after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        description = executions.describe(stepfunctions, arn)
        if description is not None:
            return str(description["status"])
        if time.monotonic() >= deadline:
            return "not started"
        time.sleep(0.5)


def run(args: argparse.Namespace) -> int:
    dataset: str = args.dataset
    layout = plan(args.path, dataset, args.batch)
    contract = check_contract(args.contract, dataset) if args.contract is not None else None
    config: CheckedModelConfig | None = None
    if args.model_config is not None:
        columns = contract.column_types() if contract is not None else None
        config = check_model_config(args.model_config, columns)

    outputs = stack_outputs(args.env)
    bucket = require_output(outputs, "DatasetsBucketName", args.env)
    machine = state_machine_arn(args.env, outputs)
    s3 = client("s3")
    if config is not None and config.features is None:
        columns, _ = contract_columns(s3, bucket, dataset)
        if columns is not None:
            config = check_model_config(args.model_config, columns)
    if layout.marker is not None:
        prefix = layout.marker.rsplit("/", 1)[0] + "/"
        if s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0):
            raise UsageError(
                f"s3://{bucket}/{prefix} already holds a batch (batches are write-once): "
                "choose another --batch"
            )

    document: dict[str, Any] = {"dataset": dataset, "bucket": bucket}
    if contract is not None:
        from pipelines.contracts import contract_hash

        key = contract_key(dataset)
        assert args.contract is not None
        document["contract"] = {
            "key": key,
            "version_id": _put_text(s3, bucket, key, args.contract.read_text(encoding="utf-8")),
            "columns": len(contract.columns),
            "hash": contract_hash(contract),
        }
    if config is not None:
        key = model_config_key(dataset)
        document["model_config"] = {
            "key": key,
            "version_id": _put_text(s3, bucket, key, config.text),
            "task": config.config.task,
            "target": config.config.target,
            "estimator": config.config.estimator_path,
            "features_checked": config.features is not None,
        }
    uploaded = [
        {"key": key, "version_id": upload_file(s3, bucket, path, key), "size": path.stat().st_size}
        for path, key in layout.files
    ]
    if layout.marker is not None:
        document["parts"] = uploaded
        marker_version = s3.put_object(Bucket=bucket, Key=layout.marker, Body=b"").get("VersionId")
        if not marker_version:
            raise UsageError(f"s3://{bucket}/{layout.marker} has no VersionId")
        document |= {"key": layout.marker, "version_id": str(marker_version)}
    else:
        document |= {"key": uploaded[0]["key"], "version_id": uploaded[0]["version_id"]}
    name = execution_name(dataset, document["version_id"])
    arn = executions.execution_arn(machine, name)
    document |= {"run": name, "execution_arn": arn}

    if not args.wait:
        document["run_status"] = _started(client("stepfunctions"), arn, START_SECONDS)
        if args.json:
            print_json(document)
        else:
            print_table(upload_rows(document))
        return 0
    if not args.json:
        print_table(upload_rows(document))
        print(flush=True)
    outcome = follow(
        arn, timeout=args.timeout, as_json=args.json, outputs=outputs, appear_within=START_SECONDS
    )
    document["run_status"] = outcome["status"]
    if args.json:
        print_json({**document, "outcome": outcome})
    else:
        print(summary_line(outcome))
    return verdict_exit(outcome)


def upload_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    bucket = document["bucket"]
    rows: list[dict[str, Any]] = []
    if "contract" in document:
        contract = document["contract"]
        rows.append(
            {
                "what": "contract",
                "object": f"s3://{bucket}/{contract['key']}",
                "version": contract["version_id"],
                "detail": f"{contract['columns']} columns, hash {contract['hash'][:12]}",
            }
        )
    if "model_config" in document:
        config = document["model_config"]
        rows.append(
            {
                "what": "model config",
                "object": f"s3://{bucket}/{config['key']}",
                "version": config["version_id"],
                "detail": f"{config['task']}, target {config['target']!r}, "
                f"{config['estimator'].rsplit('.', 1)[-1]}",
            }
        )
    parts = document.get("parts") or []
    if parts:
        size = sum(int(part["size"]) for part in parts)
        prefix = str(document["key"]).rsplit("/", 1)[0] + "/"
        rows.append(
            {
                "what": "parts",
                "object": f"s3://{bucket}/{prefix}",
                "version": None,
                "detail": f"{len(parts)} files, {size / MiB:.1f} MiB",
            }
        )
    rows.append(
        {
            "what": "marker" if parts else "dataset",
            "object": f"s3://{bucket}/{document['key']}",
            "version": document["version_id"],
            "detail": None,
        }
    )
    rows.append(
        {
            "what": "run",
            "object": document["run"],
            "version": None,
            "detail": document.get("run_status"),
        }
    )
    return rows
