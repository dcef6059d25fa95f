"""Contracts: strict parsing with one-line errors, stable hashes, resolution, schema evolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.contract_inference import contract_to_yaml, dataset_name_for, infer_contract
from pipelines.contracts import (
    ContractError,
    check_schema_evolution,
    contract_hash,
    load_contract,
    parse_contract,
    resolve_contract,
)
from pipelines.validation import validate

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SOURCE = "contracts/example.yaml"
MINIMAL = """
dataset: example
target: label
primary_key: [id]
columns:
  id: {type: int, unique: true}
  amount: {type: float, min: 0, max: 100, nullable: true}
  city: {type: category, allowed: [Oslo, Lima]}
  label: {type: int, allowed: [0, 1]}
"""


def contract_error(text: str) -> str:
    with pytest.raises(ContractError) as caught:
        parse_contract(text, source=SOURCE)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{SOURCE}: ")
    return message


def test_a_valid_contract_parses_with_its_rules() -> None:
    contract = parse_contract(MINIMAL, source=SOURCE)
    assert contract.dataset == "example"
    assert contract.target == "label"
    assert contract.columns["amount"].max == 100.0
    assert contract.column_types() == {
        "id": "int",
        "amount": "float",
        "city": "category",
        "label": "int",
    }


def test_invalid_yaml_is_one_line_naming_the_file_and_line() -> None:
    message = contract_error("dataset: x\ncolumns: {a: {type: int}\n")
    assert "invalid YAML" in message
    assert "line" in message


def test_unknown_type_names_the_column_key() -> None:
    message = contract_error("dataset: x\ncolumns:\n  age: {type: integer}\n")
    assert "columns.age.type" in message
    assert "'int'" in message


def test_unknown_key_is_rejected_not_ignored() -> None:
    message = contract_error("dataset: x\ncolumns:\n  age: {type: int, nullabel: true}\n")
    assert "columns.age.nullabel: unknown key" in message


def test_duplicate_yaml_keys_are_rejected() -> None:
    message = contract_error("dataset: x\ncolumns:\n  a: {type: int}\n  a: {type: float}\n")
    assert "duplicate key 'a'" in message


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ("a: {type: string, min: 1}", "min/max apply to int and float"),
        ("a: {type: int, min: 5, max: 1}", "greater than max"),
        ("a: {type: int, regex: '^x$'}", "regex applies to string"),
        ("a: {type: string, regex: '(?<=x)y'}", "not a valid RE2 pattern"),
        ("a: {type: float, format: '%Y'}", "format applies to datetime"),
        ("a: {type: datetime, format: 'YYYY-MM-DD'}", "no strftime directive"),
        ("a: {type: int, allowed: [1, 'two']}", "is not an int"),
        ("a: {type: category, allowed: [1]}", "is not a string"),
        ("a: {type: int, allow_nan: true}", "float columns only"),
    ],
)
def test_rules_that_cannot_apply_to_a_column_are_errors(columns: str, expected: str) -> None:
    message = contract_error(f"dataset: x\ncolumns:\n  {columns}\n")
    assert "columns.a" in message
    assert expected in message


def test_dataset_rules_must_name_real_columns() -> None:
    assert "target 'nope'" in contract_error(
        "dataset: x\ntarget: nope\ncolumns: {a: {type: int}}\n"
    )
    assert "primary_key column 'b'" in contract_error(
        "dataset: x\nprimary_key: [b]\ncolumns: {a: {type: int}}\n"
    )
    assert "primary_key column 'a' cannot be nullable" in contract_error(
        "dataset: x\nprimary_key: [a]\ncolumns: {a: {type: int, nullable: true}}\n"
    )
    assert "max_duplicate_share" in contract_error(
        "dataset: x\nmax_duplicate_share: 2\ncolumns: {a: {type: int}}\n"
    )


def test_a_contract_that_is_not_a_mapping_is_an_error() -> None:
    assert "YAML mapping" in contract_error("- just\n- a list\n")


def test_contract_hash_ignores_layout_and_key_order_but_not_rules() -> None:
    reordered = """
columns:
  id: {unique: true, type: int}
  amount: {nullable: true, max: 100.0, min: 0, type: float}
  city: {allowed: [Oslo, Lima], type: category}
  label: {type: int, allowed: [0, 1]}
