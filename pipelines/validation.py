"""The one validator: checks a CSV/Parquet upload against its contract and profiles it in one pass.

The validator Lambda and `driftline validate` both call `validate`. It reads the input once, in
bounded chunks (see `tabular_io`), and for each chunk converts columns to their contract types,
applies every column rule vectorised with pyarrow.compute, tracks keys for uniqueness, and
folds the chunk into a mergeable profile (see `profile`). Every broken rule is collected with a
row count and sample row numbers; nothing stops at the first problem except damage that makes
the rest of the bytes unreadable (not gzip, a gzip bomb, a line past the limit), which ends
reading with a violation saying so and `complete: false`.

Speed comes from not doing work valid data does not need: columns are parsed straight into
their contract types by pyarrow, and the slow, per-value diagnosis (which rows failed and why)
runs only for chunks pyarrow refused or where a cheap aggregate (min/max, null count, value
counts) shows a rule is broken.
"""

from __future__ import annotations

import bisect
import errno
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.contracts import ColumnSpec, Contract, contract_hash
from pipelines.profile import (
    ColumnProfile,
    DatasetProfile,
    NumericStats,
    category_chunk_counts,
    empty_column_profile,
    numeric_chunk_stats,
)
from pipelines.tabular_io import (
    BoundedGzipReader,
    ChainReader,
    DataProblem,
    HashingReader,
    InputError,
    LineLimitReader,
    RaggedRows,
    RowChunk,
    StrayQuote,
    csv_options,
    detect_format,
    is_straddle_error,
    iter_row_chunks,
    open_path,
    read_csv_header,
    row_bounds,
)
from pipelines.violations import SAMPLE_ROWS, Violation, ViolationCollector

MiB = 1 << 20
TRUE_VALUES = ("1", "True", "TRUE", "true")
FALSE_VALUES = ("0", "False", "FALSE", "false")
_INT_PATTERN = r"^[+-]?[0-9]+$"
_FLOAT_PATTERN = r"(?i)^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?|nan|inf|infinity)$"
_NUMBER_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_ISO_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?$"
_ALTERNATE_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class Limits:
    """Resource bounds: whatever the input, memory stays within a few blocks plus key tracking.

    `block_size` is the CSV chunk size; a single row may be up to `max_line_bytes` long (its
    line ending not counted). `max_decompressed_bytes` caps what a `.csv.gz` may expand to,
    and `max_gzip_ratio` how much each `gzip_ratio_window` of its output may expand (gzip
    bombs stop at the first window). `max_parquet_bytes` bounds a Parquet object, which is
    spooled to the temporary directory: the validator functions have 10,240 MiB of `/tmp`.
    `parse_workers` threads parse chunks in parallel
    (0: one per CPU, at most 4); up to `parse_workers + 1` chunks are in flight.
    `max_tracked_rows` bounds uniqueness and duplicate-row checks (12 bytes per tracked row,
    about 28 while sorting at the end); past it those checks cover the first rows only and a
    warning says so.
    """

    block_size: int = 8 * MiB
    max_line_bytes: int = 10 * MiB
    max_columns: int = 2000
    max_decompressed_bytes: int = 16 * 1024 * MiB
    # DEFLATE tops out at 1032:1 (runs of one byte); the widest CSV allowed, 2,000 sparse
    # one-hot columns, compresses about 565:1 with `gzip -9`.
    max_gzip_ratio: int = 800
    gzip_ratio_window: int = 16 * MiB
    max_parquet_bytes: int = 10_000 * MiB
    max_tracked_rows: int = 8_000_000
    category_cap: int = 1000
    top_k: int = 20
    histogram_bins: int = 32
    parquet_batch_rows: int = 65_536
    parse_workers: int = 0

    def __post_init__(self) -> None:
        for name in (
            "block_size",
            "max_line_bytes",
            "max_columns",
            "max_decompressed_bytes",
            "max_gzip_ratio",
            "gzip_ratio_window",
            "max_parquet_bytes",
            "category_cap",
            "histogram_bins",
            "parquet_batch_rows",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be positive")
        if self.max_tracked_rows < 0 or self.top_k < 0 or self.parse_workers < 0:
            raise ValueError("Limits.max_tracked_rows, top_k, parse_workers must not be negative")


@dataclass
class ValidationReport:
    """The verdict on one input: `valid` is true exactly when there is no violation."""

    valid: bool
    violations: list[Violation]
    warnings: list[str]
    profile: DatasetProfile
    rows: int
    columns: list[str]
    sha256: str
    size: int
    source: str
    format: str
    dataset: str
    contract_hash: str
    complete: bool
    top_k: int = 20

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "violations": [violation.to_dict() for violation in self.violations],
            "warnings": list(self.warnings),
            "rows": self.rows,
            "columns": list(self.columns),
            "sha256": self.sha256,
            "size": self.size,
            "source": self.source,
            "format": self.format,
            "dataset": self.dataset,
            "contract_hash": self.contract_hash,
            "complete": self.complete,
            "profile": self.profile.to_dict(self.top_k),
        }


# --- row numbering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RowMap:
    """Maps positions in a parsed chunk to 1-based data row numbers of the whole input.

    Ragged rows are dropped by the parser, so positions after one are shifted; `skipped` holds
    their 1-based numbers within the chunk.
    """

    base: int
    skipped: tuple[int, ...] = ()

    def numbers(self, positions: Sequence[int]) -> list[int]:
        out = []
        for position in positions:
            number = int(position) + 1
            for skipped in self.skipped:
                if skipped <= number:
                    number += 1
                else:
                    break
            out.append(self.base + number)
        return out


def _mask_rows(mask: pa.Array | pa.ChunkedArray) -> tuple[int, np.ndarray]:
    filled = pc.fill_null(mask, False)
    count = int(pc.sum(filled).as_py() or 0)
    if count == 0:
        return 0, np.empty(0, dtype=np.int64)
    flags = filled.to_numpy(zero_copy_only=False)
    return count, np.flatnonzero(flags)[:SAMPLE_ROWS]


# --- key tracking for unique / primary key / duplicate rows -----------------------------------

_MIX = np.uint64(0x9E3779B97F4A7C15)
_NULL_HASH = np.uint64(0x5BD1E9955BD1E995)


