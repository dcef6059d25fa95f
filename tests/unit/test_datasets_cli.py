"""`driftline datasets list|show|versions` against a registry found through stack outputs.

The seed is what the validate Lambda leaves behind: a table item per accepted version, its
manifest in the artifacts bucket, and for a quarantined version only the rejection report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest

from driftline.cli import main
from functions.shared.datasets import DatasetRegistry
from pipelines.contracts import load_contract
from pipelines.keys import manifest_key, report_key
from pipelines.manifests import build_manifest, manifest_sha256
from pipelines.validation import validate
from tests.unit.conftest import moto_account, registry_table_resource

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
TABLE, ARTIFACTS, DATASETS = "datasets-table", "artifacts-bucket", "datasets-bucket"
DATASET = "breast_cancer"

TEMPLATE = {
    "Resources": {
        "DatasetsTable": registry_table_resource(TABLE),
        "Artifacts": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": ARTIFACTS}},
        "Datasets": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": DATASETS}},
    },
    "Outputs": {
        "DatasetsTableName": {"Value": {"Ref": "DatasetsTable"}},
        "ArtifactsBucketName": {"Value": {"Ref": "Artifacts"}},
        "DatasetsBucketName": {"Value": {"Ref": "Datasets"}},
    },
}

VIOLATIONS = [
    {
        "column": f"mean_radius_{i}",
        "rule": "min",
        "count": i + 1,
        "rows": [i + 1],
        "message": f"column 'mean_radius_{i}' has values below 0",
    }
    for i in range(7)
]


@cache
def example_report() -> dict[str, Any]:
    contract = load_contract(REPO / "contracts" / "breast_cancer.yaml")
    return validate(REPO / "examples" / "breast_cancer.csv", contract).to_dict()


def accepted(version_id: str, validated_at: str, *, dataset: str = DATASET) -> dict[str, Any]:
    """A manifest as the validate Lambda writes it, for the example dataset."""
    contract = load_contract(REPO / "contracts" / "breast_cancer.yaml")
    return build_manifest(
        example_report(),
        dataset=dataset,
        key=f"datasets/{dataset}/wdbc.csv",
        version_id=version_id,
        column_types=contract.column_types(),
        contract_source="contracts/breast_cancer.yaml",
        validated_at=validated_at,
    )


def store(manifest: dict[str, Any]) -> None:
    key = manifest_key(manifest["dataset"], manifest["version_id"])
    boto3.client("s3").put_object(
        Bucket=ARTIFACTS, Key=key, Body=json.dumps(manifest, allow_nan=False).encode()
    )
    registry = DatasetRegistry(boto3.client("dynamodb"), TABLE)
    registry.record_accepted(manifest, manifest_key=key, sha256=manifest_sha256(manifest))


@pytest.fixture(scope="module", autouse=True)
def seeded() -> Iterator[dict[str, dict[str, Any]]]:
    with pytest.MonkeyPatch.context() as patch, moto_account(patch):
        boto3.client("cloudformation").create_stack(
            StackName="Driftline-local-Data", TemplateBody=json.dumps(TEMPLATE)
        )
        older = accepted("v-old", "2026-11-01T10:00:00.000+00:00")
        newer = accepted("v-new", "2026-11-02T10:00:00.000+00:00")
        batch = accepted("v-batch", "2026-11-03T10:00:00.000+00:00", dataset="wdbc_parts")
        batch["key"] = "datasets/wdbc_parts/2026-11-03/"
        batch["parts"] = [
            {
                "index": i,
                "key": f"datasets/wdbc_parts/2026-11-03/part-{i}.csv",
                "version_id": f"p{i}",
                "sha256": "ab" * 32,
                "size": 100,
                "rows": 190,
            }
            for i in range(3)
        ]
        for manifest in (older, newer, batch):
            store(manifest)
        boto3.client("s3").put_object(
            Bucket=ARTIFACTS,
            Key=report_key(DATASET, "v-bad"),
            Body=json.dumps(
                {"valid": False, "key": f"datasets/{DATASET}/bad.csv", "violations": VIOLATIONS}
            ).encode(),
        )
        yield {"older": older, "newer": newer, "batch": batch}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_names_each_dataset_with_its_latest_accepted_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(capsys, "datasets", "list", "--json")

    assert code == 0
    listed = {row["dataset"]: row for row in json.loads(out)}
    assert set(listed) == {DATASET, "wdbc_parts"}
    assert listed[DATASET]["latest_version"] == "v-new"
    assert listed[DATASET]["rows"] == 569
    assert listed[DATASET]["validated_at"] == "2026-11-02T10:00:00.000+00:00"


def test_list_as_a_table_has_one_row_per_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "datasets", "list")

    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:3] == ["DATASET", "LATEST_VERSION", "ROWS"]
    assert sorted(line.split()[0] for line in lines[1:]) == [DATASET, "wdbc_parts"]


def test_show_prints_the_latest_manifest_from_the_artifacts_bucket(
    seeded: dict[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "datasets", "show", DATASET, "--json")

    assert code == 0
    assert json.loads(out) == seeded["newer"]


def test_show_with_a_version_prints_that_versions_manifest(
    seeded: dict[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "datasets", "show", DATASET, "--version", "v-old", "--json")

    assert code == 0
    assert json.loads(out) == seeded["older"]


def test_show_as_tables_gives_the_summary_and_one_row_per_column(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(capsys, "datasets", "show", "wdbc_parts")

    rows = [line.split() for line in out.splitlines()]
    assert code == 0
    assert ["parts", "3"] in rows
    assert ["object", f"s3://{DATASETS}/datasets/wdbc_parts/2026-11-03/"] in rows
    assert any(row[:2] == ["target", "int"] for row in rows)


def test_a_quarantined_version_is_shown_as_such_with_its_top_violations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(capsys, "datasets", "show", DATASET, "--version", "v-bad", "--json")

    document = json.loads(out)
    assert code == 1
    assert document["status"] == "quarantined"
    assert document["violation_count"] == 7
    assert document["top_violations"] == VIOLATIONS[:5]
    assert err.count("\n") == 1
    assert f"s3://{ARTIFACTS}/{report_key(DATASET, 'v-bad')}" in err
    assert "quarantined" in err


def test_versions_lists_accepted_versions_newest_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(capsys, "datasets", "versions", DATASET, "--json")

    assert code == 0
    assert [item["version_id"] for item in json.loads(out)] == ["v-new", "v-old"]

    code, out, _ = cli(capsys, "datasets", "versions", DATASET)
    assert [line.split()[0] for line in out.splitlines()] == ["VERSION", "v-new", "v-old"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "nope"], "unknown dataset 'nope': no accepted version"),
        (["versions", "nope"], "unknown dataset 'nope': no accepted version"),
        (["show", "nope", "--version", "v1"], "unknown dataset 'nope': no accepted version"),
        (["show", DATASET, "--version", "v-nope"], f"dataset '{DATASET}' has no version 'v-nope'"),
    ],
)
def test_an_unknown_dataset_or_version_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "datasets", *argv)

    assert code == 2
    assert out == ""
    assert err == f"driftline: {message}\n"
