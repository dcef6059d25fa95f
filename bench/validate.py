"""Benchmark: driftline validate + profile vs pyarrow's CSV reader (floor) vs pandera (peer).

Prints one JSON object. The data is a deterministic 1,000,000 x 20 CSV (ints, floats, two
categoricals, free text, a boolean and a timestamp, about 1 % nulls), written once to
`.driftline/bench/` in two variants measured alike: string fields bare (`unquoted`) and every
string field in double quotes (`quoted_strings`), since quotes change how rows are found.
The contenders run in-process, in `--repeat` interleaved rounds on the warm file (a noisy
neighbour slows all of them alike, and none pays a cold process the others do not), after one
untimed warm-up each; each one's best wall time counts, and CPU seconds (all threads) are
reported too, being far less sensitive to a shared machine:

* floor: `pyarrow.csv.read_csv(path)` alone (multi-threaded, no checks, no profile);
* ours: `pipelines.validation.validate` with every contract check and the full profile; its
  peak RSS comes from one extra run in a fresh subprocess (`getrusage(RUSAGE_CHILDREN)`);
* peer: pandera's pandas `DataFrameSchema` with the same checks (types, nullability, ranges,
  allowed values, unique id, no extra columns) after `pandas.read_csv(engine="pyarrow")`.

Run: `.venv/bin/python bench/validate.py [--rows N] [--repeat R]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".driftline" / "bench"
GENERATOR_VERSION = 1
COLORS = ["red", "green", "blue", "amber", "violet"]

CONTRACT = """
dataset: bench
primary_key: [id]
columns:
  id: {type: int, min: 1}
  f0: {type: float, nullable: true, min: -100, max: 100}
  f1: {type: float, nullable: true, min: -100, max: 100}
  f2: {type: float, nullable: true}
  f3: {type: float, nullable: true}
  f4: {type: float, nullable: true}
  f5: {type: float, nullable: true}
  f6: {type: float, nullable: true}
  f7: {type: float, nullable: true}
  f8: {type: float, nullable: true}
  f9: {type: float, nullable: true}
  i0: {type: int, nullable: true, min: 0, max: 999}
  i1: {type: int, nullable: true, min: 0, max: 1999}
  i2: {type: int, nullable: true, min: 0, max: 2999}
  amount: {type: float, nullable: true, min: 0}
  color: {type: category, nullable: true, allowed: [red, green, blue, amber, violet]}
  region: {type: category, nullable: true, allow_numeric: true}
  note: {type: string, nullable: true, allow_numeric: true}
  flag: {type: bool, nullable: true}
  ts: {type: datetime, nullable: true}
"""

CHILD = """
import json, sys, time
from pipelines.contracts import load_contract
from pipelines.validation import validate
contract = load_contract(sys.argv[2])
start, cpu = time.perf_counter(), time.process_time()
report = validate(sys.argv[1], contract)
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"wall": wall, "cpu": cpu, "valid": report.valid, "rows": report.rows,
                  "violations": [v.to_dict() for v in report.violations][:3]}))
