"""The validator: every kind of bad input is a violation (never a crash), good input passes,
all problems are collected with row numbers, and profiles merge exactly."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.contracts import Contract, parse_contract
from pipelines.profile import (
    RELATIVE_ACCURACY,
    DatasetProfile,
    NumericStats,
    ProfileMergeError,
    Sketch,
    merge_profiles,
)
from pipelines.tabular_io import BoundedGzipReader, DataProblem, InputError
from pipelines.validation import Limits, ValidationReport, validate

pytestmark = pytest.mark.unit

CONTRACT = parse_contract(
    """
dataset: loans
target: label
columns:
  id: {type: int, unique: true}
  income: {type: float, min: 0, max: 10000, nullable: true}
  city: {type: category, allowed: [Oslo, Lima, Pune]}
  note: {type: string, nullable: true}
  label: {type: int, allowed: [0, 1]}
""",
    source="loans.yaml",
)
HEADER = "id,income,city,note,label\n"
ROWS = [
    "1,1200.5,Oslo,first,0",
    "2,,Lima,,1",
    '3,800,Pune,"has, comma",1',
    "4,950.25,Oslo,plain,0",
]
GOOD = HEADER + "\n".join(ROWS) + "\n"


def write(tmp_path: Path, content: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def check(
    tmp_path: Path,
    content: str | bytes,
    *,
    contract: Contract = CONTRACT,
    name: str = "data.csv",
    limits: Limits | None = None,
) -> ValidationReport:
    return validate(write(tmp_path, content, name), contract, limits=limits)


def rules(report: ValidationReport) -> set[str]:
    return {violation.rule for violation in report.violations}


def violation(report: ValidationReport, rule: str, column: str | None = None) -> dict[str, Any]:
    for found in report.violations:
        if found.rule == rule and (column is None or found.column == column):
            return found.to_dict()
    raise AssertionError(f"no {rule} violation in {report.to_dict()['violations']}")


def assert_rejected(report: ValidationReport, rule: str) -> dict[str, Any]:
    assert not report.valid
    found = violation(report, rule)
    assert "\n" not in str(found["message"])
    json.dumps(report.to_dict())  # the report always serialises
    return found


# --- accepted input ---------------------------------------------------------------------------


def test_a_good_file_is_valid_with_rows_columns_and_hash(tmp_path: Path) -> None:
    report = check(tmp_path, GOOD)
    assert report.valid, report.violations
    assert report.complete
    assert report.rows == 4
    assert report.columns == ["id", "income", "city", "note", "label"]
    assert report.sha256 == hashlib.sha256(GOOD.encode()).hexdigest()
    assert report.size == len(GOOD.encode())
    document = report.to_dict()
    assert document["valid"] is True
    assert document["violations"] == []
    income = document["profile"]["columns"]["income"]
    assert income["nulls"] == 1
    assert income["numeric"]["min"] == 800.0
    assert income["numeric"]["max"] == 1200.5
    assert document["profile"]["columns"]["city"]["top_k"][0] == ["Oslo", 2]


def test_a_binary_stream_with_a_key_is_validated_like_a_file(tmp_path: Path) -> None:
    report = validate(io.BytesIO(GOOD.encode()), CONTRACT, name="s3/key/part-0.csv")
    assert report.valid
    assert report.source == "s3/key/part-0.csv"
    assert report.sha256 == hashlib.sha256(GOOD.encode()).hexdigest()


class _ReadOnlyBody:
    """Like botocore's StreamingBody: `read(n)` only, short reads allowed."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 1000) if size > 0 else size)


@pytest.mark.parametrize("name", ["part.csv", "part.csv.gz", "part.parquet"])
def test_a_read_only_stream_is_validated_in_every_format(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, _quoted_rows(500))
    data = path.read_bytes()
    if name.endswith(".gz"):
        data = gzip.compress(data)
    elif name.endswith(".parquet"):
        data = _to_parquet_bytes(validate(path, CONTRACT), path)
    report = validate(_ReadOnlyBody(data), CONTRACT, name=name, limits=Limits(block_size=4096))
    assert report.valid, report.violations
    assert report.rows == 500
    assert report.sha256 == hashlib.sha256(data).hexdigest()
    assert report.size == len(data)


def _to_parquet_bytes(report: ValidationReport, path: Path) -> bytes:
    assert report.valid
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(path)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    report = check(tmp_path, b"\xef\xbb\xbf" + GOOD.encode())
    assert report.valid, report.violations
    assert report.columns[0] == "id"


def test_crlf_line_endings_are_accepted(tmp_path: Path) -> None:
    report = check(tmp_path, GOOD.replace("\n", "\r\n"))
    assert report.valid, report.violations
    assert report.profile.columns["label"].categories is None
    assert report.profile.columns["note"].lengths is not None
    assert report.profile.columns["note"].lengths.max == len("has, comma")