def _splitmix(values: np.ndarray) -> np.ndarray:
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _column_hash(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hash per row and a null mask; exact (the value itself) for integers."""
    nulls = values.is_null().to_numpy(zero_copy_only=False)
    kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_timestamp(kind):
        raw = pc.fill_null(values.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        hashed = raw.view(np.uint64)
    elif pa.types.is_floating(kind):
        floats = pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False) + 0.0
        floats[np.isnan(floats)] = np.nan
        hashed = np.ascontiguousarray(floats).view(np.uint64)
    elif pa.types.is_boolean(kind):
        hashed = pc.fill_null(values, False).to_numpy(zero_copy_only=False).astype(np.uint64)
    else:
        encoded = values if pa.types.is_dictionary(kind) else values.dictionary_encode()
        # Python's str hash is stable within a process, which is all one validation needs.
        table = np.array([hash(v) for v in encoded.dictionary.to_pylist()], dtype=np.int64).view(
            np.uint64
        )
        indices = pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)
        hashed = table[indices] if table.size else np.zeros(len(values), dtype=np.uint64)
    hashed = np.where(nulls, _NULL_HASH, hashed)
    return hashed, nulls


class KeyTracker:
    """Finds repeated keys over the whole input by sorting 64-bit row keys once at the end.

    A single integer column is tracked by value (exact); other keys by a 64-bit hash, where a
    false duplicate needs a hash collision (probability about n^2 / 2^65: 3e-8 at a million rows).
    """

    def __init__(
        self, *, rule: str, columns: list[str], skip_nulls: bool, budget: list[int]
    ) -> None:
        self.rule = rule
        self.columns = columns
        self._skip_nulls = skip_nulls
        self._budget = budget
        self._keys: list[np.ndarray] = []
        self._positions: list[np.ndarray] = []
        self._row_maps: list[tuple[int, RowMap]] = []
        self._tracked = 0
        self.truncated = False

    def add(self, arrays: list[pa.Array], row_map: RowMap) -> None:
        if self.truncated or not arrays:
            return
        length = len(arrays[0])
        keys: np.ndarray | None = None
        any_null = np.zeros(length, dtype=bool)
        exact = len(arrays) == 1 and (
            pa.types.is_integer(arrays[0].type) or pa.types.is_timestamp(arrays[0].type)
        )
        for array in arrays:
            hashed, nulls = _column_hash(array)
            any_null |= nulls
            keys = hashed if keys is None else (keys * _MIX) ^ hashed
        assert keys is not None
        if not exact:
            keys = _splitmix(keys)
        positions = np.arange(length, dtype=np.int32)
        if self._skip_nulls and any_null.any():
            keys, positions = keys[~any_null], positions[~any_null]
        room = self._budget[0]
        if len(keys) > room:
            keys, positions = keys[:room], positions[:room]
            self.truncated = True
        self._budget[0] -= len(keys)
        self._row_maps.append((self._tracked, row_map))
        self._keys.append(np.ascontiguousarray(keys))
        self._positions.append(positions)
        self._tracked += len(keys)

    def duplicates(self) -> tuple[int, list[int]]:
        """Rows repeating an earlier row's key: their count and the first few row numbers."""
        if not self._keys:
            return 0, []
        keys = np.concatenate(self._keys)
        self._keys = []
        if keys.size < 2 or bool(np.all(keys[1:] > keys[:-1])):
            return 0, []
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        repeats = order[1:][ordered[1:] == ordered[:-1]]
        del keys, ordered
        if repeats.size == 0:
            return 0, []
        first = np.sort(repeats)[:SAMPLE_ROWS]
        positions = np.concatenate(self._positions)
        starts = [start for start, _ in self._row_maps]
        rows = []
        for index in first.tolist():
            chunk = bisect.bisect_right(starts, index) - 1
            _, row_map = self._row_maps[chunk]
            rows.extend(row_map.numbers([int(positions[index])]))
        return int(repeats.size), rows


# --- conversion to contract types -------------------------------------------------------------


def arrow_type(spec: ColumnSpec) -> pa.DataType:
    """The Arrow type a column is held in once converted."""
    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "datetime": pa.timestamp("us"),
        "string": pa.string(),
        "category": pa.string(),
    }[spec.type]


def fast_read_type(spec: ColumnSpec) -> pa.DataType:
    """What pyarrow's CSV reader is asked to produce directly (formatted datetimes: strings)."""
    if spec.type == "datetime" and spec.format is not None:
        return pa.string()
    if spec.type == "category":
        # Dictionary-encoded while parsing (in the parser threads): value counts, allowed values,
        # regexes and hashing then work on the few distinct values, not on every row.
        return pa.dictionary(pa.int32(), pa.string())
    return arrow_type(spec)


@dataclass
class Problem:
    rule: str
    message: str
    mask: np.ndarray


def _single_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            return values.chunk(0)
        if values.num_chunks == 0:
            return pa.array([], type=values.type)
        return values.combine_chunks()
    return values


def _null_where(values: pa.Array, mask: np.ndarray) -> pa.Array:
    if not mask.any():
        return values
    return pc.if_else(pa.array(mask), pa.scalar(None, type=values.type), values)


def _utf8(values: pa.Array, column: str) -> tuple[pa.Array, list[Problem]]:
    """Binary → string, nulling values that are not UTF-8 (found without a per-row loop)."""
    try:
        return values.cast(pa.string()), []
    except pa.ArrowInvalid:
        pass
    values = values.cast(pa.binary())
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[
        values.offset : values.offset + len(values) + 1
    ]
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)
    high = np.flatnonzero(data[offsets[0] : offsets[-1]] >= 0x80) + offsets[0]
    candidates = np.unique(np.searchsorted(offsets, high, side="right") - 1)
    bad = np.zeros(len(values), dtype=bool)
    for index in candidates.tolist():
        raw = values[index].as_py()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            bad[index] = True
    cleaned = _null_where(values, bad).cast(pa.string())
    return cleaned, [Problem("encoding", f"column {column!r} has bytes that are not UTF-8", bad)]


def _cast_or_bisect(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, list[int]]:
    """Cast, isolating the values that refuse to convert by bisection (few after prefilter)."""
    try:
        return values.cast(target), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) <= 1:
            return pa.nulls(len(values), type=target), list(range(len(values)))
    middle = len(values) // 2
    left, left_bad = _cast_or_bisect(values.slice(0, middle), target)
    right, right_bad = _cast_or_bisect(values.slice(middle), target)
    return pa.concat_arrays([left, right]), left_bad + [middle + i for i in right_bad]


