"""The validate Lambda against moto in-process: accept with one manifest, or quarantine.

Each test uploads bytes to a versioned datasets bucket and invokes the handler with the state
the state machine passes it (the execution input: dataset, bucket, key, VersionId), with the
environment the CDK construct sets. The full catalogue of bad inputs is pinned at the
validator level (tests/unit/test_validation.py); here a representative subset goes through
the Lambda path, plus everything only the Lambda does: contract resolution and overrides,
schema evolution against the last accepted version, quarantine and retries.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from functions.shared.datasets import DatasetRegistry
from functions.validate import handler as validate_handler
from pipelines.keys import dataset_prefix, manifest_key, report_key
from pipelines.validation import Limits, validate
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
DATASETS, ARTIFACTS, TABLE = "driftline-datasets", "driftline-artifacts", "driftline-datasets-tbl"
EXAMPLE = (REPO / "examples" / "breast_cancer.csv").read_bytes()

ORDERS_CONTRACT = """
dataset: orders
target: label
columns:
  id: {type: int, unique: true}
  amount: {type: float, min: 0}
  city: {type: string}
  day: {type: datetime, format: '%Y-%m-%d'}
  label: {type: int, allowed: [0, 1]}
"""
ORDERS_HEADER = "id,amount,city,day,label\n"
ORDERS_ROWS = [
    "1,10.5,Oslo,2024-01-02,0",
    "2,20.0,Lima,2024-01-03,1",
    "3,7.25,Pune,2024-01-04,1",
]
ORDERS = ORDERS_HEADER + "\n".join(ORDERS_ROWS) + "\n"


ENVIRONMENT = pipeline_variables(
    datasets=DATASETS, artifacts=ARTIFACTS, datasets_table=TABLE, runs_table="driftline-runs"
)


@pytest.fixture(scope="module")
def account() -> Iterator[None]:
    """Buckets and table named as the construct wires them, in one emulated account."""
    with pytest.MonkeyPatch.context() as patch, moto_account(patch, ENVIRONMENT):
        buckets(DATASETS, ARTIFACTS)
        registry_tables(TABLE)
        yield


@pytest.fixture(autouse=True)
def empty(account: None) -> Iterator[None]:
    """Each test starts from empty buckets and an empty table (every version deleted)."""
    yield
    emptied((DATASETS, ARTIFACTS), (TABLE,))


def upload(dataset: str, name: str, data: bytes | str) -> dict[str, Any]:
    """Put an object under datasets/<dataset>/ and return the state Validate receives."""
    key = f"datasets/{dataset}/{name}"
    body = data.encode() if isinstance(data, str) else data
    version_id = boto3.client("s3").put_object(Bucket=DATASETS, Key=key, Body=body)["VersionId"]
    return {"dataset": dataset, "bucket": DATASETS, "key": key, "version_id": version_id}


def invoke(state: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(validate_handler.handler(state, LAMBDA_CONTEXT)))
    return result


def put_contract(dataset: str, text: str) -> str:
    response = boto3.client("s3").put_object(
        Bucket=DATASETS, Key=f"contracts/{dataset}.yaml", Body=text.encode()
    )
    return str(response["VersionId"])


def artifact(key: str) -> Any:
    return json.loads(boto3.client("s3").get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())


def artifact_versions(key: str) -> int:
    listing = boto3.client("s3").list_object_versions(Bucket=ARTIFACTS, Prefix=key)
    return sum(1 for version in listing.get("Versions", []) if version["Key"] == key)


def accepted_items(dataset: str) -> list[dict[str, Any]]:
    return list(DatasetRegistry(boto3.client("dynamodb"), TABLE).versions(dataset))


def tags(state: dict[str, Any], version_id: str | None = None) -> dict[str, str]:
    tag_set = boto3.client("s3").get_object_tagging(
        Bucket=DATASETS, Key=state["key"], VersionId=version_id or state["version_id"]
    )["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def rejected_rules(result: dict[str, Any]) -> set[str]:
    """Asserts the full quarantine contract, then returns the rules the report names."""
    assert result["status"] == "rejected", result
    report = artifact(result["report_key"])
    assert result["report_key"] == report_key(result["dataset"], result["version_id"])
    assert f"s3://{ARTIFACTS}/{result['report_key']}" in result["cause"]
    assert "\n" not in result["cause"]
    return {violation["rule"] for violation in report["violations"]}


# --- accepted ---------------------------------------------------------------------------------


def test_an_accepted_upload_gets_one_manifest_and_one_registry_item() -> None:
    state = upload("breast_cancer", "wdbc.csv", EXAMPLE)

    result = invoke(state)

    assert result["status"] == "accepted"
    assert result["manifest_key"] == manifest_key("breast_cancer", state["version_id"])
    manifest = artifact(result["manifest_key"])
    assert manifest["version_id"] == state["version_id"]
    assert manifest["key"] == state["key"]
    assert manifest["sha256"] == hashlib.sha256(EXAMPLE).hexdigest()
    assert manifest["rows"] == manifest["profile"]["rows"] == 569
    assert manifest["contract_source"] == "contracts/breast_cancer.yaml"
    (item,) = accepted_items("breast_cancer")
    assert item["manifest_key"] == result["manifest_key"]
    assert item["manifest_sha256"] == result["manifest_sha256"]
    assert tags(state) == {}


def test_a_retried_invocation_writes_no_second_manifest_or_item() -> None:
    state = upload("breast_cancer", "wdbc.csv", EXAMPLE)
    first = invoke(state)

    second = invoke(state)

    assert second == first
    assert artifact_versions(first["manifest_key"]) == 1
    assert len(accepted_items("breast_cancer")) == 1


def test_a_step_that_stopped_between_manifest_and_item_is_completed_by_its_retry() -> None:
    state = upload("breast_cancer", "wdbc.csv", EXAMPLE)
    first = invoke(state)
    table = boto3.client("dynamodb")
    for item in table.scan(TableName=TABLE)["Items"]:
        table.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})

    second = invoke(state)

    assert second["manifest_sha256"] == first["manifest_sha256"]
    assert artifact_versions(first["manifest_key"]) == 1
    (item,) = accepted_items("breast_cancer")
    assert item["validated_at"] == artifact(first["manifest_key"])["validated_at"]


# --- quarantine -------------------------------------------------------------------------------


def test_a_rejected_version_is_tagged_kept_and_reported_beside_its_manifest_location() -> None:
    broken = EXAMPLE.replace(b"\n17.99,", b"\nnot-a-number,", 1)
    state = upload("breast_cancer", "wdbc.csv", broken)
    later = upload("breast_cancer", "wdbc.csv", EXAMPLE)

    result = invoke(state)

    assert rejected_rules(result) == {"type"}
    assert tags(state) == {
        "driftline:quarantined": "true",
        "driftline:report": result["report_key"],
    }
    assert tags(later) == {}, "only the exact rejected VersionId is tagged"
    kept = boto3.client("s3").get_object(
        Bucket=DATASETS, Key=state["key"], VersionId=state["version_id"]
    )
    assert kept["Body"].read() == broken
    assert result["report_key"].startswith(dataset_prefix("breast_cancer", state["version_id"]))
    assert artifact_versions(manifest_key("breast_cancer", state["version_id"])) == 0
    assert accepted_items("breast_cancer") == []
    assert "breast_cancer" in result["cause"] and state["version_id"] in result["cause"]
    assert "mean_radius" in result["message"]


def _orders(rows: list[str], header: str = ORDERS_HEADER) -> str:
    return header + "\n".join(rows) + "\n"


BAD_ORDERS: dict[str, tuple[str, bytes | str, str]] = {
    "empty file": ("orders.csv", b"", "empty_file"),
    "header only": ("orders.csv", ORDERS_HEADER, "min_rows"),
    "no header": ("orders.csv", "\n".join(ORDERS_ROWS) + "\n", "missing_header"),
    "wrong delimiter": ("orders.csv", ORDERS.replace(",", ";"), "delimiter"),
    "ragged rows": ("orders.csv", _orders([*ORDERS_ROWS, "4,1.0,Oslo"]), "ragged_row"),
    "non-UTF-8": (
        "orders.csv",
        _orders(ORDERS_ROWS).encode() + b"4,1.0,S\xe3o Paulo,2024-01-05,0\n",
        "encoding",
    ),
    "binary garbage": (
        "orders.csv",
        np.random.default_rng(7).integers(0, 256, 50_000, dtype=np.uint8).tobytes(),
        "header_mismatch|missing_header|binary|encoding",
    ),
    ".csv.gz that is not gzip": ("orders.csv.gz", ORDERS, "not_gzip"),
    "10,000-column header": (
        "orders.csv",
        ",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join(["1"] * 10_000) + "\n",
        "too_many_columns",
    ),
    "duplicate column names": (
        "orders.csv",
        _orders(["1,10.5,Oslo,2024-01-02,0,3"], header="id,amount,city,day,label,amount\n"),
        "duplicate_column",
    ),
    "NaN/Inf where forbidden": (
        "orders.csv",
        _orders(["1,NaN,Oslo,2024-01-02,0", "2,inf,Lima,2024-01-03,1"]),
        "not_finite",
    ),
    "string in a numeric column": (
        "orders.csv",
        _orders(["1,ten,Oslo,2024-01-02,0"]),
        "type",
    ),
    "number in a string column": (
        "orders.csv",
        _orders(["1,10,12345,2024-01-02,0"]),
        "numeric_in_string",
    ),
    "mixed date formats": (
        "orders.csv",
        _orders(["1,10,Oslo,2024-01-02,0", "2,20,Lima,03/01/2024,1"]),
        "datetime_format",
    ),
    "missing target column": (
        "orders.csv",
        "id,amount,city,day\n1,10.5,Oslo,2024-01-02\n",
        "missing_target",
    ),
}


@pytest.mark.parametrize(("name", "data", "rule"), BAD_ORDERS.values(), ids=list(BAD_ORDERS))
def test_bad_input_through_the_lambda_is_quarantined_with_its_rule(
    name: str, data: bytes | str, rule: str
) -> None:
    put_contract("orders", ORDERS_CONTRACT)
    state = upload("orders", name, data)

    result = invoke(state)

    assert rejected_rules(result) & set(rule.split("|")), result["cause"]
    assert tags(state)["driftline:quarantined"] == "true"


def test_a_gzip_bomb_through_the_lambda_is_cut_off_at_the_decompression_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Lambda runs with the default Limits (16 GiB); a 1 MiB cap keeps the bomb small."""

    def capped(*args: Any, **kwargs: Any) -> Any:
        return validate(*args, limits=Limits(max_decompressed_bytes=1 << 20), **kwargs)

    monkeypatch.setattr(validate_handler, "validate", capped)
    put_contract("orders", ORDERS_CONTRACT)
    bomb = gzip.compress(ORDERS_HEADER.encode() + b"0" * (16 << 20), compresslevel=9)
    state = upload("orders", "bomb.csv.gz", bomb)

    result = invoke(state)

    assert "decompressed_too_large" in rejected_rules(result)


