"""Bounded readers for uploaded tables: hash while streaming, cap decompression, cut CSV safely.

Everything here reads a binary stream once, front to back, in pieces of at most a few blocks,
so a 50 GB upload or a gzip bomb costs the same memory as a small file. Problems with the bytes
themselves (not gzip, too big once decompressed, a line longer than the limit) are raised as
`DataProblem`, which validation turns into a violation: the file is bad, not the caller's input.

CSV is parsed by pyarrow. For speed the stream is cut into row-aligned chunks of about
`block_size` bytes, parsed by `pyarrow.csv.read_csv` on several threads at once (pyarrow's own
streaming reader parses on one thread). Cutting needs to know where rows end:
a newline inside a quoted field is not a row end. For RFC 4180 quoting that is decided by the
parity of quote characters since the last row start, *provided every quote is well placed*
(an opening quote starts a field, a closing quote ends one or doubles an escaped quote); that
is checked vectorised, and a chunk with a stray quote switches the rest of the stream to
pyarrow's exact, single-threaded `open_csv` reader instead of guessing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

Format = Literal["csv", "csv.gz", "parquet"]
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_READ_SIZE = 1 << 20
_QUOTE = ord('"')


class InputError(ValueError):
    """Input that cannot be read at all (missing file, unknown format): a usage problem."""


@dataclass
class DataProblem(Exception):
    """The bytes are unusable from some point on; `rule` and `message` become a violation."""

    rule: str
    message: str
    rows: tuple[int, ...] = ()
    column: str | None = None
    count: int = 1

    def __str__(self) -> str:
        return self.message


def detect_format(name: str) -> Format:
    """The format from a key or file name suffix: `.csv`, `.csv.gz` or `.parquet`."""
    lowered = name.lower()
    if lowered.endswith(".csv.gz"):
        return "csv.gz"
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith(".parquet"):
        return "parquet"
    raise InputError(f"{name}: unknown format (expected a .csv, .csv.gz or .parquet suffix)")


class HashingReader(io.RawIOBase):
    """Passes reads through, keeping a sha256 and a byte count of exactly what was read."""

    def __init__(self, raw: IO[bytes] | Any) -> None:
        super().__init__()
        self._raw = raw
        self._sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size if size is not None and size >= 0 else -1) or b""
        if data:
            self._sha256.update(data)
            self.size += len(data)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        """Straight into the caller's buffer when the source can (files can; S3 bodies read)."""
        target = memoryview(buffer).cast("B")
        if hasattr(self._raw, "readinto"):
            count = self._raw.readinto(target) or 0
        else:
            data = self._raw.read(len(target)) or b""
            count = len(data)
            target[:count] = data
        if count:
            self._sha256.update(target[:count])
            self.size += count
        return count

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