def test_quoted_fields_with_delimiters_quotes_and_newlines_are_accepted(tmp_path: Path) -> None:
    content = HEADER + '1,10,Oslo,"a, b ""quoted""\nsecond line",0\n2,20,Lima,x,1\n'
    report = check(tmp_path, content)
    assert report.valid, report.violations
    assert report.rows == 2
    assert report.profile.columns["note"].lengths is not None
    assert report.profile.columns["note"].lengths.max == len('a, b "quoted"\nsecond line')


def test_no_trailing_newline_is_accepted(tmp_path: Path) -> None:
    report = check(tmp_path, GOOD.rstrip("\n"))
    assert report.valid, report.violations
    assert report.rows == 4


def test_unicode_column_names_are_trimmed_with_a_warning(tmp_path: Path) -> None:
    contract = parse_contract(
        "dataset: u\ncolumns:\n  größe: {type: float}\n  名前: {type: string}\n", source="u.yaml"
    )
    report = check(tmp_path, " größe ,\t名前\n1.5,太郎\n2.5,花子\n", contract=contract)
    assert report.valid, report.violations
    assert report.columns == ["größe", "名前"]
    assert any("trimmed" in warning for warning in report.warnings)


def test_csv_gz_and_parquet_of_the_same_data_give_the_same_profile(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 5000
    income = rng.gamma(2.0, 900.0, n).round(2)
    table = pa.table(
        {
            "id": pa.array(np.arange(1, n + 1)),
            "income": pa.array(income, mask=rng.random(n) < 0.05),
            "city": pa.array(rng.choice(["Oslo", "Lima", "Pune"], n)),
            "note": pa.array([f"n{i}" for i in range(n)]),
            "label": pa.array(rng.integers(0, 2, n)),
        }
    )
    frame = table.to_pandas()
    gz = tmp_path / "data.csv.gz"
    with gzip.open(gz, "wt", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)
    parquet = tmp_path / "data.parquet"
    pq.write_table(table, parquet, row_group_size=1000)
    from_gz = validate(gz, CONTRACT)
    from_parquet = validate(parquet, CONTRACT)
    assert from_gz.valid, from_gz.violations
    assert from_parquet.valid, from_parquet.violations
    assert from_gz.format == "csv.gz"
    assert from_parquet.format == "parquet"
    assert_same_profile(from_gz.profile, from_parquet.profile)


# --- rejected input ---------------------------------------------------------------------------


def test_an_empty_file_is_rejected(tmp_path: Path) -> None:
    report = check(tmp_path, b"")
    assert_rejected(report, "empty_file")
    assert not report.complete


def test_a_header_without_rows_is_rejected(tmp_path: Path) -> None:
    found = assert_rejected(check(tmp_path, HEADER), "min_rows")
    assert "0 data rows" in str(found["message"])


def test_a_missing_header_is_detected(tmp_path: Path) -> None:
    report = check(tmp_path, "\n".join(ROWS) + "\n")
    found = assert_rejected(report, "missing_header")
    assert "looks like data" in str(found["message"])


def test_a_wrong_delimiter_is_named(tmp_path: Path) -> None:
    report = check(tmp_path, GOOD.replace(",", ";"))
    found = assert_rejected(report, "delimiter")
    assert "';'" in str(found["message"])


def test_ragged_rows_are_reported_with_their_row_numbers(tmp_path: Path) -> None:
    content = (
        HEADER + "1,10,Oslo,a,0\n2,20,Lima\n3,30,Pune,c,1\n4,40,Oslo,d,0,extra\n5,50,Lima,e,1\n"
    )
    report = check(tmp_path, content)
    found = assert_rejected(report, "ragged_row")
    assert found["count"] == 2
    assert found["rows"] == [2, 4]
    assert report.rows == 5
    assert report.profile.rows == 3


def test_non_utf8_bytes_are_reported_with_their_row(tmp_path: Path) -> None:
    content = (HEADER + "1,10,Oslo,fine,0\n2,20,Lima,caf").encode() + b"\xe9,1\n"
    found = assert_rejected(check(tmp_path, content), "encoding")
    assert found["column"] == "note"
    assert found["rows"] == [2]


def test_binary_garbage_is_rejected_without_a_crash(tmp_path: Path) -> None:
    garbage = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    report = check(tmp_path, garbage)
    assert not report.valid
    assert rules(report) & {"binary", "encoding", "header_mismatch", "missing_header"}


def test_a_csv_gz_that_is_not_gzip_is_rejected(tmp_path: Path) -> None:
    assert_rejected(check(tmp_path, GOOD, name="data.csv.gz"), "not_gzip")


def test_a_truncated_gzip_is_rejected(tmp_path: Path) -> None:
    data = gzip.compress(GOOD.encode() * 50)
    assert_rejected(check(tmp_path, data[: len(data) // 2], name="data.csv.gz"), "corrupt_gzip")


def test_a_gzip_bomb_stops_at_the_decompression_limit(tmp_path: Path) -> None:
    bomb = gzip.compress(HEADER.encode() + b"0" * (24 << 20), compresslevel=9)
    assert len(bomb) < 100_000
    limits = Limits(max_decompressed_bytes=2 << 20)
    report = check(tmp_path, bomb, name="bomb.csv.gz", limits=limits)
    found = assert_rejected(report, "decompressed_too_large")
    assert str(2 << 20) in str(found["message"])
    assert not report.complete


def test_a_10000_column_header_is_rejected(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(10_000))
    report = check(tmp_path, header + "\n" + ",".join("1" * 10_000) + "\n")
    found = assert_rejected(report, "too_many_columns")
    assert "10000 columns" in str(found["message"])


def test_a_50_mb_line_is_rejected_at_the_line_limit(tmp_path: Path) -> None:
    content = HEADER.encode() + b"1,10,Oslo," + b"x" * (50 << 20) + b",0\n2,20,Lima,b,1\n"
    report = check(tmp_path, content)
    found = assert_rejected(report, "line_too_long")
    assert str(10 << 20) in str(found["message"])


def test_a_line_over_the_limit_inside_a_chunk_is_flagged_and_reading_goes_on(
    tmp_path: Path,
) -> None:
    long_note = "y" * 5000
    content = HEADER + f"1,10,Oslo,{long_note},0\n2,20,Lima,b,1\n"
    limits = Limits(max_line_bytes=1000, block_size=64 << 10)
    report = check(tmp_path, content, limits=limits)
    found = assert_rejected(report, "line_too_long")
    assert found["rows"] == [1]
    assert report.rows == 2


def test_duplicate_column_names_are_rejected(tmp_path: Path) -> None:
    content = "id,income,city,note,label,income\n1,10,Oslo,a,0,11\n"
    found = assert_rejected(check(tmp_path, content), "duplicate_column")
    assert found["column"] == "income"


def test_nan_and_inf_are_rejected_where_the_contract_forbids_them(tmp_path: Path) -> None:
    content = HEADER + "1,NaN,Oslo,a,0\n2,inf,Lima,b,1\n3,-Infinity,Pune,c,1\n4,5,Oslo,d,0\n"
    found = assert_rejected(check(tmp_path, content), "not_finite")
    assert (found["column"], found["count"], found["rows"]) == ("income", 3, [1, 2, 3])


def test_nan_is_accepted_when_the_contract_allows_it(tmp_path: Path) -> None:
    contract = parse_contract(
        "dataset: x\ncolumns:\n  v: {type: float, allow_nan: true}\n", source="x.yaml"
    )
    report = check(tmp_path, "v\n1.5\nnan\n2.5\n", contract=contract)
    assert report.valid, report.violations
    numeric = report.profile.columns["v"].numeric
    assert numeric is not None
    assert (numeric.nan, numeric.count, numeric.mean) == (1, 2, 2.0)


def test_strings_in_numeric_columns_and_numbers_in_string_columns_are_rejected(
    tmp_path: Path,
) -> None:
    content = HEADER + "1,ten,Oslo,a,0\n2,20,Lima,12345,1\n3,30,Pune,c,1\n"
    report = check(tmp_path, content)
    typed = violation(report, "type", "income")
    assert typed["rows"] == [1]
    numeric = violation(report, "numeric_in_string", "note")
    assert numeric["rows"] == [2]


def test_mixed_date_formats_are_rejected_when_the_contract_names_one(tmp_path: Path) -> None:
    contract = parse_contract(
        "dataset: d\ncolumns:\n  day: {type: datetime, format: '%Y-%m-%d'}\n", source="d.yaml"
    )
    report = check(
        tmp_path, "day\n2024-01-02\n02/01/2024\n2024-01-03\n2024-01-04 10:00\n", contract=contract
    )
    found = assert_rejected(report, "datetime_format")
    assert found["count"] == 2
    assert found["rows"] == [2, 4]
    assert "'%Y-%m-%d'" in str(found["message"])


def test_a_missing_target_column_is_rejected(tmp_path: Path) -> None:
    content = "id,income,city,note\n1,10,Oslo,a\n"
    found = assert_rejected(check(tmp_path, content), "missing_target")
    assert found["column"] == "label"


def test_an_unexpected_column_is_rejected_unless_allowed(tmp_path: Path) -> None:
    content = "id,income,city,note,label,extra\n1,10,Oslo,a,0,x\n"
    assert_rejected(check(tmp_path, content), "unexpected_column")
    relaxed = CONTRACT.model_copy(update={"allow_extra_columns": True})
    report = check(tmp_path, content, contract=relaxed)
    assert report.valid
    assert any("'extra'" in warning for warning in report.warnings)


def test_not_a_parquet_file_is_rejected(tmp_path: Path) -> None:
    assert_rejected(check(tmp_path, GOOD, name="data.parquet"), "not_parquet")


def test_a_parquet_column_of_the_wrong_type_is_rejected(tmp_path: Path) -> None:
    table = pa.table({"v": pa.array([1.5, 2.5]), "s": pa.array(["1", "x"])})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    contract = parse_contract(
        "dataset: t\ncolumns:\n  v: {type: string}\n  s: {type: int}\n", source="t.yaml"
    )
    report = validate(path, contract)
    assert violation(report, "type", "v")["count"] == 2
    assert violation(report, "type", "s")["rows"] == [2]


def test_an_unknown_format_or_missing_file_is_unusable_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown format"):
        validate(write(tmp_path, GOOD, "data.xlsx"), CONTRACT)
    with pytest.raises(InputError, match="file not found"):
        validate(tmp_path / "absent.csv", CONTRACT)


# --- damaged or oversized bytes: gzip members and bombs, the line limit, NUL, Parquet size ----

MiB = 1 << 20
_TAILS = [f",{('Oslo', 'Lima', 'Pune')[k % 3]},n{k % 97},{k % 2}\n" for k in range(582)]


def _rows(start: int, count: int) -> bytes:
    """Deterministic, compressible rows of CONTRACT (about 25 bytes each), fast to make."""
    return "".join(
        f"{i},{i % 9000}.5{_TAILS[i % 582]}" for i in range(start, start + count)
    ).encode()


@pytest.fixture(scope="module")
def two_members() -> tuple[bytes, bytes]:
    """`cat a.gz b.gz` of two members that each decompress to more than 8 MiB (one chunk)."""
    first = HEADER.encode() + _rows(1, 380_000)
    second = _rows(380_001, 380_000)
    assert len(first) > 8 * MiB and len(second) > 8 * MiB
    return gzip.compress(first, 1) + gzip.compress(second, 1), first + second


def test_a_multi_member_gzip_is_read_as_the_concatenation_of_its_members(
    tmp_path: Path, two_members: tuple[bytes, bytes]
) -> None:
    data, plain = two_members
    assert gzip.decompress(data) == plain  # valid gzip (what `gzip -t` checks)

    report = check(tmp_path, data, name="cat.csv.gz")

    assert report.valid, report.violations
    assert report.complete and report.rows == 760_000
    assert report.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("read_size", [8 * MiB, MiB, 64 << 10])
def test_the_gzip_reader_returns_every_member_byte_exactly_once(
    two_members: tuple[bytes, bytes], read_size: int
) -> None:
    """zlib shows a finished member's leftover input in `unused_data` and, when the output
    cap was hit on the way, in `unconsumed_tail` too: the next member starts from one only."""
    data, plain = two_members
    reader = BoundedGzipReader(io.BytesIO(data + gzip.compress(b"tail\n")), 1 << 40, "x.csv.gz")
    out = bytearray()
    while chunk := reader.read(read_size):
        out += chunk
    assert bytes(out) == plain + b"tail\n"


class _LazyMembers(io.RawIOBase):
    """A gzip bomb of `count` identical members served one at a time (never built whole);
    `served` counts the decompressed bytes handed out so far."""

    def __init__(self, head: bytes, plain: bytes, count: int) -> None:
        super().__init__()
        self._buffer = gzip.compress(head)
        self._member = gzip.compress(plain, 6)
        self._plain = len(plain)
        self._left = count
        self.served = len(head)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._buffer and self._left:
            self._buffer, self._left = self._member, self._left - 1
            self.served += self._plain
        size = len(self._buffer) if size is None or size < 0 else size
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def test_a_gzip_bomb_is_stopped_by_its_ratio_long_before_the_size_limit() -> None:
    """16 GiB of blank lines, gzipped: stopped after one ratio window, not at 16 GiB."""
    contract = parse_contract("dataset: x\ncolumns:\n  a: {type: int}\n", source="x.yaml")
    bomb = _LazyMembers(b"a\n", b"\n" * (8 * MiB), 2048)
    limits = Limits()

    report = validate(bomb, contract, name="bomb.csv.gz")

    found = assert_rejected(report, "decompression_ratio")
    assert "expands 10" in str(found["message"]) and ":1" in str(found["message"])
    assert f"limit of {limits.max_gzip_ratio}:1" in str(found["message"])
    assert not report.complete
    # decompressed before stopping: one 16 MiB window plus at most one 8 MiB read
    assert bomb.served <= limits.gzip_ratio_window + limits.block_size + 8 * MiB
    assert report.size < 64 << 10  # compressed bytes read


def test_the_gzip_ratio_is_checked_per_window_and_counts_decompressed_bytes() -> None:
    bomb = gzip.compress(b"0" * (10 * MiB), 9)  # 10 MiB of zeros: about 1029:1
    reader = BoundedGzipReader(io.BytesIO(bomb), 1 << 40, "z.gz", max_ratio=800, ratio_window=MiB)
    with pytest.raises(DataProblem) as raised:
        while reader.read(256 << 10):
            pass
    assert raised.value.rule == "decompression_ratio"
    assert MiB <= reader.produced <= MiB + (256 << 10)


def test_wide_sparse_csv_compresses_well_within_the_gzip_ratio_limit() -> None:
    """2,000 one-hot columns (the column limit), `gzip -9`: about 570:1, below 800:1."""
    rng = np.random.default_rng(3)
    row = np.zeros(2000, dtype="S1")
    row[:] = b"0"
    lines = []
    for position in rng.integers(0, 2000, 5000):
        values = row.copy()
        values[position] = b"1"
        lines.append(b",".join(values.tolist()))
    plain = b"\n".join(lines) + b"\n"
    reader = BoundedGzipReader(io.BytesIO(gzip.compress(plain, 9)), 1 << 40, "w.gz", max_ratio=800)
    assert len(plain) > 16 * MiB
    read = 0
    while chunk := reader.read(8 * MiB):
        read += len(chunk)
    assert read == len(plain)


def _long_row_content(length: int, *, quoted: bool) -> bytes:
    """The `note` field of a row `9,<note>` whose content is `length` bytes long."""
    return b'"' + b"y" * (length - 4) + b'"' if quoted else b"y" * (length - 2)


@pytest.mark.parametrize("before", [0, 1, 7, 50])
@pytest.mark.parametrize("block", [64, 100, 150, 4096])
@pytest.mark.parametrize("quoted", [False, True])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_the_line_limit_is_exact_wherever_the_row_falls(
    before: int, block: int, quoted: bool, newline: bytes
) -> None:
    contract = parse_contract(
        "dataset: x\ncolumns:\n  id: {type: int}\n  note: {type: string, allow_numeric: true}\n",
        source="x.yaml",
    )
    limits = Limits(max_line_bytes=100, block_size=block)
    head = b"id,note" + newline + b"".join(b"%d,a%s" % (i, newline) for i in range(before))
    for length in (100, 101):
        row = b"9," + _long_row_content(length, quoted=quoted)
        data = head + row + newline + b"8,b" + newline
        report = validate(io.BytesIO(data), contract, name="x.csv", limits=limits)
        assert report.rows == before + 2
        if length == 100:
            assert report.valid, report.violations
        else:
            found = assert_rejected(report, "line_too_long")
            assert (found["rows"], found["count"]) == ([before + 1], 1)


def test_a_15_mib_row_is_line_too_long_with_its_row_number_not_a_value_problem(
    tmp_path: Path,
) -> None:
    """At the default 10 MiB limit: a 15 MiB number is reported as the row it is, and the
    rows after it are still checked."""
    long_row = b"2," + b"1" * (15 * MiB) + b",Oslo,a,0\n"
    content = HEADER.encode() + b"1,5,Oslo,a,0\n" + long_row + b"3,5,Lima,b,1\n4,-1,Pune,c,0\n"

    report = check(tmp_path, content)

    found = assert_rejected(report, "line_too_long")
    assert (found["rows"], found["count"]) == ([2], 1)
    assert f"limit of {10 * MiB} bytes" in str(found["message"])
    assert "not_finite" not in rules(report)
    assert violation(report, "min", "income")["rows"] == [4]
    assert report.rows == 4


@pytest.mark.parametrize(("extra", "valid"), [(0, True), (1, False)])
def test_a_row_at_the_default_limit_passes_and_one_byte_more_does_not(
    tmp_path: Path, extra: int, valid: bool
) -> None:
    prefix = b"1,5,Oslo,"
    row = prefix + b"x" * (10 * MiB - len(prefix) - 2 + extra) + b",0"
    assert len(row) == 10 * MiB + extra

    report = check(tmp_path, HEADER.encode() + row + b"\r\n2,5,Lima,b,1\r\n")

    assert report.valid is valid
    if not valid:
        assert violation(report, "line_too_long")["rows"] == [1]


def test_a_row_over_the_limit_after_a_stray_quote_is_caught_exactly() -> None:
    """After a stray quote pyarrow's own reader takes over; alone it lets rows of nearly twice
    its block size through."""
    limits = Limits(max_line_bytes=100, block_size=64)
    head = HEADER.encode() + b'1,5,Oslo,5" screen,0\n' + _rows(2, 20)
    for length, valid in ((100, True), (101, False)):
        row = b"22,5,Oslo," + b"y" * (length - 12) + b",0\n"
        report = validate(
            io.BytesIO(head + row + b"23,5,Lima,b,1\n"), CONTRACT, name="x.csv", limits=limits
        )
        assert report.valid is valid, report.violations
        if not valid:
            assert violation(report, "line_too_long")["rows"] == [22]


def test_a_header_over_the_line_limit_is_rejected() -> None:
    limits = Limits(max_line_bytes=30, block_size=4096)
    header = b"id,income,city,note,label" + b" " * 6 + b"\n"  # 31 bytes
    report = validate(io.BytesIO(header + b"1,5,Oslo,a,0\n"), CONTRACT, name="x.csv", limits=limits)
    assert_rejected(report, "line_too_long")


def _with_row(rows: bytes, number: int, row: bytes) -> bytes:
    lines = rows.splitlines(keepends=True)
    lines[number - 1] = row
    return b"".join(lines)


@pytest.mark.parametrize("block", [8 * MiB, 1024])
@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz"])
def test_nul_bytes_in_the_middle_of_a_good_csv_are_binary_naming_row_and_column(
    tmp_path: Path, block: int, name: str
) -> None:
    rows = _with_row(_rows(1, 2000), 1000, b"1000,5,Oslo,ab" + b"\x00" * 64 + b"cd,0\n")
    content = HEADER.encode() + rows
    if name.endswith(".gz"):
        content = gzip.compress(content)

    report = check(tmp_path, content, name=name, limits=Limits(block_size=block))

    found = assert_rejected(report, "binary")
    assert (found["column"], found["rows"], found["count"]) == ("note", [1000], 1)
    assert rules(report) == {"binary"}
    assert report.rows == 2000


def test_nul_bytes_are_found_in_every_column_and_after_a_stray_quote(tmp_path: Path) -> None:
    rows = _rows(1, 2000)
    rows = _with_row(rows, 2, b'2,5,Oslo,5" screen,0\n')  # the rest goes to the exact reader
    rows = _with_row(rows, 11, b"11,5,Oslo,\x00,0\n")
    rows = _with_row(rows, 21, b"21,2\x001,Oslo,x,0\n")
    rows = _with_row(rows, 1501, b"1501,5,Oslo,a\x00b,1\n")

    report = check(tmp_path, HEADER.encode() + rows, limits=Limits(block_size=1024))

    assert violation(report, "binary", "note")["rows"] == [11, 1501]
    assert violation(report, "binary", "income")["rows"] == [21]


def test_nul_bytes_in_a_row_the_parser_skips_are_still_binary(tmp_path: Path) -> None:
    rows = _with_row(_rows(1, 50), 5, b"5,5,Oslo,\x00\n")  # also ragged: 4 fields

    report = check(tmp_path, HEADER.encode() + rows)

    assert violation(report, "binary")["rows"] == [5]
    assert violation(report, "ragged_row")["rows"] == [5]


class _Unreadable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("an object rejected by its size must not be read")


def test_a_parquet_object_over_the_limit_is_rejected_by_its_size_before_reading() -> None:
    limit = Limits().max_parquet_bytes

    report = validate(_Unreadable(), CONTRACT, name="big.parquet", size=limit + 1)

    found = assert_rejected(report, "too_large")
    assert str(limit + 1) in str(found["message"]) and str(limit) in str(found["message"])
    assert (report.size, report.complete) == (0, False)


def test_a_parquet_file_over_the_limit_is_rejected_by_its_size_offline_too(tmp_path: Path) -> None:
    """`driftline validate` passes a path: its size is read from the file, same verdict."""
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"id": list(range(1000))}), path)
    limits = Limits(max_parquet_bytes=path.stat().st_size - 1)

    report = validate(path, CONTRACT, limits=limits)

    assert_rejected(report, "too_large")
    assert report.size == 0


def test_a_full_tmp_while_spooling_parquet_is_too_large_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import tempfile

    from pipelines import validation

    class FullDisk(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
        """/tmp is full: the first write that reaches the disk fails."""

        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(validation, "_spool_file", lambda: FullDisk(max_size=0))
    path = write(tmp_path, _quoted_rows(50))
    data = _to_parquet_bytes(validate(path, CONTRACT), path)

    report = validate(io.BytesIO(data), CONTRACT, name="part.parquet")

    found = assert_rejected(report, "too_large")
    assert "No space left on device" in str(found["message"])
    assert not report.complete


# --- all violations, with counts and rows -----------------------------------------------------


def test_three_different_problems_are_three_violations(tmp_path: Path) -> None:
    content = HEADER + "1,-5,Oslo,a,0\n2,20,Paris,b,1\n3,30,Lima,c,7\n4,-1,Lima,d,0\n"
    report = check(tmp_path, content)
    assert {(v.column, v.rule) for v in report.violations} == {
        ("income", "min"),
        ("city", "allowed"),
        ("label", "allowed"),
    }
    assert violation(report, "min")["rows"] == [1, 4]
    assert violation(report, "min")["count"] == 2


def test_samples_stop_at_five_rows_but_counts_cover_every_row(tmp_path: Path) -> None:
    rows = [f"{i},{i},Oslo,n,{i % 3}" for i in range(1, 101)]
    report = check(tmp_path, HEADER + "\n".join(rows) + "\n")
    found = violation(report, "allowed", "label")
    assert found["count"] == 33
    assert found["rows"] == [2, 5, 8, 11, 14]


def test_nulls_in_a_required_column_are_rejected(tmp_path: Path) -> None:
    found = assert_rejected(check(tmp_path, HEADER + "1,10,,a,0\n2,20,Lima,b,1\n"), "not_null")
    assert (found["column"], found["rows"]) == ("city", [1])


def test_regex_violations_are_found(tmp_path: Path) -> None:
    contract = parse_contract(
        "dataset: r\ncolumns:\n  code: {type: string, regex: '[A-Z]{3}-[0-9]+'}\n", source="r"
    )
    found = assert_rejected(
        check(tmp_path, "code\nABC-1\nabc-2\nXYZ-33x\n", contract=contract), "regex"
    )
    assert found["rows"] == [2, 3]


def test_repeated_keys_are_found_across_chunks(tmp_path: Path) -> None:
    contract = parse_contract(
        """
dataset: k
primary_key: [a, b]
max_duplicate_share: 0.1
columns:
  a: {type: string}
  b: {type: int}
  n: {type: int, unique: true, nullable: true}
""",
        source="k.yaml",
    )
    rows = [f"k{i % 50},{i % 7},{i}" for i in range(2000)]
    rows[1500] = "k0,0,3"
    rows[1800] = "k0,0,"
    rows[1900] = "k0,0,"
    content = "a,b,n\n" + "\n".join(rows + rows[:300]) + "\n"
    report = check(tmp_path, content, contract=contract, limits=Limits(block_size=4096))
    unique = violation(report, "unique", "n")
    assert (unique["count"], unique["rows"][0]) == (301, 1501)
    key = violation(report, "primary_key", "a, b")
    assert key["count"] > 1000
    duplicates = violation(report, "duplicate_rows")
    assert duplicates["count"] == 301  # the copied 300 rows, and row 1901 repeating row 1801
    assert duplicates["rows"] == [1901, 2001, 2002, 2003, 2004]


def test_row_bounds_are_checked(tmp_path: Path) -> None:
    bounded = CONTRACT.model_copy(update={"max_rows": 3})
    found = assert_rejected(check(tmp_path, GOOD, contract=bounded), "max_rows")
    assert found["count"] == 1


# --- chunking -----------------------------------------------------------------------------------


def _quoted_rows(count: int) -> str:
    rows = []
    for i in range(1, count + 1):
        note = f'"line {i}\nwith ""quotes"", commas"' if i % 3 == 0 else f"n{i}"
        rows.append(f"{i},{i * 1.5},{['Oslo', 'Lima', 'Pune'][i % 3]},{note},{i % 2}")
    return HEADER + "\n".join(rows) + "\n"


def test_small_chunks_give_the_same_report_as_one_chunk(tmp_path: Path) -> None:
    content = _quoted_rows(3000).replace("\n2000,", "\n2000,bad,")
    whole = check(tmp_path, content)
    chunked = check(tmp_path, content, limits=Limits(block_size=2048))
    assert [v.to_dict() for v in whole.violations] == [v.to_dict() for v in chunked.violations]
    assert violation(chunked, "ragged_row")["rows"] == [2000]
    assert chunked.rows == whole.rows == 3000
    assert_same_profile(whole.profile, chunked.profile)


def test_a_stray_quote_switches_to_the_exact_reader_without_losing_rows(tmp_path: Path) -> None:
    content = _quoted_rows(3000).replace("\n11,16.5,Pune,n11,1\n", '\n11,16.5,Pune,5" tv,1\n')
    assert '5" tv' in content  # a literal quote inside an unquoted field
    report = check(tmp_path, content, limits=Limits(block_size=2048))
    assert report.valid, report.violations
    assert report.rows == 3000
    ragged = content.replace("\n2500,", "\n2500,1,")
    report = check(tmp_path, ragged, limits=Limits(block_size=2048))
    assert [v.to_dict()["rows"] for v in report.violations] == [[2500]]
    assert report.rows == 3000


def test_rows_after_ragged_rows_keep_their_numbers_across_chunks(tmp_path: Path) -> None:
    rows = [f"{i},{i},Oslo,n,0" for i in range(1, 2001)]
    rows[99] = "100,bad"
    rows[1499] = "1500,x,Oslo,n,0"
    report = check(tmp_path, HEADER + "\n".join(rows) + "\n", limits=Limits(block_size=1024))
    assert violation(report, "ragged_row")["rows"] == [100]
    assert violation(report, "type", "income")["rows"] == [1500]


# --- profiles ---------------------------------------------------------------------------------


def assert_same_profile(a: DatasetProfile, b: DatasetProfile) -> None:
    assert a.rows == b.rows
    assert list(a.columns) == list(b.columns)
    for name, left in a.columns.items():
        right = b.columns[name]
        assert (left.type, left.rows, left.nulls) == (right.type, right.rows, right.nulls), name
        if left.numeric is not None:
            assert right.numeric is not None
            assert (left.numeric.count, left.numeric.min, left.numeric.max) == (
                right.numeric.count,
                right.numeric.min,
                right.numeric.max,
            )
            assert left.numeric.sketch == right.numeric.sketch, name
            assert left.numeric.bins == right.numeric.bins, name
            assert math.isclose(left.numeric.mean, right.numeric.mean, rel_tol=1e-9)
            assert math.isclose(left.numeric.std or 0, right.numeric.std or 0, rel_tol=1e-9)
        if left.categories is not None:
            assert right.categories is not None
            assert left.categories.counts == right.categories.counts
        for part in ("datetimes", "lengths"):
            assert getattr(left, part) == getattr(right, part), (name, part)


def test_merging_the_profiles_of_two_halves_equals_the_profile_of_the_whole(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(11)
    n = 4001
    lines = [
        f"{i},{'' if rng.random() < 0.1 else round(float(rng.gamma(2, 700)), 3)},"
        f"{rng.choice(['Oslo', 'Lima', 'Pune'])},t{rng.integers(0, 9)},{i % 2}"
        for i in range(1, n + 1)
    ]
    whole = check(tmp_path, HEADER + "\n".join(lines) + "\n")
    first = validate(write(tmp_path, HEADER + "\n".join(lines[:1700]) + "\n", "a.csv"), CONTRACT)
    second = validate(write(tmp_path, HEADER + "\n".join(lines[1700:]) + "\n", "b.csv"), CONTRACT)
    assert whole.valid and first.valid and second.valid
    merged = merge_profiles(first.profile, second.profile)
    assert_same_profile(whole.profile, merged)
    income = merged.columns["income"].numeric
    assert income is not None and income.bins is not None
    assert sum(income.bins.counts) == income.count
    # Through JSON, as a Distributed Map's merge step receives them.
    restored = merge_profiles(
        DatasetProfile.from_dict(json.loads(json.dumps(first.profile.to_dict()))),
        DatasetProfile.from_dict(json.loads(json.dumps(second.profile.to_dict()))),
    )
    assert_same_profile(whole.profile, restored)


def test_profiles_of_different_columns_do_not_merge(tmp_path: Path) -> None:
    one = check(tmp_path, GOOD).profile
    other = DatasetProfile(rows=1, columns={"x": one.columns["id"]})
    with pytest.raises(ProfileMergeError, match="different columns"):
        merge_profiles(one, other)


def test_sketch_quantiles_stay_within_the_relative_error_bound() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.lognormal(3, 2, 20_000), -rng.lognormal(1, 1, 5_000)])
    stats = NumericStats(
        count=values.size,
        min=float(values.min()),
        max=float(values.max()),
        sketch=Sketch.of(values[:9000]).merged(Sketch.of(values[9000:])),
    )
    ordered = np.sort(values)
    for q in (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0):
        estimate = stats.quantile(q)
        assert estimate is not None
        true = ordered[int(q * (values.size - 1))]
        assert abs(estimate - true) <= RELATIVE_ACCURACY * abs(true) + 1e-12, q


def test_sketch_merging_is_exact_and_order_free() -> None:
    rng = np.random.default_rng(8)
    parts = [
        rng.normal(0, 10, 1000),
        np.zeros(10),
        rng.normal(1e6, 1, 50),
        np.array([1e-300, -0.0]),
    ]
    whole = Sketch.of(np.concatenate(parts))
    forward = Sketch()
    for part in parts:
        forward = forward.merged(Sketch.of(part))
    backward = Sketch()
    for part in reversed(parts):
        backward = backward.merged(Sketch.of(part))
    assert whole == forward == backward
    assert whole.total == sum(len(part) for part in parts)
