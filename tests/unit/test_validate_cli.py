"""`driftline validate` and `contracts`: exit codes, one JSON document, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from driftline.cli import main
from pipelines.contracts import parse_contract

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "breast_cancer.csv"
CONTRACT = REPO / "contracts" / "breast_cancer.yaml"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_example_dataset_is_valid_against_its_contract(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["validate", str(EXAMPLE), "--contract", str(CONTRACT), "--json"], capsys)
    assert code == 0, err
    document = json.loads(out)
    assert document["valid"] is True
    assert document["violations"] == []
    assert document["rows"] == 569
    assert document["profile"]["columns"]["target"]["numeric"]["min"] == 0


def test_invalid_data_exits_1_after_printing_every_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = EXAMPLE.read_text().splitlines()
    lines[1] = lines[1].replace("17.99", "-17.99", 1)
    lines[2] = lines[2].rsplit(",", 1)[0] + ",7"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    code, out, err = run(["validate", str(bad), "--contract", str(CONTRACT), "--json"], capsys)
    assert code == 1
    document = json.loads(out)
    assert document["valid"] is False
    found = {(v["column"], v["rule"], tuple(v["rows"])) for v in document["violations"]}
    assert found == {("mean_radius", "min", (1,)), ("target", "allowed", (2,))}
    assert err.count("\n") == 1
    assert "2 violation(s)" in err


def test_the_table_output_lists_violations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(EXAMPLE.read_text().replace("\n", "\n,\n", 1))
    code, out, _ = run(["validate", str(bad), "--contract", str(CONTRACT)], capsys)
    assert code == 1
    assert out.splitlines()[0].split()[:4] == ["COLUMN", "RULE", "COUNT", "ROWS"]
    assert "ragged_row" in out


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["validate", str(tmp_path / "absent.csv"), "--contract", str(CONTRACT)], capsys
    )
    assert (code, out) == (2, "")
    assert "absent.csv: file not found" in err


def test_a_broken_contract_exits_2_naming_the_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: b\ncolumns:\n  a: {type: decimal}\n")
    code, _, err = run(["validate", str(EXAMPLE), "--contract", str(broken)], capsys)
    assert code == 2
    assert err.startswith(f"driftline: {broken}: columns.a.type")
    assert err.count("\n") == 1


def test_a_dataset_without_a_contract_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        ["validate", str(EXAMPLE), "--dataset", "orphan", "--contracts-dir", str(tmp_path)],
        capsys,
    )
    assert code == 2
    assert "no contract for dataset 'orphan'" in err


def test_the_contract_is_found_by_dataset_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code, out, _ = run(["validate", str(EXAMPLE), "--dataset", "breast_cancer", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["dataset"] == "breast_cancer"


def test_unreadable_bytes_are_invalid_data_not_unusable_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "data.csv.gz"
    fake.write_bytes(b"not gzip at all")
    code, out, _ = run(["validate", str(fake), "--contract", str(CONTRACT), "--json"], capsys)
    assert code == 1
    assert json.loads(out)["violations"][0]["rule"] == "not_gzip"


def test_contracts_infer_prints_a_contract_that_accepts_the_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["contracts", "infer", str(EXAMPLE)], capsys)
    assert code == 0, err
    assert out.startswith("# Proposed by")
    contract = parse_contract(out, source="inferred.yaml")
    assert contract.dataset == "breast_cancer"
    assert contract.target == "target"
    assert yaml.safe_load(out)["columns"]["target"]["allowed"] == [0, 1]
    inferred = tmp_path / "inferred.yaml"
    inferred.write_text(out)
    code, _, err = run(["validate", str(EXAMPLE), "--contract", str(inferred)], capsys)
    assert code == 0, err


def test_contracts_infer_rejects_an_unknown_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["contracts", "infer", str(EXAMPLE), "--target", "nope"], capsys)
    assert (code, out) == (2, "")
    assert "--target 'nope' is not a column" in err


def test_contracts_check_prints_dataset_and_hash(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["contracts", "check", str(CONTRACT), "--json"], capsys)
    assert code == 0
    [row] = json.loads(out)
    assert (row["dataset"], row["columns"], row["target"]) == ("breast_cancer", 31, "target")
    assert len(row["hash"]) == 64


def test_a_valid_file_says_valid_in_one_line_after_its_profile(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["validate", str(EXAMPLE), "--contract", str(CONTRACT)], capsys)

    assert code == 0
    assert out.splitlines()[-1] == (
        f"valid: {EXAMPLE} matches contract 'breast_cancer' (569 rows, 31 columns)"
    )