class BoundedGzipReader(io.RawIOBase):
    """Decompresses gzip (all members) and stops with a `DataProblem` past `limit` bytes.

    Output is produced with `max_length`, so a bomb never gets to allocate more than one read
    beyond the limit: the check happens before the data exists, not after. A bomb is usually
    stopped long before the limit by its ratio: every `ratio_window` bytes of output, the
    output of that window divided by the compressed bytes it came from must not exceed
    `max_ratio` (0 turns the ratio check off).
    """

    def __init__(
        self,
        raw: IO[bytes] | Any,
        limit: int,
        name: str,
        *,
        max_ratio: int = 0,
        ratio_window: int = 16 << 20,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._limit = limit
        self._name = name
        self._max_ratio = max_ratio
        self._ratio_window = ratio_window
        self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._started = False
        self._finished = False
        self.produced = 0
        self.compressed = 0  # bytes read from `raw` (some may still be pending)
        self._window_start = (0, 0)  # (produced, compressed consumed) when the window began

    def readable(self) -> bool:
        return True

    def _read_raw(self, size: int) -> bytes:
        data = bytes(self._raw.read(size) or b"")
        self.compressed += len(data)
        return data

    def _start(self) -> None:
        self._started = True
        head = self._read_raw(2)
        if len(head) == 0:
            self._finished = True
            return
        if head != _GZIP_MAGIC:
            raise DataProblem("not_gzip", f"{self._name}: not gzip data (no gzip header)")
        self._pending = head

    def read(self, size: int = -1) -> bytes:
        if not self._started:
            self._start()
        want = _READ_SIZE if size is None or size < 0 else size
        while not self._finished:
            if not self._pending:
                self._pending = self._read_raw(_READ_SIZE)
                if not self._pending:
                    if not self._decompressor.eof:
                        raise DataProblem("corrupt_gzip", f"{self._name}: gzip stream is truncated")
                    self._finished = True
                    break
            try:
                out = self._decompressor.decompress(self._pending, want)
            except zlib.error as error:
                raise DataProblem("corrupt_gzip", f"{self._name}: corrupt gzip: {error}") from None
            self._pending = self._decompressor.unconsumed_tail
            if self._decompressor.eof:
                # The next member starts in `unused_data`. When `max_length` was reached on the
                # way, zlib leaves the same leftover bytes in `unconsumed_tail` too: reading both
                # would feed them twice (a valid `cat a.gz b.gz` then looks corrupt).
                rest = self._decompressor.unused_data
                self._pending = rest
                self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                if rest and not rest.startswith(_GZIP_MAGIC[: len(rest)]):
                    raise DataProblem(
                        "corrupt_gzip", f"{self._name}: trailing bytes after the gzip stream"
                    )
                if not rest:
                    self._pending = self._read_raw(_READ_SIZE)
                    if not self._pending:
                        self._finished = True
            if out:
                self.produced += len(out)
                if self.produced > self._limit:
                    raise DataProblem(
                        "decompressed_too_large",
                        f"{self._name}: decompresses to more than the limit of "
                        f"{self._limit} bytes (gzip bomb protection)",
                    )
                self._check_ratio()
                return out
        return b""

    def _check_ratio(self) -> None:
        produced, consumed = self._window_start
        if not self._max_ratio or self.produced - produced < self._ratio_window:
            return
        now = self.compressed - len(self._pending)
        ratio = (self.produced - produced) / max(1, now - consumed)
        if ratio > self._max_ratio:
            raise DataProblem(
                "decompression_ratio",
                f"{self._name}: expands {ratio:.0f}:1 ({self.produced - produced} bytes from "
                f"{now - consumed} bytes of gzip), more than the limit of {self._max_ratio}:1 "
                "(gzip bomb protection)",
            )
        self._window_start = (self.produced, now)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class ChainReader(io.RawIOBase):
    """Bytes already buffered, then the rest of a stream: hands a stream back to pyarrow."""

    def __init__(self, head: bytes, rest: IO[bytes] | Any) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if len(self._head):
            take = len(self._head) if size is None or size < 0 else min(size, len(self._head))
            out = bytes(self._head[:take])
            self._head = self._head[take:]
            return out
        return bytes(self._rest.read(_READ_SIZE if size is None or size < 0 else size) or b"")

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class LineLimitReader(io.RawIOBase):
    """Passes whole lines through and ends the stream before the first line over the limit.

    For pyarrow's own streaming reader (the stray-quote fallback), which only notices a row
    about twice its block size: a physical line (its line ending not counted) longer than
    `max_line_bytes` ends the stream just before it and sets `too_long`, so every row before
    it is still parsed. `nul` says whether a NUL byte went past.
    """

    def __init__(self, raw: IO[bytes] | Any, max_line_bytes: int) -> None:
        super().__init__()
        self._raw = raw
        self._max = max_line_bytes
        self._held = b""  # the start of a line whose end has not been read yet
        self._ready = memoryview(b"")
        self._ended = False
        self.too_long = False
        self.nul = False

    def readable(self) -> bool:
        return True

    def _refill(self) -> None:
        while not len(self._ready) and not self._ended:
            data = self._raw.read(_READ_SIZE) or b""
            if not data:
                self._ended = True
                tail, self._held = self._held, b""
                if _content_length(tail, 0, len(tail)) > self._max:
                    self.too_long = True
                else:
                    self._ready = memoryview(tail)
                return
            self.nul = self.nul or b"\x00" in data
            buffer = self._held + bytes(data)
            last = buffer.rfind(b"\n")
            complete, self._held = buffer[: last + 1], buffer[last + 1 :]
            keep = len(complete)
            if complete:
                array = np.frombuffer(complete, dtype=np.uint8)
                ends = np.flatnonzero(array == 10)
                starts = np.concatenate(([0], ends[:-1] + 1))
                lengths = ends - starts
                lengths[lengths > 0] -= array[ends[lengths > 0] - 1] == 13
                over = np.flatnonzero(lengths > self._max)
                if over.size:
                    keep = int(starts[over[0]])
            if keep < len(complete) or len(self._held) > self._max + 1:
                self.too_long, self._ended, self._held = True, True, b""
            self._ready = memoryview(complete[:keep])

    def read(self, size: int = -1) -> bytes:
        self._refill()
        take = len(self._ready) if size is None or size < 0 else min(size, len(self._ready))
        out = bytes(self._ready[:take])
        self._ready = self._ready[take:]
        return out

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _content_length(data: bytes | bytearray | memoryview, start: int, end: int) -> int:
    """Length of the line `data[start:end]` without its line ending (LF or CR LF)."""
    if end > start and data[end - 1] == 10:
        end -= 1
    if end > start and data[end - 1] == 13:
        end -= 1
    return end - start


# --- CSV header --------------------------------------------------------------------------------


@dataclass
class CsvHeader:
    """Raw header fields as written (whitespace included, BOM removed) and the bytes after."""

    names: list[str]
    rest: bytes
    empty: bool = False


def read_csv_header(
    reader: IO[bytes] | Any, *, delimiter: str, max_line_bytes: int, name: str
) -> CsvHeader:
    """Read up to the end of the first record (quote-aware) and split it into names."""
    buffer = b""
    end = -1
    while end < 0:
        data = reader.read(min(_READ_SIZE, max_line_bytes + 2))
        if not data:
            break
        buffer += data
        end = _first_record_end(buffer)
        if end < 0 and len(buffer) > max_line_bytes + 1:
            raise DataProblem(
                "line_too_long",
                f"{name}: the header line is longer than the limit of {max_line_bytes} bytes",
            )
    if not buffer:
        return CsvHeader([], b"", empty=True)
    had_bom = buffer.startswith(_BOM)
    start = len(_BOM) if had_bom else 0
    header_bytes = buffer[start : end if end >= 0 else len(buffer)]
    if _content_length(header_bytes, 0, len(header_bytes)) > max_line_bytes:
        raise DataProblem(
            "line_too_long",
            f"{name}: the header line is longer than the limit of {max_line_bytes} bytes",
        )
    rest = buffer[end:] if end >= 0 else b""
    try:
        text = header_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataProblem(
            "encoding", f"{name}: the header is not UTF-8 (byte {error.start + start})"
        ) from None
    if "\x00" in text:
        raise DataProblem("binary", f"{name}: the header holds NUL bytes: not a CSV file")
    try:
        fields = next(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True), [])
    except csv.Error as error:
        raise DataProblem("malformed_header", f"{name}: the header is malformed: {error}") from None
    return CsvHeader([str(f) for f in fields], rest)


