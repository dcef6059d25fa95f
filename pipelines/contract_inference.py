"""Propose a contract from a known-good sample: the starting point a data owner then edits.

Two streaming passes, so the sample may be any size. The first decides each column's type from
every value (a column is `int` only if every non-null value is an integer, and so on); the
second is an ordinary validation against a permissive contract of those types, whose profile
supplies nullability, min/max and the values of low-cardinality text columns. The proposal is
then checked by the validator itself: it accepts the sample it was inferred from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from pipelines.contracts import ColumnSpec, Contract
from pipelines.profile import ColumnProfile
from pipelines.tabular_io import InputError
from pipelines.validation import (
    FALSE_VALUES,
    TRUE_VALUES,
    Limits,
    read_tables,
    validate,
)

MAX_CATEGORIES = 50
TARGET_NAMES = ("target", "label")
_INT = r"^\s*[+-]?[0-9]+\s*$"
_FLOAT = r"(?i)^\s*[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?|nan|inf|infinity)\s*$"
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?$"
_INT64_DIGITS = 18


@dataclass
class _Evidence:
    """What every value of a column seen so far could be."""

    can_int: bool = True
    can_float: bool = True
    can_bool: bool = True
    can_datetime: bool = True
    numeric_text: bool = False
    non_null: int = 0

    def kind(self) -> str:
        if self.non_null == 0:
            return "string"
        for candidate in ("bool", "int", "float", "datetime"):
            if getattr(self, f"can_{candidate}"):
                return candidate
        return "string"


def _all(mask: pa.Array) -> bool:
    return bool(pc.all(pc.fill_null(mask, True)).as_py())


def _observe_strings(evidence: _Evidence, values: pa.Array) -> None:
    present = values.drop_null()
    evidence.non_null += len(present)
    if len(present) == 0:
        return
    if evidence.can_bool:
        evidence.can_bool = _all(pc.is_in(present, value_set=pa.array(TRUE_VALUES + FALSE_VALUES)))
        evidence.can_bool = evidence.can_bool and not _all(
            pc.is_in(present, value_set=pa.array(["0", "1"]))
        )
    if evidence.can_int:
        evidence.can_int = _all(pc.match_substring_regex(present, _INT)) and _all(
            pc.less_equal(pc.utf8_length(pc.utf8_trim_whitespace(present)), _INT64_DIGITS)
        )
    if evidence.can_float:
        evidence.can_float = _all(pc.match_substring_regex(present, _FLOAT))
    if evidence.can_datetime:
        evidence.can_datetime = _all(pc.match_substring_regex(present, _ISO))
        if evidence.can_datetime:
            try:
                present.cast(pa.timestamp("us"))
            except pa.ArrowInvalid:
                evidence.can_datetime = False
    if not evidence.numeric_text:
        evidence.numeric_text = bool(pc.any(pc.match_substring_regex(present, _NUMBER)).as_py())


def _observe_typed(evidence: _Evidence, values: pa.Array) -> None:
    """Parquet columns carry their type; it only has to be mapped to a contract type."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    evidence.non_null += len(values) - values.null_count
    evidence.can_int = evidence.can_int and pa.types.is_integer(kind)
    evidence.can_float = evidence.can_float and (
        pa.types.is_integer(kind) or pa.types.is_floating(kind)
    )
    evidence.can_bool = evidence.can_bool and pa.types.is_boolean(kind)
    evidence.can_datetime = evidence.can_datetime and (
        pa.types.is_timestamp(kind) or pa.types.is_date(kind)
    )
    is_text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    if is_text and not evidence.numeric_text and len(values) - values.null_count:
        strings = values.cast(pa.string()).drop_null()
        evidence.numeric_text = bool(pc.any(pc.match_substring_regex(strings, _NUMBER)).as_py())
    if evidence.non_null == 0:
        evidence.can_int = evidence.can_float = evidence.can_bool = evidence.can_datetime = True


