"""Dataset profiles that merge exactly, so part files can be profiled in parallel.

A profile is computed chunk by chunk while validating and must come out the same whether a
dataset was read in one piece, in blocks, or as part files profiled by separate workers and
merged afterwards (`merge_profiles`). So every statistic is a *mergeable summary*:

* counts, nulls, NaN/Inf counts, min and max: exact under merging;
* mean and variance: `(n, mean, M2)` combined with Chan et al.'s parallel update, which is
  numerically stable (no catastrophic cancellation of sum-of-squares); equal to a one-pass
  result up to floating-point rounding (~1e-12 relative);
* fixed-edge bins over the contract's `[min, max]` (when both are given): plain counts per bin,
  exact under merging because the edges are fixed before any data is seen;
* a log-bucket quantile sketch (DDSketch-style): each finite value goes to the bucket named by
  its sign, binary exponent and top `MANTISSA_BITS` mantissa bits. Buckets are fixed by the
  float format, not by the data, so merging is adding counts per bucket: exact, associative and
  commutative. Any quantile read from it is within `RELATIVE_ACCURACY` (2**-8, 0.39 %) of a
  true value of that rank (for |x| >= 2.2e-308). The bucket key is the top 19 bits of the
  IEEE-754 double, so computing it is a shift and a bincount: a few ms per million values.
  A t-digest or KLL sketch would be smaller but merges only approximately;
* top-k for categoricals: exact counts for up to `max_distinct` distinct values; past that the
  column is marked as having more distinct values and no counts are kept, so nothing reported
  is ever an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MANTISSA_BITS = 7
RELATIVE_ACCURACY = 2.0 ** -(MANTISSA_BITS + 1)
_KEY_SHIFT = 20 - MANTISSA_BITS  # the high 32-bit word holds 20 mantissa bits
_KEY_BITS = 1 + 11 + MANTISSA_BITS
_SIGN_BIT = 1 << (_KEY_BITS - 1)
_EPOCH = datetime(1970, 1, 1)
_REPORTED_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


class ProfileMergeError(ValueError):
    """Two profiles that do not describe the same columns cannot be merged."""


# --- numeric summaries ------------------------------------------------------------------------


@dataclass
class FixedBins:
    """Equal-width bins over the contract's `[low, high]`; `high` falls in the last bin."""

    low: float
    high: float
    counts: list[int]
    underflow: int = 0
    overflow: int = 0

    @classmethod
    def empty(cls, low: float, high: float, bins: int) -> FixedBins:
        return cls(low, high, [0] * bins)

    def edges(self) -> list[float]:
        width = (self.high - self.low) / len(self.counts)
        return [self.low + i * width for i in range(len(self.counts))] + [self.high]

    def add(self, values: np.ndarray, *, chunk_min: float, chunk_max: float) -> None:
        if values.size == 0:
            return
        if self.high == self.low:
            inside = values == self.low
            self.counts[0] += int(np.count_nonzero(inside))
            self.underflow += int(np.count_nonzero(values < self.low))
            self.overflow += int(np.count_nonzero(values > self.high))
            return
        if chunk_min < self.low or chunk_max > self.high:
            below = values < self.low
            above = values > self.high
            self.underflow += int(np.count_nonzero(below))
            self.overflow += int(np.count_nonzero(above))
            values = values[~(below | above)]
        # One formula for every chunk keeps bin assignment identical however data is split.
        scaled = values - self.low
        scaled *= len(self.counts) / (self.high - self.low)
        index = scaled.astype(np.intp)
        np.minimum(index, len(self.counts) - 1, out=index)
        counts = np.bincount(index, minlength=len(self.counts))
        self.counts = (np.asarray(self.counts, dtype=np.int64) + counts).tolist()

    def merged(self, other: FixedBins) -> FixedBins:
        if (self.low, self.high, len(self.counts)) != (other.low, other.high, len(other.counts)):
            raise ProfileMergeError(
                f"bins over [{self.low}, {self.high}] x{len(self.counts)} and "
                f"[{other.low}, {other.high}] x{len(other.counts)} have different edges"
            )
        return FixedBins(
            self.low,
            self.high,
            [a + b for a, b in zip(self.counts, other.counts, strict=True)],
            self.underflow + other.underflow,
            self.overflow + other.overflow,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": self.edges(),
            "counts": list(self.counts),
            "underflow": self.underflow,
            "overflow": self.overflow,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FixedBins:
        edges = data["edges"]
        return cls(
            float(edges[0]),
            float(edges[-1]),
            [int(c) for c in data["counts"]],
            int(data["underflow"]),
            int(data["overflow"]),
        )


_LITTLE_ENDIAN = np.little_endian
_GROUP_BITS = 1 + 11  # sign and exponent


def _count_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and their counts.

    Counting is a bincount over the span of magnitudes present, sign interleaved and zeros
    given slot 0 (so zeros next to ordinary values do not stretch the span): its cost follows
    the data, not the 2**19 possible buckets. A span wider than 2**16 buckets (1e-300 next to
    1e300) is counted by sorting instead.
    """
    keys = keys.astype(np.int32, copy=False)
    magnitudes = keys & (_SIGN_BIT - 1)
    high = int(magnitudes.max())
    # Smallest non-zero magnitude: minus one wraps zero to the top of the unsigned range.
    low = int((magnitudes - 1).view(np.uint32).min()) + 1 if high else 1
    if high - low < 1 << 16:
        base = low - 1
        index = magnitudes - base
        np.maximum(index, 0, out=index)
        index <<= 1
        index |= keys >> (_KEY_BITS - 1)
        counts = np.bincount(index, minlength=(high - base + 1) * 2)
        present = np.flatnonzero(counts)
        # Positive keys (even index) sort below negative ones (sign bit set); each run is
        # already ascending, so ordering them is a stable partition, not a sort.
        negative = (present & 1).astype(bool)
        present = np.concatenate([present[~negative], present[negative]])
        slots = present >> 1
        real = np.where(slots == 0, 0, slots + base) | ((present & 1) << (_KEY_BITS - 1))
        return real.astype(np.int64), counts[present].astype(np.int64)
    unique, counts = np.unique(keys, return_counts=True)
    return unique.astype(np.int64), counts.astype(np.int64)


class Sketch:
    """Log-bucket counts: sorted unique bucket `keys` and their `counts`.

    Merging only queues the other sketch; queued parts are summed in one vectorised pass when
    the counts are read (or when many are queued), so folding in chunk after chunk is cheap.
    """

    _COMPACT_AFTER = 64

    def __init__(self, keys: np.ndarray | None = None, counts: np.ndarray | None = None) -> None:
        empty = np.empty(0, dtype=np.int64)
        self._parts: list[tuple[np.ndarray, np.ndarray]] = [
            (empty if keys is None else keys, empty if counts is None else counts)
        ]

    @classmethod
    def of(cls, values: np.ndarray) -> Sketch:
        """Bucket the finite float64 `values`: key = the top 19 bits of the IEEE-754 double."""
        if values.size == 0:
            return cls()
        contiguous = np.ascontiguousarray(values, dtype=np.float64)
        words = contiguous.view(np.uint32)
        high_words = words[1::2] if _LITTLE_ENDIAN else words[0::2]
        keys = np.right_shift(high_words, _KEY_SHIFT, dtype=np.uint32).view(np.int32)
        return cls(*_count_keys(keys))

    def _compact(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self._parts) > 1:
            keys = np.concatenate([part[0] for part in self._parts])
            counts = np.concatenate([part[1] for part in self._parts])
            unique, inverse = np.unique(keys, return_inverse=True)
            summed = np.zeros(unique.size, dtype=np.int64)
            np.add.at(summed, inverse, counts)
            self._parts = [(unique, summed)]
        return self._parts[0]

    @property
    def keys(self) -> np.ndarray:
        return self._compact()[0]

    @property
    def counts(self) -> np.ndarray:
        return self._compact()[1]

    @property
    def total(self) -> int:
        return int(sum(int(part[1].sum()) for part in self._parts))

    def merged(self, other: Sketch) -> Sketch:
        merged = Sketch()
        merged._parts = [part for part in self._parts + other._parts if part[0].size]
        if not merged._parts:
            merged._parts = [self._parts[0]]
        if len(merged._parts) > self._COMPACT_AFTER:
            merged._compact()
        return merged

    def as_dict(self) -> dict[int, int]:
        keys, counts = self._compact()
        return dict(zip(keys.tolist(), counts.tolist(), strict=True))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sketch) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Sketch({self.as_dict()!r})"

    def in_value_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys and counts from the most negative bucket to the most positive."""
        keys, counts = self._compact()
        magnitudes = keys & (_SIGN_BIT - 1)
        order = np.argsort(np.where(keys & _SIGN_BIT, -magnitudes - 1, magnitudes), kind="stable")
        return keys[order], counts[order]


def _bucket_value(key: int) -> float:
    """Midpoint of the bucket: within RELATIVE_ACCURACY of every value in it."""
    magnitude = key & (_SIGN_BIT - 1)
    if magnitude == 0:
        return 0.0
    shift = 64 - _KEY_BITS
    low = float(np.array([magnitude << shift], dtype=np.uint64).view(np.float64)[0])
    high = float(np.array([(magnitude + 1) << shift], dtype=np.uint64).view(np.float64)[0])
    middle = (low + high) / 2 if math.isfinite(high) else low
    return -middle if key & _SIGN_BIT else middle


@dataclass
class NumericStats:
    """Summary of the finite, non-null values of a numeric column."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float | int | None = None
    max: float | int | None = None
    nan: int = 0
    pos_inf: int = 0
    neg_inf: int = 0
    sketch: Sketch = field(default_factory=Sketch)
    bins: FixedBins | None = None

    @property
    def std(self) -> float | None:
        """Population standard deviation (ddof=0)."""
        return math.sqrt(self.m2 / self.count) if self.count else None

    def quantile(self, q: float) -> float | None:
        """A value within RELATIVE_ACCURACY of the true q-quantile, clamped to [min, max]."""
        return self.quantiles([q])[0]

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """`quantile` for several q at once: one ordering of the buckets for all of them."""
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise ValueError(f"quantiles {list(qs)} are not all within [0, 1]")
        if self.count == 0 or self.min is None or self.max is None:
            return [None] * len(qs)
        keys, counts = self.sketch.in_value_order()
        cumulative = np.cumsum(counts)
        low, high = float(self.min), float(self.max)
        out: list[float | None] = []
        for q in qs:
            index = int(np.searchsorted(cumulative, q * (self.count - 1), side="right"))
            if index >= keys.size:
                out.append(high)
            else:
                out.append(min(max(_bucket_value(int(keys[index])), low), high))
        return out

    def merged(self, other: NumericStats) -> NumericStats:
        count = self.count + other.count
        if count == 0:
            mean, m2 = 0.0, 0.0
        else:
            delta = other.mean - self.mean
            mean = self.mean + delta * other.count / count
            m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / count
        if self.bins is not None and other.bins is not None:
            bins: FixedBins | None = self.bins.merged(other.bins)
        elif self.bins is None and other.bins is None:
            bins = None
        else:
            raise ProfileMergeError("one profile has fixed bins and the other has none")
        return NumericStats(
            count=count,
            mean=mean,
            m2=m2,
            min=_pick(min, self.min, other.min),
            max=_pick(max, self.max, other.max),
            nan=self.nan + other.nan,
            pos_inf=self.pos_inf + other.pos_inf,
            neg_inf=self.neg_inf + other.neg_inf,
            sketch=self.sketch.merged(other.sketch),
            bins=bins,
        )

    def to_dict(self) -> dict[str, Any]:
        keys, counts = self.sketch.in_value_order()
        quantiles = self.quantiles(_REPORTED_QUANTILES)
        return {
            "count": self.count,
            "mean": self.mean if self.count else None,
            "std": self.std,
            "m2": self.m2,
            "min": self.min,
            "max": self.max,
            "nan": self.nan,
            "pos_inf": self.pos_inf,
            "neg_inf": self.neg_inf,
            "quantiles": {
                f"p{round(q * 100)}": value
                for q, value in zip(_REPORTED_QUANTILES, quantiles, strict=True)
            },
            "sketch": {
                "relative_accuracy": RELATIVE_ACCURACY,
                "mantissa_bits": MANTISSA_BITS,
                "keys": keys.tolist(),
                "counts": counts.tolist(),
            },
            "bins": self.bins.to_dict() if self.bins is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericStats:
        sketch = data["sketch"]
        if sketch.get("mantissa_bits") != MANTISSA_BITS:
            raise ProfileMergeError(f"sketch with mantissa_bits={sketch.get('mantissa_bits')}")
        keys = np.asarray(sketch["keys"], dtype=np.int64)
        counts = np.asarray(sketch["counts"], dtype=np.int64)
        order = np.argsort(keys)
        return cls(
            count=int(data["count"]),
            mean=float(data["mean"] or 0.0),
            m2=float(data["m2"]),
            min=data["min"],
            max=data["max"],
            nan=int(data["nan"]),
            pos_inf=int(data["pos_inf"]),
            neg_inf=int(data["neg_inf"]),
            sketch=Sketch(keys[order], counts[order]),
            bins=FixedBins.from_dict(data["bins"]) if data.get("bins") else None,
        )


def _pick(choose: Any, a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return choose(a, b)


def _present_values(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The non-null values as one contiguous numpy array (a copy only when there are nulls)."""
    if isinstance(values, pa.ChunkedArray):
        parts = [_present_values(chunk) for chunk in values.chunks]
        return np.concatenate(parts) if parts else np.empty(0)
    kind = values.type
    if not (pa.types.is_int64(kind) or pa.types.is_float64(kind)):
        present = values.drop_null() if values.null_count else values
        return np.asarray(present.to_numpy(zero_copy_only=False))
    # Straight from the Arrow buffers: a boolean index on the validity bitmap is a few times
    # cheaper than Arrow's own filter for one chunk.
    dtype = np.int64 if pa.types.is_int64(kind) else np.float64
    validity, data = values.buffers()[:2]
    start = values.offset
    raw = np.frombuffer(data, dtype=dtype, count=start + len(values))[start:]
    if values.null_count == 0:
        return raw
    bits = np.frombuffer(validity, dtype=np.uint8)
    mask = np.unpackbits(bits, count=start + len(values), bitorder="little")[start:]
    valid: np.ndarray = raw[mask.view(bool)]
    return valid


def numeric_chunk_stats(
    values: pa.Array | pa.ChunkedArray,
    *,
    bins: tuple[float, float, int] | None,
) -> NumericStats:
    """Summarise one chunk of an int64/float64 column (nulls are counted by the caller)."""
    present = _present_values(values)
    stats = NumericStats()
    if bins is not None:
        stats.bins = FixedBins.empty(*bins)
    if present.size == 0:
        return stats
    is_float = present.dtype.kind == "f"
    as_float = present if is_float else present.astype(np.float64)
    total = float(as_float.sum())
    if not math.isfinite(total):
        finite = np.isfinite(as_float)
        nan = np.isnan(as_float)
        stats.nan = int(np.count_nonzero(nan))
        infinite = ~(finite | nan)
        stats.pos_inf = int(np.count_nonzero(infinite & (as_float > 0)))
        stats.neg_inf = int(np.count_nonzero(infinite)) - stats.pos_inf
        as_float = as_float[finite]
        present = as_float
        total = float(as_float.sum())
    count = int(as_float.size)
    if count == 0:
        return stats
    stats.count = count
    stats.min = present.min().item()
    stats.max = present.max().item()
    stats.mean = total / count
    deviations = as_float - stats.mean
    deviations *= deviations  # not np.dot: BLAS threads cost more than they save on a chunk
    stats.m2 = float(deviations.sum())
    stats.sketch = Sketch.of(as_float)
    if stats.bins is not None:
        stats.bins.add(as_float, chunk_min=float(stats.min), chunk_max=float(stats.max))
    return stats


# --- categorical, string and datetime summaries -----------------------------------------------


@dataclass
class CategoryStats:
    """Exact value counts while there are at most `cap` distinct values."""

    cap: int
    counts: dict[str, int] = field(default_factory=dict)
    overflow: bool = False

    def add_counts(self, counts: Iterable[tuple[str, int]]) -> None:
        if self.overflow:
            return
        for value, count in counts:
            self.counts[value] = self.counts.get(value, 0) + count
        if len(self.counts) > self.cap:
            self.counts = {}
            self.overflow = True

    def top(self, k: int) -> list[tuple[str, int]]:
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:k]

    def merged(self, other: CategoryStats) -> CategoryStats:
        if self.cap != other.cap:
            raise ProfileMergeError(f"category caps differ ({self.cap} vs {other.cap})")
        merged = CategoryStats(self.cap, dict(self.counts), self.overflow or other.overflow)
        if merged.overflow:
            merged.counts = {}
        else:
            merged.add_counts(other.counts.items())
        return merged

    def to_dict(self) -> dict[str, Any]:
        return {
            "cap": self.cap,
            "overflow": self.overflow,
            "distinct": None if self.overflow else len(self.counts),
            "counts": [[value, count] for value, count in self.top(len(self.counts))],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoryStats:
        return cls(
            int(data["cap"]),
            {str(value): int(count) for value, count in data["counts"]},
            bool(data["overflow"]),
        )


def category_chunk_counts(values: pa.Array | pa.ChunkedArray) -> list[tuple[str, int]]:
    """Exact counts of the non-null values of one chunk (bools as 'true'/'false')."""
    if isinstance(values, pa.ChunkedArray):
        totals: dict[str, int] = {}
        for chunk in values.chunks:
            for value, count in category_chunk_counts(chunk):
                totals[value] = totals.get(value, 0) + count
        return list(totals.items())
    if pa.types.is_boolean(values.type):
        trues = int(pc.sum(values).as_py() or 0)
        falses = len(values) - values.null_count - trues
        return [(name, n) for name, n in (("true", trues), ("false", falses)) if n]
    if pa.types.is_dictionary(values.type):
        indices = values.indices
        if indices.null_count:
            indices = indices.drop_null()
        counts = np.bincount(
            np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.intp),
            minlength=len(values.dictionary),
        )
        used = np.flatnonzero(counts)
        names = values.dictionary.take(pa.array(used)).to_pylist()
        return [(str(name), int(n)) for name, n in zip(names, counts[used].tolist(), strict=True)]
    counted = pc.value_counts(values)
    pairs = zip(
        counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
    )
    return [(str(value), int(count)) for value, count in pairs if value is not None]


