"""Data contracts: one YAML file per dataset saying what an acceptable upload looks like.

A contract is checked as strictly as the data it guards: an unknown key, an unknown type or a
rule that cannot apply to its column is a one-line `ContractError` naming the file and the key,
because a typo in a contract would otherwise silently stop a check from running. Contracts are
identified by a `contract_hash` over their canonical JSON so a validation report records exactly
which rules the data was held to.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.violations import Violation

ColumnType = Literal["int", "float", "string", "bool", "datetime", "category"]
COLUMN_TYPES: tuple[str, ...] = ("int", "float", "string", "bool", "datetime", "category")
EvolutionPolicy = Literal["additive", "strict"]

# Only these widenings keep every previously valid value valid, so `additive` allows them.
_WIDENINGS = frozenset({("int", "float"), ("category", "string")})
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ContractError(ValueError):
    """A contract that cannot be used; the message is one line naming the file and the key."""


class ColumnSpec(BaseModel):
    """Rules for one column. `min`/`max` are inclusive; `regex` must match the whole value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ColumnType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[int | float | str] | None = None
    regex: str | None = None
    unique: bool = False
    format: str | None = None
    allow_nan: bool = False
    allow_inf: bool = False
    allow_numeric: bool = False
    description: str | None = None

    @model_validator(mode="after")
    def _rules_fit_the_type(self) -> ColumnSpec:
        numeric = self.type in ("int", "float")
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError(f"min/max apply to int and float columns, not {self.type}")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("min/max must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.regex is not None:
            if self.type not in ("string", "category"):
                raise ValueError(f"regex applies to string and category columns, not {self.type}")
            try:
                pc.match_substring_regex(pa.array([""]), f"^(?:{self.regex})$")
            except pa.ArrowInvalid as error:
                raise ValueError(f"regex is not a valid RE2 pattern: {error}") from None
        if self.format is not None and self.type != "datetime":
            raise ValueError(f"format applies to datetime columns, not {self.type}")
        if self.format is not None and "%" not in self.format:
            raise ValueError(f"format {self.format!r} has no strftime directive (e.g. %Y-%m-%d)")
        if (self.allow_nan or self.allow_inf) and self.type != "float":
            raise ValueError("allow_nan/allow_inf apply to float columns only")
        if self.allow_numeric and self.type not in ("string", "category"):
            raise ValueError("allow_numeric applies to string and category columns only")
        if self.allowed is not None:
            _check_allowed(self.type, self.allowed)
        return self

    @property
    def numeric(self) -> bool:
        return self.type in ("int", "float")


def _check_allowed(column_type: str, allowed: list[int | float | str]) -> None:
    if not allowed:
        raise ValueError("allowed must list at least one value")
    if column_type in ("bool", "datetime"):
        raise ValueError(f"allowed does not apply to {column_type} columns")
    for value in allowed:
        if column_type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"allowed value {value!r} is not an int")
        if column_type == "float" and isinstance(value, (bool, str)):
            raise ValueError(f"allowed value {value!r} is not a number")
        if column_type in ("string", "category") and not isinstance(value, str):
            raise ValueError(f"allowed value {value!r} is not a string (quote it in YAML)")
    if len({str(value) for value in allowed}) != len(allowed):
        raise ValueError("allowed lists a value twice")