def _parse_strings(
    spec: ColumnSpec, strings: pa.Array, column: str
) -> tuple[pa.Array, list[Problem]]:
    """Strings → the contract type; every value that does not convert is one `type` problem."""
    present = pc.is_valid(strings).to_numpy(zero_copy_only=False)
    if spec.type in ("string", "category"):
        return strings, []
    if spec.type == "bool":
        trues = pc.is_in(strings, value_set=pa.array(TRUE_VALUES))
        falses = pc.is_in(strings, value_set=pa.array(FALSE_VALUES))
        known = pc.or_(trues, falses).to_numpy(zero_copy_only=False)
        unknown = present & ~known
        message = f"column {column!r} holds values that are not booleans"
        return _null_where(trues, unknown), [Problem("type", message, unknown)]
    if spec.type == "datetime" and spec.format is not None:
        parsed = pc.strptime(strings, format=spec.format, unit="us", error_is_null=True)
        bad = present & ~pc.is_valid(parsed).to_numpy(zero_copy_only=False)
        return parsed, [
            Problem(
                "datetime_format",
                f"column {column!r} holds dates not in the format {spec.format!r}",
                bad,
            )
        ]
    trimmed = pc.utf8_trim_whitespace(strings)
    pattern = {"int": _INT_PATTERN, "float": _FLOAT_PATTERN, "datetime": _ISO_PATTERN}[spec.type]
    shaped = pc.fill_null(pc.match_substring_regex(trimmed, pattern), False)
    bad = present & ~shaped.to_numpy(zero_copy_only=False)
    candidates = pc.replace_substring_regex(_null_where(trimmed, bad), r"^\+", "")
    converted, refused = _cast_or_bisect(candidates, arrow_type(spec))
    if refused:
        bad[np.asarray(refused, dtype=np.int64)] = True
    what = {"int": "integers", "float": "numbers", "datetime": "ISO 8601 datetimes"}[spec.type]
    return converted, [Problem("type", f"column {column!r} holds values that are not {what}", bad)]


def coerce(spec: ColumnSpec, values: pa.Array, column: str) -> tuple[pa.Array, list[Problem]]:
    """Any Arrow array → the contract's Arrow type, with a problem per kind of refused value."""
    target = arrow_type(spec)
    kind = values.type
    if kind == target:
        return values, []
    if pa.types.is_dictionary(kind):
        if spec.type == "category" and pa.types.is_string(kind.value_type):
            return values, []
        return coerce(spec, values.cast(kind.value_type), column)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        strings, problems = _utf8(values, column)
        converted, more = _parse_strings(spec, strings, column)
        return converted, problems + more
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _parse_strings(spec, values.cast(pa.string()), column)
    if spec.type in ("int", "float") and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        if spec.type == "int" and pa.types.is_floating(kind):
            return _wrong_type(spec, values, column)
        converted, refused = _cast_or_bisect(values, target)
        bad = np.zeros(len(values), dtype=bool)
        bad[np.asarray(refused, dtype=np.int64)] = True
        return converted, [Problem("type", f"column {column!r} has values out of int64", bad)]
    if spec.type == "datetime" and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            values = (
                values.cast(pa.timestamp(kind.unit)).cast(pa.int64()).cast(pa.timestamp(kind.unit))
            )
        return values.cast(target), []
    return _wrong_type(spec, values, column)


def _wrong_type(spec: ColumnSpec, values: pa.Array, column: str) -> tuple[pa.Array, list[Problem]]:
    present = pc.is_valid(values).to_numpy(zero_copy_only=False)
    message = f"column {column!r} is {values.type}, the contract says {spec.type}"
    return pa.nulls(len(values), type=arrow_type(spec)), [Problem("type", message, present)]


# --- the validation run ------------------------------------------------------------------------


@dataclass
class _Column:
    name: str
    arrow_name: str
    spec: ColumnSpec
    profile: ColumnProfile
    bins: tuple[float, float, int] | None
    allowed: pa.Array | None = None
    regex: str | None = None
    check_numeric_text: bool = False


T = TypeVar("T")
R = TypeVar("R")