@dataclass
class RangeStats:
    """Min/max of datetimes (microseconds since the epoch) or of string lengths."""

    min: int | None = None
    max: int | None = None

    def add(self, low: int | None, high: int | None) -> None:
        self.min = _pick(min, self.min, low)
        self.max = _pick(max, self.max, high)

    def merged(self, other: RangeStats) -> RangeStats:
        return RangeStats(_pick(min, self.min, other.min), _pick(max, self.max, other.max))


def _iso(microseconds: int | None) -> str | None:
    if microseconds is None:
        return None
    return (_EPOCH + timedelta(microseconds=microseconds)).isoformat()


def _from_iso(text: str | None) -> int | None:
    if text is None:
        return None
    return (datetime.fromisoformat(text) - _EPOCH) // timedelta(microseconds=1)


# --- column and dataset profiles ---------------------------------------------------------------


@dataclass
class ColumnProfile:
    """One column: its contract type, row and null counts, and the summary its type allows."""

    type: str
    rows: int = 0
    nulls: int = 0
    numeric: NumericStats | None = None
    categories: CategoryStats | None = None
    datetimes: RangeStats | None = None
    lengths: RangeStats | None = None

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    def merged(self, other: ColumnProfile, name: str) -> ColumnProfile:
        if self.type != other.type:
            raise ProfileMergeError(f"column {name!r} is {self.type} in one profile, {other.type}")
        return ColumnProfile(
            type=self.type,
            rows=self.rows + other.rows,
            nulls=self.nulls + other.nulls,
            numeric=_merge_part(self.numeric, other.numeric, name),
            categories=_merge_part(self.categories, other.categories, name),
            datetimes=_merge_part(self.datetimes, other.datetimes, name),
            lengths=_merge_part(self.lengths, other.lengths, name),
        )

    def to_dict(self, top_k: int = 20) -> dict[str, Any]:
        document: dict[str, Any] = {
            "type": self.type,
            "rows": self.rows,
            "nulls": self.nulls,
            "null_rate": self.null_rate,
        }
        if self.numeric is not None:
            document["numeric"] = self.numeric.to_dict()
        if self.categories is not None:
            document["categories"] = self.categories.to_dict()
            document["top_k"] = [[v, n] for v, n in self.categories.top(top_k)]
        if self.datetimes is not None:
            document["datetime"] = {
                "min": _iso(self.datetimes.min),
                "max": _iso(self.datetimes.max),
            }
        if self.lengths is not None:
            document["length"] = {"min": self.lengths.min, "max": self.lengths.max}
        return document

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        profile = cls(type=str(data["type"]), rows=int(data["rows"]), nulls=int(data["nulls"]))
        if data.get("numeric") is not None:
            profile.numeric = NumericStats.from_dict(data["numeric"])
        if data.get("categories") is not None:
            profile.categories = CategoryStats.from_dict(data["categories"])
        if data.get("datetime") is not None:
            span = data["datetime"]
            profile.datetimes = RangeStats(_from_iso(span["min"]), _from_iso(span["max"]))
        if data.get("length") is not None:
            profile.lengths = RangeStats(data["length"]["min"], data["length"]["max"])
        return profile