def _first_record_end(buffer: bytes) -> int:
    """Index just past the first newline outside quotes, or -1 if the buffer has none."""
    start = 0
    quotes = 0
    while True:
        newline = buffer.find(b"\n", start)
        if newline < 0:
            return -1
        quotes += buffer.count(b'"', start, newline)
        if quotes % 2 == 0:
            return newline + 1
        start = newline + 1


# --- CSV chunking ------------------------------------------------------------------------------


class StrayQuote(Exception):
    """A quote the parity rule cannot place; carries the unparsed bytes for the exact reader."""

    def __init__(self, buffered: bytes) -> None:
        super().__init__("stray quote")
        self.buffered = buffered


def _quotes_well_placed(data: np.ndarray, quotes: np.ndarray, delimiter: int) -> bool:
    """True when every quote opens a field, closes one, or is half of an escaped pair."""
    separator = np.zeros(256, dtype=bool)
    separator[[delimiter, 10, 13, _QUOTE]] = True
    opens = quotes[0::2]
    closes = quotes[1::2]
    inner_opens = opens[opens > 0]
    if inner_opens.size and not separator[data[inner_opens - 1]].all():
        return False
    inner_closes = closes[closes < data.size - 1]
    return not (inner_closes.size and not separator[data[inner_closes + 1]].all())


def _row_aligned_end(buffer: bytes | bytearray, delimiter: int, length: int) -> int:
    """Index just past the last row-ending newline in `buffer[:length]` (a row start), or 0."""
    end = buffer.rfind(b"\n", 0, length)
    if end < 0:
        return 0
    if buffer.find(b'"', 0, length) < 0:
        return end + 1
    data = np.frombuffer(buffer, dtype=np.uint8, count=length)
    quotes = np.flatnonzero(data == _QUOTE)
    if not _quotes_well_placed(data, quotes, delimiter):
        raise StrayQuote(bytes(memoryview(buffer)[:length]))
    while end >= 0:
        before = int(np.searchsorted(quotes, end))
        if before % 2 == 0:
            return end + 1
        end = buffer.rfind(b"\n", 0, int(quotes[before - 1]))
    return 0


