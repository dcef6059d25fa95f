"""Multi-part batches: the marker convention, which objects are parts, and the merged verdict.

The property that matters most: validating parts separately and merging gives the profile a
single pass over the concatenated data gives, so a batch's manifest is as good a drift
baseline as a single file's.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pytest

from pipelines.batches import (
    batch_sha256,
    build_batch_manifest,
    is_part,
    merge_part_reports,
    part_contract,
    plan_parts,
)
from pipelines.contracts import load_contract, parse_contract
from pipelines.uploads import DatasetUpload, IgnoredUpload, parse_upload
from pipelines.validation import validate

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "breast_cancer.csv"
BREAST_CANCER = load_contract(REPO / "contracts" / "breast_cancer.yaml")
PREFIX = "datasets/bc/2026-11-03/"


def event(key: str, version_id: str = "v1") -> dict[str, Any]:
    return {
        "detail": {
            "bucket": {"name": "datasets-bucket"},
            "object": {"key": key, "version-id": version_id, "size": 0},
        }
    }


def part_reports(text: str, pieces: int) -> list[dict[str, Any]]:
    """Split a CSV into `pieces` parts (each with the header) and validate each as a part."""
    header, *rows = text.splitlines()
    size = math.ceil(len(rows) / pieces)
    reports = []
    for index in range(pieces):
        chunk = "\n".join([header, *rows[index * size : (index + 1) * size]]) + "\n"
        key = f"{PREFIX}part-{index:03d}.csv"
        report = validate(io.BytesIO(chunk.encode()), part_contract(BREAST_CANCER), name=key)
        reports.append({**report.to_dict(), "key": key, "version_id": f"v{index}"})
    return reports


# --- the marker convention ---------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["_COMPLETE", "_SUCCESS"])
def test_a_marker_starts_one_run_for_its_batch_prefix(marker: str) -> None:
    upload = parse_upload(event(f"{PREFIX}{marker}", "m1"))

    assert isinstance(upload, DatasetUpload)
    assert (upload.dataset, upload.version_id, upload.prefix) == ("bc", "m1", PREFIX)
    document = upload.to_input(trigger="upload", requested_at="2026-11-03T10:00:00Z")
    assert document["prefix"] == PREFIX
    assert document["key"] == f"{PREFIX}{marker}"


def test_a_single_file_upload_carries_no_batch_prefix() -> None:
    upload = parse_upload(event("datasets/bc/wdbc.csv"))

    assert isinstance(upload, DatasetUpload)
    assert "prefix" not in upload.to_input(trigger="upload", requested_at="now")


@pytest.mark.parametrize(
    "key", [f"{PREFIX}part-000.csv", f"{PREFIX}dt=2026-11-03/part-0.parquet", f"{PREFIX}x.txt"]
)
def test_parts_start_nothing_until_their_marker_arrives(key: str) -> None:
    ignored = parse_upload(event(key))

    assert isinstance(ignored, IgnoredUpload)
    assert ignored.reason.startswith(f"part of batch {PREFIX}")
    assert "_COMPLETE" in ignored.reason


def test_a_marker_with_an_unsafe_batch_name_is_ignored() -> None:
    ignored = parse_upload(event("datasets/bc/bad batch/_COMPLETE"))

    assert isinstance(ignored, IgnoredUpload)
    assert "batch name" in ignored.reason


def test_parts_are_the_data_files_under_the_prefix_in_key_order() -> None:
    objects = [
        (f"{PREFIX}part-001.csv", "b", 20),
        (f"{PREFIX}_COMPLETE", "m", 0),
        (f"{PREFIX}part-000.csv", "a", 10),
        (f"{PREFIX}_temporary/0/part-002.csv", "t", 5),
        (f"{PREFIX}.part-000.csv.crc", "c", 1),
        (f"{PREFIX}notes.txt", "n", 3),
        ("datasets/bc/other/part-000.csv", "o", 7),
    ]

    parts = plan_parts(objects, PREFIX)

    assert [part.to_dict() for part in parts] == [
        {"index": 0, "key": f"{PREFIX}part-000.csv", "version_id": "a", "size": 10},
        {"index": 1, "key": f"{PREFIX}part-001.csv", "version_id": "b", "size": 20},
    ]
    assert is_part(f"{PREFIX}dt=1/part-0.parquet", PREFIX)


# --- the merged verdict ------------------------------------------------------------------------


def test_merged_part_profiles_equal_the_profile_of_the_whole_dataset() -> None:
    text = EXAMPLE.read_text()
    whole = validate(EXAMPLE, BREAST_CANCER).to_dict()

    merged = merge_part_reports(part_reports(text, 3), BREAST_CANCER)

    assert merged["valid"], merged["violations"]
    assert merged["rows"] == whole["rows"] == 569
    assert [part["rows"] for part in merged["parts"]] == [190, 190, 189]
    for name, column in whole["profile"]["columns"].items():
        got = merged["profile"]["columns"][name]
        exact = {k: v for k, v in column["numeric"].items() if k not in ("mean", "std", "m2")}
        assert {k: got["numeric"][k] for k in exact} == exact, name
        assert got["numeric"]["mean"] == pytest.approx(column["numeric"]["mean"], rel=1e-12)
        assert got["numeric"]["std"] == pytest.approx(column["numeric"]["std"], rel=1e-9)


def test_row_bounds_apply_to_the_batch_total_not_to_each_part() -> None:
    text = EXAMPLE.read_text()
    ten_parts = part_reports(text, 10)  # ~57 rows each, min_rows is 50
    bounded = BREAST_CANCER.model_copy(update={"min_rows": 100, "max_rows": 600})

    assert all(report["valid"] for report in ten_parts)
    assert merge_part_reports(ten_parts, bounded)["valid"]
    too_few = merge_part_reports(ten_parts[:1], bounded)
    assert [v["rule"] for v in too_few["violations"]] == ["min_rows"]
    too_many = merge_part_reports(ten_parts, bounded.model_copy(update={"max_rows": 500}))
    assert [v["rule"] for v in too_many["violations"]] == ["max_rows"]
    assert "569 data rows in 10 parts" in too_many["violations"][0]["message"]


def test_a_bad_part_rejects_the_batch_naming_the_part_and_its_own_row_numbers() -> None:
    lines = EXAMPLE.read_text().splitlines()
    lines[200] = "not-a-number," + lines[200].split(",", 1)[1]  # data row 200: row 10 of part 2
    reports = part_reports("\n".join(lines) + "\n", 3)

    merged = merge_part_reports(reports, BREAST_CANCER)

    (violation,) = merged["violations"]
    assert violation["part"] == f"{PREFIX}part-001.csv"
    assert violation["rows"] == [10]
    assert violation["message"].startswith(f"{PREFIX}part-001.csv: ")
    assert merged["profile"] == {"rows": 0, "columns": {}}


def test_parts_of_one_batch_must_share_a_format() -> None:
    text = EXAMPLE.read_text()
    reports = part_reports(text, 2)
    reports[1] = {**reports[1], "format": "parquet", "key": f"{PREFIX}part-001.parquet"}

    merged = merge_part_reports(reports, BREAST_CANCER)

    assert [v["rule"] for v in merged["violations"]] == ["mixed_formats"]


def test_an_empty_batch_is_rejected() -> None:
    merged = merge_part_reports([], BREAST_CANCER)

    assert [v["rule"] for v in merged["violations"]] == ["no_parts"]


def test_uniqueness_across_parts_is_flagged_as_not_checked() -> None:
    contract = parse_contract(
        "dataset: bc\ncolumns:\n  id: {type: int, unique: true}\n", source="bc.yaml"
    )
    reports = [
        validate(io.BytesIO(b"id\n1\n2\n"), contract, name=f"{PREFIX}p{i}.csv").to_dict()
        | {"key": f"{PREFIX}p{i}.csv", "version_id": f"v{i}"}
        for i in range(2)
    ]

    merged = merge_part_reports(reports, contract)

    assert merged["valid"]
    assert any("unique column 'id'" in warning for warning in merged["warnings"])


def test_the_batch_hash_covers_every_parts_identity_and_bytes() -> None:
    parts = [
        {"key": f"{PREFIX}a.csv", "version_id": "1", "sha256": "aa"},
        {"key": f"{PREFIX}b.csv", "version_id": "2", "sha256": "bb"},
    ]

    digest = batch_sha256(parts)

    assert batch_sha256(list(reversed(parts))) == digest
    assert batch_sha256([parts[0], {**parts[1], "sha256": "bc"}]) != digest
    assert batch_sha256([parts[0], {**parts[1], "version_id": "3"}]) != digest


def test_the_batch_manifest_lists_every_part_and_its_marker() -> None:
    merged = merge_part_reports(part_reports(EXAMPLE.read_text(), 3), BREAST_CANCER)

    manifest = build_batch_manifest(
        merged,
        dataset="bc",
        prefix=PREFIX,
        marker_key=f"{PREFIX}_COMPLETE",
        version_id="m1",
        column_types=BREAST_CANCER.column_types(),
        contract_hash="cd" * 32,
        contract_source="contracts/bc.yaml",
        validated_at="2026-11-03T10:00:00.000+00:00",
    )

    assert manifest["key"] == PREFIX
    assert manifest["version_id"] == "m1"
    assert manifest["marker"] == {"key": f"{PREFIX}_COMPLETE", "version_id": "m1"}
    assert manifest["rows"] == manifest["profile"]["rows"] == 569
    assert [(p["key"], p["version_id"]) for p in manifest["parts"]] == [
        (f"{PREFIX}part-{i:03d}.csv", f"v{i}") for i in range(3)
    ]
    assert all(len(part["sha256"]) == 64 for part in manifest["parts"])
    assert manifest["sha256"] == batch_sha256(manifest["parts"])