class Contract(BaseModel):
    """Dataset-level rules plus one `ColumnSpec` per column, in file order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    version: int = Field(default=1, ge=1)
    description: str | None = None
    columns: dict[str, ColumnSpec]
    target: str | None = None
    primary_key: list[str] = Field(default_factory=list)
    min_rows: int = Field(default=1, ge=0)
    max_rows: int | None = Field(default=None, ge=0)
    max_duplicate_share: float | None = Field(default=None, ge=0.0, le=1.0)
    evolution: EvolutionPolicy = "additive"
    allow_extra_columns: bool = False
    delimiter: str = ","
    null_values: list[str] = Field(default_factory=lambda: [""])

    @field_validator("dataset")
    @classmethod
    def _dataset_is_a_plain_name(cls, value: str) -> str:
        if not _DATASET_NAME.match(value):
            raise ValueError(f"{value!r} is not a plain name (letters, digits, '_', '-', '.')")
        return value

    @field_validator("columns")
    @classmethod
    def _column_names_are_clean(cls, value: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        if not value:
            raise ValueError("a contract needs at least one column")
        for name in value:
            if not name or name != name.strip():
                raise ValueError(f"column name {name!r} is empty or has surrounding whitespace")
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1 or value in ('"', "\n", "\r"):
            raise ValueError(f"delimiter must be one character other than quote/newline: {value!r}")
        return value

    @model_validator(mode="after")
    def _dataset_rules_name_real_columns(self) -> Contract:
        if self.target is not None and self.target not in self.columns:
            raise ValueError(f"target {self.target!r} is not one of the columns")
        for name in self.primary_key:
            if name not in self.columns:
                raise ValueError(f"primary_key column {name!r} is not one of the columns")
            if self.columns[name].nullable:
                raise ValueError(f"primary_key column {name!r} cannot be nullable")
        if len(set(self.primary_key)) != len(self.primary_key):
            raise ValueError("primary_key lists a column twice")
        if self.max_rows is not None and self.min_rows > self.max_rows:
            raise ValueError(f"min_rows ({self.min_rows}) is greater than max_rows")
        return self

    def column_types(self) -> dict[str, str]:
        """`column -> type`, the shape that schema evolution and model configs compare."""
        return {name: spec.type for name, spec in self.columns.items()}


def contract_hash(contract: Contract) -> str:
    """sha256 of canonical JSON: key order, YAML layout and comments do not change it."""
    canonical = json.dumps(
        contract.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; in a contract that silently drops a column."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ContractError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return dict(loader.construct_mapping(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def parse_contract(text: str, *, source: str) -> Contract:
    """Parse and check contract YAML; every failure is one line starting with `source`."""
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except ContractError as error:
        raise ContractError(f"{source}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ContractError(f"{source}: invalid YAML: {where}{problem}") from None
    if not isinstance(document, dict):
        raise ContractError(f"{source}: a contract is a YAML mapping with 'dataset' and 'columns'")
    try:
        return Contract.model_validate(document)
    except ValidationError as error:
        raise ContractError(f"{source}: {_first_error(error)}") from None


def _first_error(error: ValidationError) -> str:
    errors = error.errors()
    first = errors[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{location}: {message}{more}"


def load_contract(path: str | Path) -> Contract:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{path}: contract file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ContractError(f"{path}: cannot read contract: {error}") from None
    return parse_contract(text, source=str(path))


def resolve_contract(dataset: str, directory: str | Path) -> Contract:
    """The contract for `dataset` from `<directory>/<dataset>.yaml` (or `.yml`)."""
    directory = Path(directory)
    if not _DATASET_NAME.match(dataset):
        raise ContractError(f"{dataset!r} is not a dataset name (letters, digits, '_', '-', '.')")
    for suffix in (".yaml", ".yml"):
        path = directory / f"{dataset}{suffix}"
        if path.is_file():
            contract = load_contract(path)
            if contract.dataset != dataset:
                raise ContractError(
                    f"{path}: dataset: says {contract.dataset!r}, expected {dataset!r}"
                )
            return contract
    raise ContractError(
        f"no contract for dataset {dataset!r}: expected {directory / (dataset + '.yaml')}"
    )


def check_schema_evolution(
    previous: Mapping[str, str],
    current: Contract | Mapping[str, str],
    policy: EvolutionPolicy,
) -> list[Violation]:
    """Compare a new schema with the last accepted one.

    `strict` accepts no change at all. `additive` accepts new columns and the widenings
    int→float and category→string, and rejects removed columns and any other type change,
    because those break models and consumers trained on the previous version.
    """
    if policy not in ("additive", "strict"):
        raise ContractError(f"evolution: unknown policy {policy!r} (additive or strict)")
    schema = current.column_types() if isinstance(current, Contract) else dict(current)
    found: list[Violation] = []
    for name, old_type in previous.items():
        if name not in schema:
            found.append(
                Violation(
                    "schema_column_removed",
                    f"column {name!r} ({old_type}) of the last accepted version is gone",
                    column=name,
                )
            )
            continue
        new_type = schema[name]
        if new_type == old_type:
            continue
        if policy == "additive" and (old_type, new_type) in _WIDENINGS:
            continue
        found.append(
            Violation(
                "schema_type_changed",
                f"column {name!r} changed type {old_type} -> {new_type} ({policy} policy)",
                column=name,
            )
        )
    if policy == "strict":
        for name, new_type in schema.items():
            if name not in previous:
                found.append(
                    Violation(
                        "schema_column_added",
                        f"column {name!r} ({new_type}) is new (strict policy allows no change)",
                        column=name,
                    )
                )
    return found