def row_bounds(
    data: bytes | bytearray | memoryview, delimiter: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end (line ending excluded) and 1-based data row number of each row of `data`.

    `data` starts at a row start. A row ends at a newline outside quotes when every quote is
    well placed (the chunker's rule), else at every newline, which can only make rows shorter.
    Blank rows are not data rows: the next row gets the number a blank one would have had.
    """
    array = np.frombuffer(data, dtype=np.uint8)
    if not array.size:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    ends = np.flatnonzero(array == 10)
    quotes = np.flatnonzero(array == _QUOTE)
    if quotes.size and _quotes_well_placed(array, quotes, ord(delimiter)):
        ends = ends[np.searchsorted(quotes, ends) % 2 == 0]
    if not ends.size or ends[-1] != array.size - 1:
        ends = np.append(ends, array.size)  # the last row has no newline
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    stops = ends.astype(np.int64)
    stops -= (stops > starts) & (array[np.maximum(stops - 1, 0)] == 13)  # CR of a CR LF
    numbers = np.cumsum(stops > starts)
    return starts, stops, numbers


@dataclass(frozen=True)
class RowChunk:
    """The first `end` bytes of `data`: whole rows, handed to the parser without a copy."""

    data: bytes | bytearray
    end: int

    def view(self) -> memoryview:
        return memoryview(self.data)[: self.end]

    def has_quote(self) -> bool:
        return self.data.find(b'"', 0, self.end) >= 0

    def __len__(self) -> int:
        return self.end


def _fill(reader: IO[bytes] | Any, target: memoryview) -> int:
    """Read into `target` until it is full or the stream ends; the number of bytes read."""
    filled = 0
    while filled < len(target):
        if hasattr(reader, "readinto"):
            count = reader.readinto(target[filled:]) or 0
        else:
            data = reader.read(len(target) - filled) or b""
            count = len(data)
            target[filled : filled + count] = data
        if count == 0:
            break
        filled += count
    return filled


def iter_row_chunks(
    reader: IO[bytes] | Any,
    head: bytes,
    *,
    block_size: int,
    max_line_bytes: int,
    delimiter: str,
    name: str,
) -> Iterator[RowChunk]:
    """Row-aligned chunks of about `block_size` bytes; a longer line up to the limit is kept.

    Each chunk gets a fresh buffer that the stream is read into directly (no intermediate
    copy); it is never written again, so parser threads may hold it while the next is read.
    """
    pending = bytes(head)
    separator = ord(delimiter)
    while True:
        size = max(block_size, len(pending))
        buffer = bytearray(size)
        buffer[: len(pending)] = pending
        filled = len(pending) + _fill(reader, memoryview(buffer)[len(pending) :])
        eof = filled < size
        if filled == 0:
            return
        end = filled if eof else _row_aligned_end(buffer, separator, filled)
        while end == 0:
            # No row end yet: the first row is at least `filled - 1` bytes long without its
            # line ending (a CR may be last), so it is over the limit for sure here.
            if filled > max_line_bytes + 1:
                raise DataProblem(
                    "line_too_long",
                    f"{name}: a row is longer than the limit of {max_line_bytes} bytes",
                )
            buffer.extend(bytes(block_size))
            more = _fill(reader, memoryview(buffer)[filled:])
            filled += more
            if more < block_size:
                end = filled
                break
            end = _row_aligned_end(buffer, separator, filled)
        yield RowChunk(buffer, end)
        if eof:
            return
        pending = bytes(memoryview(buffer)[end:filled])


@dataclass
class RaggedRows:
    """Rows with the wrong number of fields; pyarrow skips them and we keep their numbers."""

    count: int = 0
    numbers: list[int] = field(default_factory=list)

    def handler(self) -> Callable[[Any], str]:
        """pyarrow numbers rows only when it parses on one thread, as the chunk parser does."""

        def on_invalid_row(row: Any) -> str:
            self.count += 1
            if row.number is not None:
                self.numbers.append(int(row.number))
            return "skip"

        return on_invalid_row


def csv_options(
    *,
    names: list[str],
    include: list[str],
    column_types: dict[str, pa.DataType],
    delimiter: str,
    null_values: list[str],
    block_size: int,
    use_threads: bool,
    quoted: bool,
    ragged: RaggedRows,
) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
    read = pacsv.ReadOptions(column_names=names, block_size=block_size, use_threads=use_threads)
    parse = pacsv.ParseOptions(
        delimiter=delimiter, newlines_in_values=quoted, invalid_row_handler=ragged.handler()
    )
    convert = pacsv.ConvertOptions(
        column_types=column_types,
        include_columns=include,
        null_values=null_values,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return read, parse, convert


def is_straddle_error(error: Exception) -> bool:
    return "straddl" in str(error)


def open_path(path: str | Path) -> IO[bytes]:
    try:
        return Path(path).open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot open: {error.strerror}") from None