# --- contracts --------------------------------------------------------------------------------


def test_a_dataset_without_a_contract_is_held_naming_the_expected_contract_path() -> None:
    state = upload("no_such_contract", "data.csv", ORDERS)

    result = invoke(state)

    assert rejected_rules(result) == {"contract"}
    # The key a user can upload to, not the folder the function's image was unpacked into.
    assert f"s3://{DATASETS}/contracts/no_such_contract.yaml" in result["cause"]
    assert "asset." not in result["cause"] and str(REPO) not in result["cause"]
    assert tags(state)["driftline:quarantined"] == "true"


def test_a_broken_packaged_contract_is_named_by_its_project_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.shared import contract_store

    monkeypatch.setattr(contract_store.storage, "get_text_if_exists", lambda bucket, key: None)
    (tmp_path / "orders.yaml").write_text("dataset: orders\ncolumns: {id: {type: decimal}}\n")

    with pytest.raises(contract_store.ContractError) as raised:
        contract_store.resolve("orders", DATASETS, packaged_dir=tmp_path)

    assert str(raised.value).startswith("contracts/orders.yaml: columns.id.type")
    assert str(tmp_path) not in str(raised.value)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (ORDERS_CONTRACT + "  broken: [unclosed\n", "invalid YAML"),
        (ORDERS_CONTRACT.replace("{type: float, min: 0}", "{type: money}"), "columns.amount.type"),
    ],
    ids=["invalid YAML", "unknown type"],
)
def test_a_broken_contract_override_is_held_naming_its_s3_uri(override: str, expected: str) -> None:
    override_version = put_contract("orders", override)
    state = upload("orders", "orders.csv", ORDERS)

    result = invoke(state)

    assert rejected_rules(result) == {"contract"}
    uri = f"s3://{DATASETS}/contracts/orders.yaml?versionId={override_version}"
    assert uri in result["cause"]
    assert expected in artifact(result["report_key"])["violations"][0]["message"]