def _parse_in_order(
    items: Iterator[T], parse: Callable[[T], R], *, workers: int, ahead: int
) -> Iterator[R]:
    """`map(parse, items)` on a thread pool, in order, with at most `ahead` items in flight.

    pyarrow parses without the GIL, so chunks are parsed in parallel while the caller checks
    the previous one; the bound keeps memory at a few chunks whatever the input size.
    """
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="driftline-parse") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(parse, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


class _Validation:
    """State of one run: bound columns, running profiles, key trackers, violations so far.

    Format readers feed it tables in file order (`check_table`); it never sees bytes, so CSV
    and Parquet are held to exactly the same rules.
    """

    def __init__(self, contract: Contract, limits: Limits, name: str) -> None:
        self.contract = contract
        self.limits = limits
        self.name = name
        self.found = ViolationCollector()
        self.warnings: list[str] = []
        self.columns: list[_Column] = []
        self.header: list[str] = []
        self.rows = 0
        self.profiled_rows = 0
        self.complete = True
        self.trackers: list[KeyTracker] = []
        self._budget = [limits.max_tracked_rows]

    # header -------------------------------------------------------------------------------

    def bind_header(self, raw_names: list[str]) -> list[str] | None:
        """Match header names to the contract; the Arrow names to parse with, or None to stop."""
        contract = self.contract
        if len(raw_names) > self.limits.max_columns:
            self.found.add(
                "too_many_columns",
                f"{self.name}: {len(raw_names)} columns, more than the limit of "
                f"{self.limits.max_columns}",
                count=len(raw_names),
            )
            return None
        names = [name.strip() for name in raw_names]
        trimmed = [raw for raw, name in zip(raw_names, names, strict=True) if raw != name]
        if trimmed:
            self.warnings.append(
                f"column names had surrounding whitespace, trimmed: {trimmed[:10]!r}"
            )
        self.header = names
        arrow_names: list[str] = []
        first_index: dict[str, int] = {}
        for index, name in enumerate(names):
            if name in first_index:
                arrow_names.append(f"\x00duplicate{index}")
            else:
                first_index[name] = index
                arrow_names.append(name)
        for name in first_index:
            occurrences = names.count(name)
            if occurrences > 1:
                self.found.add(
                    "duplicate_column",
                    f"column {name!r} appears {occurrences} times in the header",
                    column=name,
                    count=occurrences - 1,
                )
        expected = list(contract.columns)
        present = [name for name in expected if name in first_index]
        if not present:
            self._explain_unmatched_header(names)
            return None
        for name in expected:
            if name in first_index:
                continue
            if name == contract.target:
                self.found.add("missing_target", f"target column {name!r} is missing", column=name)
            else:
                self.found.add("missing_column", f"column {name!r} is missing", column=name)
        for name in first_index:
            if name in contract.columns:
                continue
            if contract.allow_extra_columns:
                self.warnings.append(f"column {name!r} is not in the contract; ignored")
            else:
                self.found.add(
                    "unexpected_column", f"column {name!r} is not in the contract", column=name
                )
        bins = self.limits.histogram_bins
        for name in present:
            spec = contract.columns[name]
            edges = (
                (float(spec.min), float(spec.max), bins)
                if spec.numeric and spec.min is not None and spec.max is not None
                else None
            )
            column = _Column(
                name=name,
                arrow_name=arrow_names[first_index[name]],
                spec=spec,
                profile=empty_column_profile(
                    spec.type, bins=edges, category_cap=self.limits.category_cap
                ),
                bins=edges,
            )
            if spec.allowed is not None:
                column.allowed = pa.array(
                    [float(v) if spec.type == "float" else v for v in spec.allowed],
                    type=arrow_type(spec),
                )
            if spec.regex is not None:
                column.regex = f"^(?:{spec.regex})$"
            column.check_numeric_text = (
                spec.type in ("string", "category")
                and not spec.allow_numeric
                and spec.allowed is None
                and spec.regex is None
            )
            self.columns.append(column)
        self._make_trackers(present)
        return arrow_names

    def _explain_unmatched_header(self, names: list[str]) -> None:
        expected = list(self.contract.columns)
        wanted = set(expected)
        delimiter = self.contract.delimiter
        for other in _ALTERNATE_DELIMITERS:
            if other == delimiter:
                continue
            pieces = [piece.strip() for name in names for piece in name.split(other)]
            if len(pieces) > len(names) and len(wanted.intersection(pieces)) >= max(
                1, len(wanted) // 2
            ):
                self.found.add(
                    "delimiter",
                    f"{self.name}: the header splits on {other!r}, not on the contract's "
                    f"delimiter {delimiter!r}",
                )
                return
        numeric = sum(1 for name in names if _looks_like_value(name))
        if names and numeric * 2 >= len(names):
            self.found.add(
                "missing_header",
                f"{self.name}: the first row looks like data, not a header "
                f"(expected columns {expected[:5]!r}...)",
            )
            return
        self.found.add(
            "header_mismatch",
            f"{self.name}: no contract column in the header: found {names[:5]!r}, "
            f"expected {expected[:5]!r}",
        )

    def _make_trackers(self, present: list[str]) -> None:
        contract = self.contract
        for name in present:
            if contract.columns[name].unique and contract.primary_key != [name]:
                self.trackers.append(
                    KeyTracker(rule="unique", columns=[name], skip_nulls=True, budget=self._budget)
                )
        if contract.primary_key and all(name in present for name in contract.primary_key):
            self.trackers.append(
                KeyTracker(
                    rule="primary_key",
                    columns=list(contract.primary_key),
                    skip_nulls=True,
                    budget=self._budget,
                )
            )
        if contract.max_duplicate_share is not None:
            self.trackers.append(
                KeyTracker(
                    rule="duplicate_rows",
                    columns=list(present),
                    skip_nulls=False,
                    budget=self._budget,
                )
            )

    # chunks -------------------------------------------------------------------------------

    def check_table(self, table: pa.Table, row_map: RowMap, ragged: int) -> None:
        self.rows += table.num_rows + ragged
        self.profiled_rows += table.num_rows
        typed: dict[str, pa.Array] = {}
        for column in self.columns:
            typed[column.name] = self._check_column(
                column, _single_array(table.column(column.arrow_name)), row_map
            )
        for tracker in self.trackers:
            tracker.add([typed[name] for name in tracker.columns], row_map)

    def _flag(
        self,
        column: _Column,
        rule: str,
        message: str,
        mask: pa.Array | np.ndarray,
        row_map: RowMap,
    ) -> None:
        if isinstance(mask, np.ndarray):
            count = int(np.count_nonzero(mask))
            first = np.flatnonzero(mask)[:SAMPLE_ROWS] if count else mask[:0]
        else:
            count, first = _mask_rows(mask)
        if count:
            self.found.add(
                rule, message, column=column.name, count=count, rows=row_map.numbers(first.tolist())
            )

    def _check_column(self, column: _Column, raw: pa.Array, row_map: RowMap) -> pa.Array:
        spec = column.spec
        values, problems = coerce(spec, raw, column.name)
        refused = np.zeros(len(values), dtype=bool)
        for problem in problems:
            self._flag(column, problem.rule, problem.message, problem.mask, row_map)
            refused |= problem.mask
        profile = column.profile
        profile.rows += len(values)
        nulls = values.null_count - int(np.count_nonzero(refused))
        profile.nulls += nulls
        if nulls and not spec.nullable:
            mask = pc.is_null(values).to_numpy(zero_copy_only=False) & ~refused
            self._flag(column, "not_null", f"column {column.name!r} has nulls", mask, row_map)
        if spec.type in ("int", "float"):
            self._check_numeric(column, values, row_map)
        elif spec.type in ("category", "bool"):
            self._check_categories(column, values, row_map)
        elif spec.type == "datetime":
            assert profile.datetimes is not None
            if len(values) - values.null_count:
                extremes = pc.min_max(values.cast(pa.int64()))
                profile.datetimes.add(extremes["min"].as_py(), extremes["max"].as_py())
        else:
            self._check_strings(column, values, row_map)
        return values

    def _check_categories(self, column: _Column, values: pa.Array, row_map: RowMap) -> None:
        """Rules on the distinct values only; rows are located only for values that fail."""
        spec = column.spec
        counts = category_chunk_counts(values)
        assert column.profile.categories is not None
        column.profile.categories.add_counts(counts)
        if spec.type == "bool" or not counts:
            return
        distinct = pa.array([value for value, _ in counts], type=pa.string())
        if column.allowed is not None:
            outside = pc.invert(pc.is_in(distinct, value_set=column.allowed))
            self._flag_values(column, values, distinct.filter(outside), "allowed", row_map)
        if column.regex is not None:
            failing = pc.invert(pc.match_substring_regex(distinct, column.regex))
            self._flag_values(column, values, distinct.filter(failing), "regex", row_map)
        if column.check_numeric_text:
            numbers = pc.match_substring_regex(distinct, _NUMBER_PATTERN)
            self._flag_values(
                column, values, distinct.filter(numbers), "numeric_in_string", row_map
            )

    def _flag_values(
        self, column: _Column, values: pa.Array, bad: pa.Array, rule: str, row_map: RowMap
    ) -> None:
        if len(bad) == 0:
            return
        mask = pc.and_(pc.is_valid(values), pc.is_in(values, value_set=bad))
        self._flag(column, rule, self._message(column, rule), mask, row_map)

    def _message(self, column: _Column, rule: str) -> str:
        spec = column.spec
        if rule == "allowed":
            shown = spec.allowed or []
            more = ", ..." if len(shown) > 10 else ""
            listed = ", ".join(repr(value) for value in shown[:10])
            return f"column {column.name!r} has values outside the allowed [{listed}{more}]"
        if rule == "regex":
            return f"column {column.name!r} has values not matching {spec.regex!r}"
        return (
            f"{spec.type} column {column.name!r} holds numbers "
            "(set allow_numeric: true if that is expected)"
        )

    def _check_strings(self, column: _Column, values: pa.Array, row_map: RowMap) -> None:
        assert column.profile.lengths is not None
        if len(values) - values.null_count:
            extremes = pc.min_max(pc.utf8_length(values))
            column.profile.lengths.add(extremes["min"].as_py(), extremes["max"].as_py())
        if column.allowed is not None:
            outside = pc.and_(
                pc.is_valid(values), pc.invert(pc.is_in(values, value_set=column.allowed))
            )
            self._flag(column, "allowed", self._message(column, "allowed"), outside, row_map)
        if column.regex is not None:
            failing = pc.invert(pc.match_substring_regex(values, column.regex))
            self._flag(column, "regex", self._message(column, "regex"), failing, row_map)
        if column.check_numeric_text:
            candidates = _starts_like_number(values)
            if candidates.any():
                numbers = pc.match_substring_regex(values, _NUMBER_PATTERN)
                rule = "numeric_in_string"
                self._flag(column, rule, self._message(column, rule), numbers, row_map)

    def _flag_not_allowed(self, column: _Column, values: pa.Array, row_map: RowMap) -> None:
        outside = pc.and_(
            pc.is_valid(values), pc.invert(pc.is_in(values, value_set=column.allowed))
        )
        self._flag(column, "allowed", self._message(column, "allowed"), outside, row_map)

    def _check_numeric(self, column: _Column, values: pa.Array, row_map: RowMap) -> None:
        spec = column.spec
        stats = numeric_chunk_stats(values, bins=column.bins)
        profile = column.profile
        assert profile.numeric is not None
        profile.numeric = profile.numeric.merged(stats)
        masks = []
        if stats.nan and not spec.allow_nan:
            masks.append(pc.is_nan(values))
        if (stats.pos_inf or stats.neg_inf) and not spec.allow_inf:
            masks.append(pc.is_inf(values))
        if masks:
            mask = masks[0] if len(masks) == 1 else pc.or_(masks[0], masks[1])
            message = (
                f"column {column.name!r} has NaN or infinite values "
                "(the contract allows them only with allow_nan/allow_inf)"
            )
            self._flag(column, "not_finite", message, mask, row_map)
        self._check_bounds(column, values, stats, row_map)
        if column.allowed is not None:
            self._flag_not_allowed(column, values, row_map)

    def _check_bounds(
        self, column: _Column, values: pa.Array, stats: NumericStats, row_map: RowMap
    ) -> None:
        spec = column.spec
        if stats.min is None or stats.max is None:
            return
        if spec.min is not None and stats.min < spec.min:
            below = pc.and_(pc.less(values, spec.min), pc.is_finite(values))
            self._flag(
                column,
                "min",
                f"column {column.name!r} has values below {spec.min:g}",
                below,
                row_map,
            )
        if spec.max is not None and stats.max > spec.max:
            above = pc.and_(pc.greater(values, spec.max), pc.is_finite(values))
            self._flag(
                column,
                "max",
                f"column {column.name!r} has values above {spec.max:g}",
                above,
                row_map,
            )

    # end ----------------------------------------------------------------------------------

    def stop(self, problem: DataProblem) -> None:
        self.found.add(
            problem.rule,
            problem.message,
            column=problem.column,
            count=problem.count,
            rows=problem.rows,
        )
        self.complete = False

    def finish(self) -> tuple[list[Violation], list[str], DatasetProfile]:
        contract = self.contract
        if self.complete and self.rows < contract.min_rows:
            self.found.add(
                "min_rows",
                f"{self.name}: {self.rows} data rows, fewer than min_rows {contract.min_rows}",
            )
        if contract.max_rows is not None and self.rows > contract.max_rows:
            self.found.add(
                "max_rows",
                f"{self.name}: {self.rows} data rows, more than max_rows {contract.max_rows}",
                count=self.rows - contract.max_rows,
            )
        for tracker in self.trackers:
            count, rows = tracker.duplicates()
            label = ", ".join(tracker.columns)
            if tracker.truncated:
                self.warnings.append(
                    f"{tracker.rule} check of ({label}) covers only the first rows: "
                    f"limit of {self.limits.max_tracked_rows} tracked rows reached"
                )
            if tracker.rule == "duplicate_rows":
                share = count / self.profiled_rows if self.profiled_rows else 0.0
                assert contract.max_duplicate_share is not None
                if share > contract.max_duplicate_share:
                    self.found.add(
                        "duplicate_rows",
                        f"{share:.2%} of rows are duplicates, more than max_duplicate_share "
                        f"{contract.max_duplicate_share:.2%}",
                        count=count,
                        rows=rows,
                    )
            elif count:
                column = tracker.columns[0] if len(tracker.columns) == 1 else label
                what = "primary key" if tracker.rule == "primary_key" else "unique column"
                self.found.add(
                    tracker.rule,
                    f"{what} ({label}) has repeated values",
                    column=column,
                    count=count,
                    rows=rows,
                )
        profile = DatasetProfile(
            rows=self.profiled_rows,
            columns={column.name: column.profile for column in self.columns},
        )
        return self.found.violations(), self.warnings, profile


def _starts_like_number(values: pa.Array) -> np.ndarray:
    """Rows whose first byte could start a number: a cheap filter before the number regex."""
    strings = values.cast(pa.string()) if values.type != pa.string() else values
    if len(strings) == 0:
        return np.zeros(0, dtype=bool)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[
        strings.offset : strings.offset + len(strings) + 1
    ]
    data_buffer = strings.buffers()[2]
    if data_buffer is None:
        return np.zeros(len(strings), dtype=bool)
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    starts = offsets[:-1]
    non_empty = (offsets[1:] > starts) & pc.is_valid(strings).to_numpy(zero_copy_only=False)
    first = data[np.minimum(starts, max(data.size - 1, 0))] if data.size else starts * 0
    numeric_start = ((first >= ord("0")) & (first <= ord("9"))) | np.isin(
        first, np.frombuffer(b"+-.", dtype=np.uint8)
    )
    return np.asarray(non_empty & numeric_start)


def _looks_like_value(text: str) -> bool:
    stripped = text.strip()
    if not stripped:
        return True
    try:
        float(stripped)
    except ValueError:
        return False
    return True


# --- readers -----------------------------------------------------------------------------------


@dataclass
class _ParsedChunk:
    """A parsed table; row numbers in it are relative to the chunk (1 = its first row)."""

    table: pa.Table
    skipped: tuple[int, ...] = ()
    problems: list[DataProblem] = field(default_factory=list)
    unnumbered: int = 0  # ragged rows pyarrow gave no number for; counted all the same
    dropped: tuple[int, ...] = ()  # rows over the line limit, cut out before parsing
    nuls: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (column, positions)

    @property
    def ragged(self) -> int:
        return len(self.skipped) + self.unnumbered


class _CsvParser:
    """Parses row-aligned CSV chunks into contract-typed tables (thread-safe, no shared state)."""

    def __init__(
        self,
        *,
        name: str,
        limits: Limits,
        delimiter: str,
        null_values: list[str],
        names: list[str],
        types: dict[str, pa.DataType],
    ) -> None:
        self.name = name
        self.limits = limits
        self.delimiter = delimiter
        self.null_values = null_values
        self.names = names
        self.include = list(types)
        self.fast_types = types
        self.slow_types = dict.fromkeys(types, pa.binary())

    def _options(
        self, *, slow: bool, block_size: int, quoted: bool, ragged: RaggedRows
    ) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
        return csv_options(
            names=self.names,
            include=self.include,
            column_types=self.slow_types if slow else self.fast_types,
            delimiter=self.delimiter,
            null_values=self.null_values,
            block_size=block_size,
            use_threads=False,
            quoted=quoted,
            ragged=ragged,
        )

    def parse(self, chunk: RowChunk) -> _ParsedChunk:
        """Typed parse; a chunk pyarrow refuses is re-parsed as bytes for per-value diagnosis.

        Rows longer than `max_line_bytes` are flagged and cut out first (only a chunk longer
        than the limit can hold one), so each row left fits pyarrow's block. NUL bytes, found
        with one `memchr`, are located by column and row with an extra parse as bytes.
        """
        limits = self.limits
        data: bytes | bytearray = chunk.data
        end = chunk.end
        problems: list[DataProblem] = []
        dropped: tuple[int, ...] = ()
        if end > limits.max_line_bytes:
            cut = self._cut_long_rows(chunk.view())
            if cut is not None:
                data, dropped, problem = cut
                end = len(data)
                problems.append(problem)
        view = memoryview(data)[:end]
        quoted = data.find(b'"', 0, end) >= 0
        block = limits.max_line_bytes + 1
        slow = False
        while True:
            ragged = RaggedRows()
            options = self._options(slow=slow, block_size=block, quoted=quoted, ragged=ragged)
            try:
                table = pacsv.read_csv(pa.py_buffer(view), *options)
            except pa.ArrowInvalid as error:
                if is_straddle_error(error) and block <= end:
                    block = end + 1
                    continue
                if not slow and "conversion error" in str(error):
                    slow = True
                    continue
                raise DataProblem("parse", f"{self.name}: {str(error).splitlines()[0]}") from None
            numbers = sorted(ragged.numbers)
            if dropped:  # pyarrow numbered the rows left; back to the chunk's numbering
                numbers = RowMap(0, dropped).numbers([number - 1 for number in numbers])
            parsed = _ParsedChunk(
                table, tuple(numbers), problems, ragged.count - len(numbers), dropped
            )
            if data.find(b"\x00", 0, end) >= 0:
                self._locate_nuls(parsed, view, quoted)
            return parsed

    def _cut_long_rows(self, view: memoryview) -> tuple[bytes, tuple[int, ...], DataProblem] | None:
        """The chunk without its rows over the limit, their numbers and the problem, or None."""
        limit = self.limits.max_line_bytes
        starts, stops, numbers = row_bounds(view, self.delimiter)
        over = np.flatnonzero(stops - starts > limit)
        if not over.size:
            return None
        kept: list[memoryview] = []
        cursor = 0
        for index in over.tolist():
            kept.append(view[cursor : int(starts[index])])
            cursor = int(starts[index + 1]) if index + 1 < len(starts) else len(view)
        kept.append(view[cursor:])
        dropped = tuple(int(number) for number in numbers[over])
        longest = int((stops - starts)[over].max())
        problem = DataProblem(
            "line_too_long",
            f"{self.name}: a row of {longest} bytes is longer than the limit of {limit} bytes",
            dropped,
            count=len(dropped),
        )
        return b"".join(kept) or b"\n", dropped, problem  # a blank line parses to no rows

    def _locate_nuls(self, parsed: _ParsedChunk, view: memoryview, quoted: bool) -> None:
        """Columns and positions of NUL bytes, from a parse of every column as bytes."""
        options = csv_options(
            names=self.names,
            include=self.names,
            column_types=dict.fromkeys(self.names, pa.binary()),
            delimiter=self.delimiter,
            null_values=self.null_values,
            block_size=len(view) + 1,
            use_threads=False,
            quoted=quoted,
            ragged=RaggedRows(),
        )
        try:
            table = pacsv.read_csv(pa.py_buffer(view), *options)
        except pa.ArrowInvalid:
            table = None
        if table is not None:
            parsed.nuls = self.nul_positions(table)
        if not parsed.nuls:  # in rows the parser skipped (ragged): located by bytes alone
            starts, _, numbers = row_bounds(view, self.delimiter)
            found = np.flatnonzero(np.frombuffer(view, dtype=np.uint8) == 0)
            rows = np.unique(numbers[np.searchsorted(starts, found, side="right") - 1])
            parsed.problems.append(
                DataProblem(
                    "binary",
                    f"{self.name}: NUL bytes in a row that could not be parsed: binary data",
                    tuple(int(row) for row in rows[:SAMPLE_ROWS]),
                    count=len(rows),
                )
            )

    def nul_positions(self, table: pa.Table) -> list[tuple[int, np.ndarray]]:
        """(index in the header, row positions) of each column of bytes holding a NUL."""
        found = []
        for name in table.column_names:
            values = table.column(name)
            if not (pa.types.is_binary(values.type) or pa.types.is_string(values.type)):
                continue
            mask = pc.fill_null(pc.match_substring(values, "\x00"), False)
            positions = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            if positions.size:
                found.append((self.names.index(name), positions))
        return found

    def stream(self, source: IO[bytes] | Any) -> Iterator[_ParsedChunk]:
        """The exact fallback after a stray quote: pyarrow's own single-threaded reader.

        Its input ends before the first line over the limit (pyarrow alone would let rows of
        nearly twice its block size through); that line is then reported as the next row.
        """
        ragged = RaggedRows()
        limits = self.limits
        options = self._options(
            slow=True,
            block_size=limits.max_line_bytes + 1,
            quoted=True,
            ragged=ragged,
        )
        limited = LineLimitReader(source, limits.max_line_bytes)
        too_long = DataProblem(
            "line_too_long",
            f"{self.name}: a row is longer than the limit of {limits.max_line_bytes} bytes",
        )
        cursor = 0
        located = False
        empty: pa.Table | None = None
        try:
            for batch in pacsv.open_csv(limited, *options):
                end = cursor + batch.num_rows
                numbers = sorted(ragged.numbers)
                for number in numbers:
                    if cursor < number <= end:
                        end += 1
                skipped = tuple(n - cursor for n in numbers if cursor < n <= end)
                ragged.numbers = [n for n in numbers if n > end]
                table = pa.Table.from_batches([batch])
                nuls = self.nul_positions(table) if limited.nul else []
                located = located or bool(nuls)
                empty = table.slice(0, 0)
                yield _ParsedChunk(table, skipped, nuls=nuls)
                cursor = end
        except pa.ArrowInvalid as error:
            if limited.too_long or is_straddle_error(error):
                raise too_long from None
            raise DataProblem("parse", f"{self.name}: {str(error).splitlines()[0]}") from None
        if limited.nul and not located and empty is not None:
            problem = DataProblem("binary", f"{self.name}: NUL bytes outside the checked columns")
            yield _ParsedChunk(empty, problems=[problem])
        if limited.too_long:
            raise too_long


def _parsed_chunks(
    parser: _CsvParser, reader: IO[bytes] | Any, head: bytes
) -> Iterator[_ParsedChunk]:
    """Parsed chunks in file order; a reading problem is raised after the chunks before it."""
    limits = parser.limits
    stopped: list[BaseException] = []

    def row_chunks() -> Iterator[RowChunk]:
        try:
            yield from iter_row_chunks(
                reader,
                head,
                block_size=limits.block_size,
                max_line_bytes=limits.max_line_bytes,
                delimiter=parser.delimiter,
                name=parser.name,
            )
        except (StrayQuote, DataProblem) as error:
            stopped.append(error)

    workers = limits.parse_workers or min(4, os.cpu_count() or 1)
    yield from _parse_in_order(row_chunks(), parser.parse, workers=workers, ahead=workers + 1)
    for error in stopped:
        if isinstance(error, StrayQuote):
            yield from parser.stream(ChainReader(error.buffered, reader))
        else:
            raise error


def _validate_csv(run: _Validation, reader: IO[bytes] | Any) -> None:
    header = read_csv_header(
        reader,
        delimiter=run.contract.delimiter,
        max_line_bytes=run.limits.max_line_bytes,
        name=run.name,
    )
    if header.empty:
        raise DataProblem("empty_file", f"{run.name}: the file is empty")
    arrow_names = run.bind_header(header.names)
    if arrow_names is None:
        run.complete = False
        return
    parser = _CsvParser(
        name=run.name,
        limits=run.limits,
        delimiter=run.contract.delimiter,
        null_values=list(run.contract.null_values),
        names=arrow_names,
        types={column.arrow_name: fast_read_type(column.spec) for column in run.columns},
    )
    rows_before = 0
    try:
        for parsed in _parsed_chunks(parser, reader, header.rest):
            row_map = RowMap(rows_before, tuple(sorted(parsed.skipped + parsed.dropped)))
            for problem in parsed.problems:
                rows = [rows_before + row for row in problem.rows]
                run.found.add(
                    problem.rule,
                    problem.message,
                    column=problem.column,
                    count=problem.count,
                    rows=rows,
                )
            for index, positions in parsed.nuls:
                name = run.header[index]
                run.found.add(
                    "binary",
                    f"column {name!r} holds NUL bytes: binary data, not text",
                    column=name,
                    count=len(positions),
                    rows=row_map.numbers(positions[:SAMPLE_ROWS].tolist()),
                )
            if parsed.ragged:
                run.found.add(
                    "ragged_row",
                    f"rows with a number of fields other than the header's {len(arrow_names)}",
                    count=parsed.ragged,
                    rows=[rows_before + number for number in parsed.skipped],
                )
            run.check_table(parsed.table, row_map, parsed.ragged + len(parsed.dropped))
            rows_before += parsed.table.num_rows + parsed.ragged + len(parsed.dropped)
    except DataProblem as problem:
        if problem.rule == "line_too_long" and not problem.rows:
            problem.rows = (rows_before + 1,)  # reading stopped at the row after the last read
        raise


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _too_large(name: str, size: int, limit: int) -> DataProblem:
    return DataProblem(
        "too_large",
        f"{name}: {size} bytes of Parquet, more than the limit of {limit} bytes "
        "(Parquet is copied to the function's /tmp: partition it into parts)",
    )


def _spool_file() -> IO[bytes]:
    """Memory up to 64 MiB, then a file in the temporary directory (`/tmp` on Lambda)."""
    return tempfile.SpooledTemporaryFile(max_size=64 * MiB)


def _seekable_copy(hashing: HashingReader, limit: int, name: str) -> IO[bytes]:
    """Parquet needs random access; a stream is spooled (memory first, then disk) while hashed.

    A full disk is the file's size problem, not a crash: `too_large`, like the limit.
    """
    spool = _spool_file()
    try:
        while True:
            data = hashing.read(MiB)
            if not data:
                break
            if hashing.size > limit:
                raise _too_large(name, hashing.size, limit)
            spool.write(data)
        spool.seek(0)
    except OSError as error:
        spool.close()
        if error.errno not in _NO_SPACE:
            raise
        raise DataProblem(
            "too_large",
            f"{name}: does not fit in the temporary directory for Parquet "
            f"({tempfile.gettempdir()} full after {hashing.size} bytes: {error.strerror})",
        ) from None
    except DataProblem:
        spool.close()
        raise
    return spool


def _validate_parquet(run: _Validation, hashing: HashingReader, size: int | None) -> None:
    limit = run.limits.max_parquet_bytes
    if size is not None and size > limit:
        raise _too_large(run.name, size, limit)  # from the object's size, before reading it
    spool = _seekable_copy(hashing, limit, run.name)
    if hashing.size == 0:
        spool.close()
        raise DataProblem("empty_file", f"{run.name}: the file is empty")
    with spool:
        try:
            parquet = pq.ParquetFile(spool, pre_buffer=False, buffer_size=MiB)
        except (pa.ArrowException, OSError) as error:
            raise DataProblem(
                "not_parquet", f"{run.name}: not a readable Parquet file: {error}"
            ) from None
        if parquet.metadata.num_rows == 0 and not parquet.schema_arrow.names:
            raise DataProblem("empty_file", f"{run.name}: the Parquet file has no columns")
        arrow_names = run.bind_header(list(parquet.schema_arrow.names))
        if arrow_names is None:
            run.complete = False
            return
        wanted = [column.arrow_name for column in run.columns]
        rows_before = 0
        try:
            for batch in parquet.iter_batches(
                batch_size=run.limits.parquet_batch_rows, columns=wanted, use_threads=True
            ):
                run.check_table(pa.Table.from_batches([batch]), RowMap(rows_before), 0)
                rows_before += batch.num_rows
        except (pa.ArrowException, OSError) as error:
            raise DataProblem(
                "not_parquet", f"{run.name}: Parquet data unreadable: {error}"
            ) from None


def _gunzip(stream: IO[bytes] | Any, limits: Limits, name: str) -> BoundedGzipReader:
    return BoundedGzipReader(
        stream,
        limits.max_decompressed_bytes,
        name,
        max_ratio=limits.max_gzip_ratio,
        ratio_window=limits.gzip_ratio_window,
    )


def _open(
    source: str | Path | IO[bytes] | Any, name: str | None
) -> tuple[str, str, IO[bytes] | Any, bool]:
    if isinstance(source, (str, Path)):
        label = name or str(source)
        return label, detect_format(label), open_path(source), True
    if name is None:
        raise InputError("a stream needs a name (its key) to tell its format")
    return name, detect_format(name), source, False


def read_tables(
    source: str | Path | IO[bytes] | Any,
    *,
    name: str | None = None,
    limits: Limits | None = None,
    delimiter: str = ",",
    null_values: Sequence[str] = ("",),
) -> tuple[list[str], Iterator[pa.Table]]:
    """Column names and the data in bounded tables: CSV columns as strings, Parquet as stored.

    For tools that look at data before a contract exists (contract inference). Damaged input
    raises `InputError`, since without a contract there is no report to put a violation in.
    """
    limits = limits or Limits()
    label, fmt, stream, owned = _open(source, name)
    try:
        if fmt == "parquet":
            spool = _seekable_copy(HashingReader(stream), limits.max_parquet_bytes, label)
            try:
                parquet = pq.ParquetFile(spool, pre_buffer=False, buffer_size=MiB)
            except (pa.ArrowException, OSError) as error:
                raise InputError(f"{label}: not a readable Parquet file: {error}") from None
            names = list(parquet.schema_arrow.names)
            batches = parquet.iter_batches(batch_size=limits.parquet_batch_rows)
            handles = [spool, stream] if owned else [spool]
            return names, _closing((pa.Table.from_batches([b]) for b in batches), handles)
        reader: IO[bytes] | Any = stream
        if fmt == "csv.gz":
            reader = _gunzip(stream, limits, label)
        header = read_csv_header(
            reader, delimiter=delimiter, max_line_bytes=limits.max_line_bytes, name=label
        )
    except DataProblem as problem:
        if owned:
            stream.close()
        raise InputError(problem.message) from None
    names = [raw.strip() for raw in header.names]
    unusable = ""
    if header.empty or not names:
        unusable = f"{label}: the file is empty"
    elif len(set(names)) != len(names):
        unusable = f"{label}: the header repeats a column name"
    if unusable:
        if owned:
            stream.close()
        raise InputError(unusable)
    parser = _CsvParser(
        name=label,
        limits=limits,
        delimiter=delimiter,
        null_values=list(null_values),
        names=names,
        types=dict.fromkeys(names, pa.string()),
    )
    chunks = (parsed.table for parsed in _parsed_chunks(parser, reader, header.rest))
    return names, _closing(chunks, [stream] if owned else [])


def _closing(tables: Iterator[pa.Table], handles: list[Any]) -> Iterator[pa.Table]:
    """Yield `tables`, closing `handles` when done; damage found on the way is an InputError."""
    try:
        yield from tables
    except DataProblem as problem:
        raise InputError(problem.message) from None
    finally:
        for handle in handles:
            handle.close()


def validate(
    source: str | Path | IO[bytes] | Any,
    contract: Contract,
    *,
    name: str | None = None,
    limits: Limits | None = None,
    size: int | None = None,
) -> ValidationReport:
    """Validate and profile `source` (a path, or a binary stream with `name` its key).

    `size` is the object's size when known (the S3 event says it; a path's is read here):
    a Parquet object over `Limits.max_parquet_bytes` is rejected before a byte is read.
    Raises `InputError` only when the input cannot be opened or its format is unknown; every
    problem with the content is a violation in the report.
    """
    limits = limits or Limits()
    label, fmt, stream, owned = _open(source, name)
    if size is None and owned:
        size = os.fstat(stream.fileno()).st_size
    run = _Validation(contract, limits, label)
    hashing = HashingReader(stream)
    try:
        if fmt == "parquet":
            _validate_parquet(run, hashing, size)
        elif fmt == "csv.gz":
            _validate_csv(run, _gunzip(hashing, limits, label))
        else:
            _validate_csv(run, hashing)
    except DataProblem as problem:
        run.stop(problem)
    finally:
        if owned:
            stream.close()
    violations, warnings, profile = run.finish()
    return ValidationReport(
        valid=not violations,
        violations=violations,
        warnings=warnings,
        profile=profile,
        rows=run.rows,
        columns=list(run.header),
        sha256=hashing.hexdigest(),
        size=hashing.size,
        source=label,
        format=fmt,
        dataset=contract.dataset,
        contract_hash=contract_hash(contract),
        complete=run.complete,
        top_k=limits.top_k,
    )
