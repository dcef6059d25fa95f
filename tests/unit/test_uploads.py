"""Which uploads start a run, and the run's name that makes duplicate events harmless."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.uploads import (
    DatasetUpload,
    IgnoredUpload,
    execution_name,
    is_name,
    parse_upload,
    rerun_execution_name,
)

pytestmark = pytest.mark.unit


def event(key: str, version_id: str | None = "v1", size: int = 10) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "size": size}
    if version_id is not None:
        obj["version-id"] = version_id
    return {"detail": {"bucket": {"name": "datasets-bucket"}, "object": obj}}


def test_an_upload_under_datasets_names_its_dataset_and_exact_version() -> None:
    upload = parse_upload(event("datasets/breast_cancer/part-1.csv", "3HL4kqtJlcpXroDTDmJ"))
    assert upload == DatasetUpload(
        bucket="datasets-bucket",
        key="datasets/breast_cancer/part-1.csv",
        version_id="3HL4kqtJlcpXroDTDmJ",
        dataset="breast_cancer",
        size=10,
    )


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("contracts/breast_cancer.yaml", "key outside datasets/"),
        ("datasets/../secrets/x.csv", "contains '..'"),
        ("datasets/a/../../x.csv", "contains '..'"),
        ("datasets/file.csv", "expected datasets/<dataset>/<file>"),
        ("datasets/bc/notes.txt", "file type not one of"),
        ("datasets/bad name/x.csv", "is not [A-Za-z0-9_.-]"),
    ],
)
def test_keys_outside_the_convention_are_ignored_with_a_reason(key: str, reason: str) -> None:
    ignored = parse_upload(event(key))
    assert isinstance(ignored, IgnoredUpload)
    assert reason in ignored.reason


def test_an_unversioned_event_is_ignored_because_lineage_needs_the_version() -> None:
    ignored = parse_upload(event("datasets/bc/x.csv", version_id=None))
    assert isinstance(ignored, IgnoredUpload)
    assert "version-id" in ignored.reason


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet", ".CSV"])
def test_supported_formats_start_a_run(suffix: str) -> None:
    assert isinstance(parse_upload(event(f"datasets/bc/data{suffix}")), DatasetUpload)


def test_the_same_version_always_gets_the_same_execution_name() -> None:
    assert execution_name("bc", "abc.def") == execution_name("bc", "abc.def") == "bc-abc_def"
    assert execution_name("bc", "v1") != execution_name("bc", "v2")


def test_long_execution_names_stay_within_the_limit_and_distinct() -> None:
    first = execution_name("d" * 60, "v" * 40 + "1")
    second = execution_name("d" * 60, "v" * 40 + "2")
    assert len(first) == len(second) == 80
    assert first != second


def test_reruns_of_a_version_are_distinct_from_its_run_and_each_other() -> None:
    assert rerun_execution_name("bc", "abc.def", 1) == "bc-abc_def-rerun-1"
    long = [rerun_execution_name("d" * 60, "v" * 40, n) for n in (1, 2)]
    assert [len(name) <= 80 and name.endswith(f"-rerun-{n}") for n, name in enumerate(long, 1)] == [
        True,
        True,
    ]
    assert long[0] != long[1]
    assert rerun_execution_name("d" * 60, "v" * 40 + "1", 1) != rerun_execution_name(
        "d" * 60, "v" * 40 + "2", 1
    )


@pytest.mark.parametrize(("name", "valid"), [("wine", True), ("a.b-c_1", True), ("../x", False)])
def test_is_name_is_the_starters_rule(name: str, valid: bool) -> None:
    assert is_name(name) is valid
    assert is_name("x" * 65) is False


def test_the_run_input_carries_the_object_size_for_validate_to_check_first() -> None:
    upload = parse_upload(event("datasets/bc/big.parquet", size=12_000_000_000))
    assert isinstance(upload, DatasetUpload)

    document = upload.to_input(trigger="upload", requested_at="now")

    assert document["size"] == 12_000_000_000
    unsized = DatasetUpload(bucket="b", key="datasets/bc/x.csv", version_id="v", dataset="bc")
    assert "size" not in unsized.to_input(trigger="upload", requested_at="now")