# --- schema evolution against the last accepted version ---------------------------------------


def _with_column(contract: str, line: str) -> str:
    return contract.rstrip("\n") + "\n" + line + "\n"


def test_additive_evolution_accepts_a_new_column() -> None:
    put_contract("orders", ORDERS_CONTRACT)
    assert invoke(upload("orders", "v1.csv", ORDERS))["status"] == "accepted"
    put_contract("orders", _with_column(ORDERS_CONTRACT, "  note: {type: string, nullable: true}"))
    wider = _orders([row + ",gift" for row in ORDERS_ROWS], header=ORDERS_HEADER[:-1] + ",note\n")

    result = invoke(upload("orders", "v2.csv", wider))

    assert result["status"] == "accepted", result.get("cause")
    assert result["columns"]["note"] == "string"
    assert len(accepted_items("orders")) == 2


def test_strict_evolution_rejects_a_new_column() -> None:
    put_contract("orders", ORDERS_CONTRACT)
    assert invoke(upload("orders", "v1.csv", ORDERS))["status"] == "accepted"
    strict = _with_column(
        ORDERS_CONTRACT.replace("target: label", "target: label\nevolution: strict"),
        "  note: {type: string, nullable: true}",
    )
    put_contract("orders", strict)
    wider = _orders([row + ",gift" for row in ORDERS_ROWS], header=ORDERS_HEADER[:-1] + ",note\n")

    result = invoke(upload("orders", "v2.csv", wider))

    assert rejected_rules(result) == {"schema_column_added"}