def _merge_part(a: Any, b: Any, name: str) -> Any:
    if a is None and b is None:
        return None
    if a is None or b is None:
        raise ProfileMergeError(f"column {name!r} is summarised differently in the two profiles")
    return a.merged(b)


@dataclass
class DatasetProfile:
    """Row count and one `ColumnProfile` per contract column found in the data."""

    rows: int = 0
    columns: dict[str, ColumnProfile] = field(default_factory=dict)

    def to_dict(self, top_k: int = 20) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": {name: column.to_dict(top_k) for name, column in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetProfile:
        return cls(
            rows=int(data["rows"]),
            columns={
                str(name): ColumnProfile.from_dict(column)
                for name, column in data["columns"].items()
            },
        )


def merge_profiles(a: DatasetProfile, b: DatasetProfile) -> DatasetProfile:
    """Profile of the concatenation of two datasets: exact for counts, min/max and histograms."""
    if set(a.columns) != set(b.columns):
        missing = sorted(set(a.columns) ^ set(b.columns))
        raise ProfileMergeError(f"profiles cover different columns: {missing}")
    return DatasetProfile(
        rows=a.rows + b.rows,
        columns={name: a.columns[name].merged(b.columns[name], name) for name in a.columns},
    )


def empty_column_profile(
    column_type: str, *, bins: tuple[float, float, int] | None, category_cap: int
) -> ColumnProfile:
    profile = ColumnProfile(type=column_type)
    if column_type in ("int", "float"):
        profile.numeric = NumericStats(bins=FixedBins.empty(*bins) if bins else None)
    elif column_type in ("category", "bool"):
        profile.categories = CategoryStats(category_cap)
    elif column_type == "datetime":
        profile.datetimes = RangeStats()
    else:
        profile.lengths = RangeStats()
    return profile