def dataset_name_for(path: str | Path) -> str:
    """A contract dataset name from a file name: `Breast Cancer.csv.gz` -> `breast_cancer`."""
    stem = Path(path).name
    for suffix in (".csv.gz", ".csv", ".parquet"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    cleaned = re.sub(r"[^0-9a-z]+", "_", stem.lower()).strip("_")
    return cleaned or "dataset"


def infer_contract(
    source: str | Path | IO[bytes] | Any,
    *,
    dataset: str,
    target: str | None = None,
    name: str | None = None,
    limits: Limits | None = None,
) -> Contract:
    """Propose a contract that accepts `source`; raises InputError for unreadable input."""
    limits = limits or Limits()
    if not isinstance(source, (str, Path)):
        raise InputError("contract inference reads the sample twice: give a file path")
    columns, tables = read_tables(source, name=name, limits=limits)
    evidence = {column: _Evidence() for column in columns}
    for table in tables:
        for column in columns:
            values = table.column(column).combine_chunks()
            if pa.types.is_string(values.type):
                _observe_strings(evidence[column], values)
            else:
                _observe_typed(evidence[column], values)
    if target is not None and target not in evidence:
        raise InputError(f"--target {target!r} is not a column (columns: {columns[:10]})")
    if target is None:
        target = next((c for c in columns if c.strip().lower() in TARGET_NAMES), None)
    probe = Contract(
        dataset=dataset,
        columns={
            # Text is probed as `category` so the profile counts its values (up to a cap).
            column: ColumnSpec(
                type="category" if seen.kind() == "string" else seen.kind(),  # type: ignore[arg-type]
                nullable=True,
                allow_nan=seen.kind() == "float",
                allow_inf=seen.kind() == "float",
                allow_numeric=seen.kind() == "string",
            )
            for column, seen in evidence.items()
        },
        min_rows=0,
    )
    report = validate(source, probe, name=name, limits=limits)
    if report.violations:
        first = report.violations[0]
        raise InputError(f"{report.source}: cannot infer a contract: {first.message}")
    specs = {
        column: _propose(
            evidence[column], report.profile.columns[column], is_target=column == target
        )
        for column in columns
    }
    return Contract(dataset=dataset, columns=specs, target=target, min_rows=1)


def _propose(seen: _Evidence, profile: ColumnProfile, *, is_target: bool) -> ColumnSpec:
    kind = seen.kind()
    fields: dict[str, Any] = {"type": kind, "nullable": profile.nulls > 0}
    numeric = profile.numeric
    if kind in ("int", "float") and numeric is not None and numeric.count:
        fields["min"] = numeric.min
        fields["max"] = numeric.max
        if kind == "float":
            fields["allow_nan"] = numeric.nan > 0
            fields["allow_inf"] = numeric.pos_inf + numeric.neg_inf > 0
    if kind == "int" and is_target and numeric is not None:
        values = _small_int_range(numeric.min, numeric.max)
        if values is not None:
            fields["allowed"] = values
    if kind == "string":
        categories = profile.categories
        non_null = profile.rows - profile.nulls
        if (
            categories is not None
            and not categories.overflow
            and 0 < len(categories.counts) <= MAX_CATEGORIES
            and len(categories.counts) * 2 <= non_null
        ):
            fields["type"] = "category"
            fields["allowed"] = sorted(categories.counts)
        elif seen.numeric_text:
            fields["allow_numeric"] = True
    return ColumnSpec(**fields)


def _small_int_range(low: float | int | None, high: float | int | None) -> list[int] | None:
    """Class labels of a classification target: a short run of integers."""
    if low is None or high is None or int(high) - int(low) >= MAX_CATEGORIES:
        return None
    return list(range(int(low), int(high) + 1))


def contract_to_yaml(contract: Contract) -> str:
    """YAML for a contract: defaults left out, type and nullability first, columns in order."""
    document = contract.model_dump(mode="json", exclude_defaults=True)
    columns: dict[str, dict[str, Any]] = {}
    for column, spec in contract.columns.items():
        fields = spec.model_dump(mode="json", exclude_defaults=True)
        fields.pop("type", None)
        fields.pop("nullable", None)
        if spec.type == "int":
            for bound in ("min", "max"):
                if bound in fields and float(fields[bound]).is_integer():
                    fields[bound] = int(fields[bound])
        columns[column] = {"type": spec.type, "nullable": spec.nullable, **fields}
    document.pop("columns")
    ordered = {"dataset": document.pop("dataset"), **document, "columns": columns}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=100)