primary_key: [id]
target: label   # the label
dataset: example
"""
    first = contract_hash(parse_contract(MINIMAL, source=SOURCE))
    assert first == contract_hash(parse_contract(reordered, source=SOURCE))
    assert len(first) == 64
    changed = MINIMAL.replace("max: 100", "max: 101")
    assert first != contract_hash(parse_contract(changed, source=SOURCE))


def test_resolve_contract_finds_the_dataset_file(tmp_path: Path) -> None:
    (tmp_path / "example.yaml").write_text(MINIMAL)
    assert resolve_contract("example", tmp_path).dataset == "example"


def test_a_dataset_without_a_contract_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"no contract for dataset 'orphan'.*orphan\.yaml"):
        resolve_contract("orphan", tmp_path)


def test_resolve_rejects_names_that_could_escape_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="not a dataset name"):
        resolve_contract("../etc/passwd", tmp_path)


def test_resolve_rejects_a_file_naming_another_dataset(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(MINIMAL)
    with pytest.raises(ContractError, match="expected 'other'"):
        resolve_contract("other", tmp_path)


def test_load_contract_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="contract file not found"):
        load_contract(tmp_path / "missing.yaml")


def test_the_shipped_breast_cancer_contract_loads() -> None:
    contract = load_contract(REPO / "contracts" / "breast_cancer.yaml")
    assert contract.target == "target"
    assert len(contract.columns) == 31
    assert contract.columns["target"].allowed == [0, 1]


PREVIOUS = {"id": "int", "amount": "int", "city": "category"}


def test_additive_evolution_accepts_new_columns_and_widenings() -> None:
    current = {"id": "int", "amount": "float", "city": "string", "extra": "bool"}
    assert check_schema_evolution(PREVIOUS, current, "additive") == []


def test_additive_evolution_rejects_removed_and_narrowed_columns() -> None:
    current = {"id": "string", "amount": "int"}
    found = {(v.column, v.rule) for v in check_schema_evolution(PREVIOUS, current, "additive")}
    assert found == {("id", "schema_type_changed"), ("city", "schema_column_removed")}


def test_strict_evolution_rejects_any_change() -> None:
    current = {"id": "int", "amount": "float", "city": "category", "extra": "bool"}
    found = {(v.column, v.rule) for v in check_schema_evolution(PREVIOUS, current, "strict")}
    assert found == {("amount", "schema_type_changed"), ("extra", "schema_column_added")}


def test_schema_evolution_accepts_a_contract() -> None:
    contract = parse_contract(MINIMAL, source=SOURCE)
    previous = {"id": "int", "amount": "float", "city": "category", "label": "int"}
    assert check_schema_evolution(previous, contract, "strict") == []


def test_an_unknown_evolution_policy_is_an_error() -> None:
    with pytest.raises(ContractError, match="unknown policy"):
        check_schema_evolution(PREVIOUS, PREVIOUS, "loose")  # type: ignore[arg-type]


def test_inferred_contract_has_types_target_and_accepts_its_sample(tmp_path: Path) -> None:
    sample = tmp_path / "Loans 2024.csv"
    sample.write_text(
        "id,income,city,approved,signed_at,label,comment\n"
        "1,1200.5,Oslo,true,2024-01-02 10:00:00,0,ok\n"
        "2,,Lima,false,2024-01-03 11:00:00,1,fine\n"
        "3,800,Oslo,true,2024-01-04,1,\n"
        "4,950.25,Oslo,false,2024-02-01T09:30:00,0,call back 2\n"
    )
    contract = infer_contract(sample, dataset=dataset_name_for(sample))
    assert contract.dataset == "loans_2024"
    assert contract.target == "label"
    types = contract.column_types()
    assert types == {
        "id": "int",
        "income": "float",
        "city": "category",
        "approved": "bool",
        "signed_at": "datetime",
        "label": "int",
        "comment": "string",
    }
    assert contract.columns["income"].nullable
    assert not contract.columns["id"].nullable
    assert contract.columns["income"].min == 800.0
    assert contract.columns["city"].allowed == ["Lima", "Oslo"]
    assert contract.columns["label"].allowed == [0, 1]
    reparsed = parse_contract(contract_to_yaml(contract), source="inferred.yaml")
    assert contract_hash(reparsed) == contract_hash(contract)
    assert validate(sample, reparsed).valid


def test_inference_takes_an_explicit_target(tmp_path: Path) -> None:
    sample = tmp_path / "s.csv"
    sample.write_text("a,b\n1,x\n2,y\n")
    assert infer_contract(sample, dataset="s", target="a").target == "a"