def test_a_removed_column_is_rejected_against_the_last_accepted_version() -> None:
    put_contract("orders", ORDERS_CONTRACT)
    assert invoke(upload("orders", "v1.csv", ORDERS))["status"] == "accepted"
    put_contract("orders", ORDERS_CONTRACT.replace("  city: {type: string}\n", ""))
    narrower = "id,amount,day,label\n1,10.5,2024-01-02,0\n2,20.0,2024-01-03,1\n"

    result = invoke(upload("orders", "v2.csv", narrower))

    assert rejected_rules(result) == {"schema_column_removed"}
    assert "'city'" in result["cause"]


# --- keys the validator must not touch ---------------------------------------------------------


@pytest.mark.parametrize("key", ["models/orders.yaml", "datasets/../secrets/orders.csv"])
def test_keys_outside_datasets_or_with_dot_dot_are_ignored_with_a_log_line(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = {"dataset": "orders", "bucket": DATASETS, "key": key, "version_id": "v1"}

    with caplog.at_level(logging.INFO):
        result = invoke(state)

    assert result == {"status": "ignored", "key": key}
    assert any("ignored" in record.getMessage() for record in caplog.records)
    listing = boto3.client("s3").list_objects_v2(Bucket=ARTIFACTS)
    assert listing.get("KeyCount", 0) == 0


# --- objects too large for the function --------------------------------------------------------


def _orders_parquet() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pacsv.read_csv(pa.py_buffer(ORDERS.encode())), sink)
    return sink.getvalue()


def test_a_parquet_object_over_the_limit_is_quarantined_by_its_event_size_unread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """start_run passes the S3 event's object size: too large for /tmp is a verdict, no read."""

    class Unread:
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("read an object its size already rejected")

    put_contract("orders", ORDERS_CONTRACT)
    state = upload("orders", "huge.parquet", _orders_parquet())
    monkeypatch.setattr("functions.shared.storage.open_stream", lambda *args: Unread())

    result = invoke({**state, "size": Limits().max_parquet_bytes + 1})

    assert rejected_rules(result) == {"too_large"}
    assert artifact(result["report_key"])["size"] == 0
    assert tags(state)["driftline:quarantined"] == "true"


def test_a_full_tmp_is_a_too_large_quarantine_not_a_failed_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno
    import tempfile

    from pipelines import validation

    class FullDisk(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
        """/tmp is full: the first write that reaches the disk fails."""

        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(validation, "_spool_file", lambda: FullDisk(max_size=0))
    put_contract("orders", ORDERS_CONTRACT)
    body = _orders_parquet()
    state = upload("orders", "big.parquet", body)

    result = invoke(state)  # no size in the state: found while spooling

    assert rejected_rules(result) == {"too_large"}
    (found,) = artifact(result["report_key"])["violations"]
    assert "No space left on device" in found["message"]
    assert tags(state)["driftline:quarantined"] == "true"
    kept = boto3.client("s3").get_object(
        Bucket=DATASETS, Key=state["key"], VersionId=state["version_id"]
    )
    assert kept["Body"].read() == body  # quarantined, never lost


def test_nul_bytes_through_the_lambda_are_quarantined_naming_row_and_column() -> None:
    put_contract("orders", ORDERS_CONTRACT)
    rows = [*ORDERS_ROWS, "4,1.0,Os\x00lo,2024-01-05,0"]
    state = upload("orders", "nul.csv", ORDERS_HEADER + "\n".join(rows) + "\n")

    result = invoke(state)

    assert rejected_rules(result) == {"binary"}
    (found,) = artifact(result["report_key"])["violations"]
    assert (found["column"], found["rows"]) == ("city", [4])
