"""The multi-part steps against moto in-process, driven the way the state machine drives them.

ListParts puts its result at `$.validation`; the Distributed Map runs ValidatePart once per
item of the list ListParts wrote (with the item selector's fields) and discards the results;
MergeParts replaces `$.validation` with the verdict that Prepare and the Choice read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.list_parts import handler as list_parts
from functions.merge_parts import handler as merge_parts
from functions.prepare import handler as prepare
from functions.shared.datasets import DatasetRegistry
from functions.shared.errors import PipelineInputError
from functions.validate_part import handler as validate_part
from pipelines.keys import manifest_key
from tests.unit.conftest import (
    LAMBDA_CONTEXT,
    buckets,
    emptied,
    moto_account,
    pipeline_variables,
    registry_tables,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DATASETS, ARTIFACTS = "driftline-datasets", "driftline-artifacts"
TABLES = {"datasets": "driftline-datasets-tbl", "runs": "driftline-runs"}
DATASET = "breast_cancer"
PREFIX = f"datasets/{DATASET}/2026-11-03/"
EXAMPLE = (REPO / "examples" / "breast_cancer.csv").read_text()


ENVIRONMENT = pipeline_variables(
    datasets=DATASETS,
    artifacts=ARTIFACTS,
    datasets_table=TABLES["datasets"],
    runs_table=TABLES["runs"],
)


@pytest.fixture(scope="module")
def account() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch, moto_account(patch, ENVIRONMENT):
        buckets(DATASETS, ARTIFACTS)
        registry_tables(*TABLES.values())
        yield


@pytest.fixture(autouse=True)
def empty(account: None) -> Iterator[None]:
    yield
    emptied((DATASETS, ARTIFACTS), tuple(TABLES.values()))


def split(text: str, pieces: int) -> list[bytes]:
    header, *rows = text.splitlines()
    size = math.ceil(len(rows) / pieces)
    return [
        ("\n".join([header, *rows[i * size : (i + 1) * size]]) + "\n").encode()
        for i in range(pieces)
    ]


def put(key: str, body: bytes) -> str:
    return str(boto3.client("s3").put_object(Bucket=DATASETS, Key=key, Body=body)["VersionId"])


def upload_batch(parts: list[bytes], *, dataset: str = DATASET) -> dict[str, Any]:
    """Upload the parts, then the marker; returns the execution input start_run builds."""
    prefix = PREFIX.replace(DATASET, dataset)
    for index, body in enumerate(parts):
        put(f"{prefix}part-{index:05d}.csv", body)
    key = f"{prefix}_COMPLETE"
    return {
        "dataset": dataset,
        "bucket": DATASETS,
        "key": key,
        "version_id": put(key, b""),
        "prefix": prefix,
        "trigger": "upload",
        "requested_at": "2026-11-03T10:00:00Z",
        "run": {"id": "run-batch", "execution_arn": "", "started_at": "2026-11-03T10:00:01Z"},
    }


def roundtrip(result: Any) -> Any:
    return json.loads(json.dumps(result))


def execute(state: dict[str, Any]) -> dict[str, Any]:
    """ListParts → Distributed Map of ValidatePart → MergeParts, like the state machine."""
    state = dict(state)
    state["validation"] = roundtrip(list_parts.handler(state, LAMBDA_CONTEXT))
    if state["validation"]["status"] != "listed":
        return state
    listed = state["validation"]
    items = artifact(listed["parts_key"])
    state["part_results"] = [
        roundtrip(
            validate_part.handler(
                {
                    "dataset": state["dataset"],
                    "bucket": state["bucket"],
                    "version_id": state["version_id"],
                    "contract_key": listed["contract_key"],
                    "contract_source": listed["contract_source"],
                    "part": item,
                },
                LAMBDA_CONTEXT,
            )
        )
        for item in items
    ]
    state["validation"] = roundtrip(merge_parts.handler(merge_state(state, listed), LAMBDA_CONTEXT))
    state["listed"] = listed
    return state


def merge_state(state: dict[str, Any], listed: dict[str, Any]) -> dict[str, Any]:
    """The state MergeParts sees: the map discards its results, `$.validation` is the list."""
    merged = {k: v for k, v in state.items() if k not in ("part_results", "listed")}
    return {**merged, "validation": listed}


def artifact(key: str) -> Any:
    return json.loads(boto3.client("s3").get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())


def tags(key: str, version_id: str) -> dict[str, str]:
    tag_set = boto3.client("s3").get_object_tagging(Bucket=DATASETS, Key=key, VersionId=version_id)
    return {tag["Key"]: tag["Value"] for tag in tag_set["TagSet"]}


def test_a_batch_is_validated_part_by_part_into_one_manifest_listing_every_part() -> None:
    parts = split(EXAMPLE, 3)
    state = upload_batch(parts)

    state = execute(state)

    validation = state["validation"]
    assert validation["status"] == "accepted", validation.get("cause")
    assert (validation["key"], validation["version_id"]) == (PREFIX, state["version_id"])
    assert validation["parts"] == 3
    assert [result["rows"] for result in state["part_results"]] == [190, 190, 189]
    manifest = artifact(validation["manifest_key"])
    assert manifest["rows"] == manifest["profile"]["rows"] == 569
    listed = {part["key"]: part for part in manifest["parts"]}
    for index, body in enumerate(parts):
        part = listed[f"{PREFIX}part-{index:05d}.csv"]
        assert part["sha256"] == hashlib.sha256(body).hexdigest()
        head = boto3.client("s3").head_object(
            Bucket=DATASETS, Key=part["key"], VersionId=part["version_id"]
        )
        assert head["ContentLength"] == len(body)
    (item,) = DatasetRegistry(boto3.client("dynamodb"), TABLES["datasets"]).versions(DATASET)
    assert item["manifest_sha256"] == validation["manifest_sha256"]


def test_prepare_trains_on_the_parts_the_manifest_lists() -> None:
    state = execute(upload_batch(split(EXAMPLE, 3)))
    put(f"{PREFIX}part-00003.csv", split(EXAMPLE, 3)[0])  # arrives after the run started

    prepared = prepare.handler(state, LAMBDA_CONTEXT)

    assert prepared["rows"] == 569


def test_a_retried_merge_writes_no_second_manifest_or_item() -> None:
    state = execute(upload_batch(split(EXAMPLE, 2)))
    first = state["validation"]

    second = roundtrip(merge_parts.handler(merge_state(state, state["listed"]), LAMBDA_CONTEXT))

    assert second == first
    versions = boto3.client("s3").list_object_versions(
        Bucket=ARTIFACTS, Prefix=manifest_key(DATASET, state["version_id"])
    )
    assert len(versions["Versions"]) == 1
    registry = DatasetRegistry(boto3.client("dynamodb"), TABLES["datasets"])
    assert len(list(registry.versions(DATASET))) == 1


def test_a_retrain_from_the_registry_revalidates_exactly_the_accepted_parts() -> None:
    first = execute(upload_batch(split(EXAMPLE, 3)))
    put(f"{PREFIX}part-00003.csv", split(EXAMPLE, 3)[0])  # a later, unrelated upload
    (item,) = DatasetRegistry(boto3.client("dynamodb"), TABLES["datasets"]).versions(DATASET)
    retrain = {  # what the retrain function starts a run with: the registry item's key
        "dataset": DATASET,
        "bucket": DATASETS,
        "key": item["key"],
        "version_id": item["version_id"],
        "trigger": "drift",
        "run": first["run"],
    }

    again = execute(retrain)

    assert item["key"] == PREFIX
    assert again["listed"]["parts"] == 3
    assert again["listed"]["marker_key"] == f"{PREFIX}_COMPLETE"
    assert again["validation"] == first["validation"]


def test_one_bad_part_quarantines_the_whole_batch_and_names_the_part() -> None:
    parts = split(EXAMPLE, 3)
    lines = parts[2].decode().splitlines()
    lines[1] = "not-a-number," + lines[1].split(",", 1)[1]
    parts[2] = ("\n".join(lines) + "\n").encode()
    state = upload_batch(parts)

    state = execute(state)

    validation = state["validation"]
    assert validation["status"] == "rejected"
    assert f"{PREFIX}part-00002.csv" in validation["cause"]
    assert f"s3://{ARTIFACTS}/{validation['report_key']}" in validation["cause"]
    report = artifact(validation["report_key"])
    assert [v["part"] for v in report["violations"]] == [f"{PREFIX}part-00002.csv"]
    listing = boto3.client("s3").list_object_versions(Bucket=DATASETS, Prefix=PREFIX)
    for version in listing["Versions"]:
        assert tags(version["Key"], version["VersionId"])["driftline:quarantined"] == "true"
    assert not list(DatasetRegistry(boto3.client("dynamodb"), TABLES["datasets"]).versions(DATASET))


def test_a_marker_without_parts_is_rejected_before_any_part_is_read() -> None:
    state = execute(upload_batch([]))

    validation = state["validation"]
    assert validation["status"] == "rejected"
    assert "no part files" in validation["cause"]
    assert tags(state["key"], state["version_id"])["driftline:quarantined"] == "true"


def test_a_batch_without_a_contract_is_held_naming_the_expected_contract_path() -> None:
    state = upload_batch(split(EXAMPLE, 2), dataset="no_contract")

    validation = execute(state)["validation"]

    assert validation["status"] == "rejected"
    assert "contracts/no_contract.yaml" in validation["cause"]
    assert tags(state["key"], state["version_id"])["driftline:quarantined"] == "true"


@pytest.mark.parametrize(
    ("prefix", "key"),
    [
        ("datasets/other/2026/", "datasets/other/2026/_COMPLETE"),
        ("datasets/breast_cancer/../x/", "datasets/breast_cancer/../x/_COMPLETE"),
        (PREFIX, f"{PREFIX}part-00000.csv"),
    ],
)
def test_a_batch_state_that_is_not_a_marker_under_its_dataset_is_ignored(
    prefix: str, key: str
) -> None:
    state = {
        "dataset": DATASET,
        "bucket": DATASETS,
        "key": key,
        "version_id": "v",
        "prefix": prefix,
    }

    assert list_parts.handler(state, LAMBDA_CONTEXT) == {"status": "ignored", "key": key}


def test_a_part_outside_its_dataset_is_refused_as_bad_state() -> None:
    event = {
        "dataset": DATASET,
        "bucket": DATASETS,
        "version_id": "v",
        "contract_key": "x",
        "contract_source": "y",
        "part": {"index": 0, "key": "datasets/other/part.csv", "version_id": "p"},
    }

    with pytest.raises(PipelineInputError, match=r"datasets/other/part\.csv"):
        validate_part.handler(event, LAMBDA_CONTEXT)


def test_a_parquet_part_too_large_for_tmp_is_rejected_by_its_listed_size_unread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ListParts records each part's size; ValidatePart checks it before reading a byte."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from pipelines.validation import Limits, validate

    def parquet(body: bytes) -> bytes:
        sink = io.BytesIO()
        pq.write_table(pacsv.read_csv(pa.py_buffer(body)), sink)
        return sink.getvalue()

    small, large = parquet(split(EXAMPLE, 2)[0]), parquet(EXAMPLE.encode())
    limit = (len(small) + len(large)) // 2
    monkeypatch.setattr(
        validate_part,
        "validate",
        lambda *args, **kwargs: validate(*args, limits=Limits(max_parquet_bytes=limit), **kwargs),
    )
    put(f"{PREFIX}part-00000.parquet", small)
    put(f"{PREFIX}part-00001.parquet", large)
    state = execute(upload_batch([]))  # the marker, after both parts

    validation = state["validation"]
    assert validation["status"] == "rejected"
    assert f"{PREFIX}part-00001.parquet" in validation["cause"]
    report = artifact(state["part_results"][1]["report_key"])
    assert [v["rule"] for v in report["violations"]] == ["too_large"]
    assert report["size"] == 0  # rejected by the listed size, never read
    assert state["part_results"][0]["valid"] is True