"""


def make_csv(path: Path, rows: int, quoting: str, seed: int = 7) -> None:
    """Deterministic mixed-type data. `quoting` is pyarrow's `quoting_style`: "none" writes
    strings bare, as pandas and Spark do; "needed" quotes every string field, as R, Excel and
    pyarrow's own writer do (the same values, so the two files differ only in quotes)."""
    rng = np.random.default_rng(seed)

    def with_nulls(values: Any) -> pa.Array:
        return pa.array(values, mask=rng.random(rows) < 0.01)

    columns: dict[str, pa.Array] = {"id": pa.array(np.arange(1, rows + 1, dtype=np.int64))}
    for i in range(10):
        columns[f"f{i}"] = with_nulls(np.round(rng.normal(i, 1 + i, rows), 6))
    for i in range(3):
        columns[f"i{i}"] = with_nulls(rng.integers(0, 1000 * (i + 1), rows))
    columns["amount"] = with_nulls(np.round(rng.gamma(2.0, 50.0, rows), 2))
    columns["color"] = with_nulls(np.array(COLORS)[rng.integers(0, len(COLORS), rows)])
    regions = np.array([f"region_{k}" for k in range(40)])
    columns["region"] = with_nulls(regions[rng.integers(0, 40, rows)])
    columns["note"] = with_nulls(np.char.add("note ", rng.integers(0, 10**6, rows).astype(str)))
    columns["flag"] = with_nulls(rng.random(rows) < 0.3)
    start = np.datetime64("2024-01-01T00:00:00")
    seconds = rng.integers(0, 365 * 86400, rows).astype("timedelta64[s]")
    columns["ts"] = with_nulls(start + seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    pacsv.write_csv(pa.table(columns), partial, pacsv.WriteOptions(quoting_style=quoting))
    partial.replace(path)


def timed(action: Any) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - start, time.process_time() - cpu


def run_ours(path: Path, contract: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(contract)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def pandera_schema() -> Any:
    import pandera.pandas as pdx

    def nullable_float(low: float | None = None, high: float | None = None) -> Any:
        checks = [pdx.Check.in_range(low, high)] if low is not None and high is not None else []
        if low is not None and high is None:
            checks = [pdx.Check.ge(low)]
        return pdx.Column(float, checks, nullable=True)

    columns = {
        "id": pdx.Column("int64", pdx.Check.ge(1), unique=True),
        "f0": nullable_float(-100, 100),
        "f1": nullable_float(-100, 100),
        **{f"f{i}": nullable_float() for i in range(2, 10)},
        "i0": pdx.Column("Int64", pdx.Check.in_range(0, 999), nullable=True),
        "i1": pdx.Column("Int64", pdx.Check.in_range(0, 1999), nullable=True),
        "i2": pdx.Column("Int64", pdx.Check.in_range(0, 2999), nullable=True),
        "amount": nullable_float(0),
        "color": pdx.Column(str, pdx.Check.isin(COLORS), nullable=True),
        "region": pdx.Column(str, nullable=True),
        "note": pdx.Column(str, nullable=True),
        "flag": pdx.Column("boolean", nullable=True),
        "ts": pdx.Column("datetime64[ns]", nullable=True),
    }
    return pdx.DataFrameSchema(columns, strict=True)


def make_peer(path: Path) -> tuple[Any, str | None, str | None]:
    """pandera's read + validate as a callable, or None and the reason it cannot run."""
    try:
        import pandas as pd
        import pandera
    except ImportError as error:
        return None, None, f"pandera is not importable: {error}"
    schema = pandera_schema()
    dtypes = {"i0": "Int64", "i1": "Int64", "i2": "Int64", "flag": "boolean"}

    def read_and_validate() -> None:
        frame = pd.read_csv(path, engine="pyarrow", dtype=dtypes, parse_dates=["ts"])
        schema.validate(frame, lazy=True)

    return read_and_validate, pandera.__version__, None


# The file variants every run measures: name → pyarrow quoting style.
VARIANTS = {"unquoted": "none", "quoted_strings": "needed"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    contract = WORK / "validate-contract.yaml"
    contract.parent.mkdir(parents=True, exist_ok=True)
    contract.write_text(CONTRACT)
    files: dict[str, Path] = {}
    for variant, quoting in VARIANTS.items():
        suffix = "" if variant == "unquoted" else f"-{variant}"
        files[variant] = WORK / f"validate-v{GENERATOR_VERSION}{suffix}-{args.rows}.csv"
        if not files[variant].exists():
            make_csv(files[variant], args.rows, quoting)
    # Memory first, in fresh children: a child's peak RSS includes the parent's size when it
    # was spawned, so the parent must still be small (no tables read yet) for the number to be
    # the children's own (RUSAGE_CHILDREN is the largest of them).
    first = {variant: run_ours(path, contract) for variant, path in files.items()}
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    document: dict[str, Any] = {
        "benchmark": "validate",
        "rows": args.rows,
        "columns": 20,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "ours_peak_rss_mib": round(peak_mib, 1),
        "targets": {"ratio_ours_over_floor": 1.2, "ratio_ours_over_peer": 1.0, "rss_mib": 1024},
        "variants": {
            variant: measure(path, contract, first[variant], args.repeat)
            for variant, path in files.items()
        },
    }
    document["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(document, indent=2))
    return 0


def measure(data: Path, contract: Path, first: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Best-of-`repeat` wall and CPU seconds of floor, ours and peer on one file, interleaved."""
    from pipelines.contracts import load_contract
    from pipelines.validation import validate

    with data.open("rb") as handle:  # warm the page cache for every contender alike
        while handle.read(1 << 24):
            pass
    rules = load_contract(contract)
    peer_run, peer_version, peer_reason = make_peer(data)
    contenders: dict[str, Any] = {
        "floor": lambda: pacsv.read_csv(data),
        "ours": lambda: validate(data, rules),
    }
    if peer_run is not None:
        contenders["peer"] = peer_run
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for action in contenders.values():
        action()
    for _ in range(repeat):
        for name, action in contenders.items():
            samples[name].append(timed(action))
    floor, ours, peer = samples["floor"], samples["ours"], samples.get("peer", [])
    best_floor, best_ours = min(floor), min(ours)
    best_peer = min(peer) if peer else None
    result: dict[str, Any] = {
        "file_mib": round(data.stat().st_size / 2**20, 1),
        "floor_pyarrow_read_csv_s": round(best_floor[0], 3),
        "ours_validate_and_profile_s": round(best_ours[0], 3),
        "peer_pandera_s": None if best_peer is None else round(best_peer[0], 3),
        "ratio_ours_over_floor": round(best_ours[0] / best_floor[0], 2),
        "ratio_ours_over_peer": None
        if best_peer is None
        else round(best_ours[0] / best_peer[0], 2),
        "cpu_s": {
            "floor": round(min(cpu for _, cpu in floor), 3),
            "ours": round(min(cpu for _, cpu in ours), 3),
            "peer": None if not peer else round(min(cpu for _, cpu in peer), 3),
        },
        "ours_valid": first["valid"],
        "ours_rows": first["rows"],
        "peer_pandera_version": peer_version,
        "peer_reason": peer_reason,
    }
    if first["violations"]:
        result["ours_violations"] = first["violations"]
    return result


if __name__ == "__main__":
    sys.exit(main())
