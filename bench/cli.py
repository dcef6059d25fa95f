"""The CLI's own cost: `driftline --help`, and `driftline drift report` at 200k rows x 5 columns.

Both are timed as fresh processes, as a person or a script runs them (best of N wall times):

help:   `driftline --help` against the floor `python -c "import argparse"` (an interpreter that
        parses nothing). Goal: at most 0.3 s.
drift:  `driftline drift report --baseline A.csv --current B.csv --json` against the floor of
        a plain script doing the least a drift check can: read both CSVs with pandas and run
        `scipy.stats.ks_2samp` per column. Goal: ours at most 1.2x the floor.

Usage: .venv/bin/python bench/cli.py [--rows 200000] [--repeat 5]; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DRIFTLINE = [sys.executable, "-m", "driftline"]
COLUMNS = 5
SEED = 20261204
HELP_GOAL_SECONDS = 0.3
DRIFT_GOAL_RATIO = 1.2

FLOOR_SCRIPT = r"""
import sys
import pandas as pd
from scipy.stats import ks_2samp
reference, current = pd.read_csv(sys.argv[1]), pd.read_csv(sys.argv[2])
for column in reference.columns:
    ks_2samp(reference[column].to_numpy(), current[column].to_numpy())
"""


def best_wall(command: list[str], repeat: int, *, ok_codes: tuple[int, ...] = (0,)) -> float:
    times = []
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode not in ok_codes:
            raise SystemExit(f"{command[:4]} exited {done.returncode}: {done.stderr[-500:]!r}")
    return min(times)


def write_frames(folder: Path, rows: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(SEED)
    names = [f"f{i}" for i in range(COLUMNS)]
    reference = pd.DataFrame({name: rng.normal(size=rows) for name in names})
    current = pd.DataFrame({name: rng.normal(size=rows) for name in names})
    current["f0"] += 0.3  # one drifted column, so the report has something to say
    paths = folder / "reference.csv", folder / "current.csv"
    reference.to_csv(paths[0], index=False)
    current.to_csv(paths[1], index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    help_ours = best_wall([*DRIFTLINE, "--help"], args.repeat)
    help_floor = best_wall([sys.executable, "-c", "import argparse"], args.repeat)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-cli-") as scratch:
        reference, current = write_frames(Path(scratch), args.rows)
        drift_ours = best_wall(
            [
                *DRIFTLINE,
                "drift",
                "report",
                "--baseline",
                str(reference),
                "--current",
                str(current),
                "--json",
            ],
            args.repeat,
            ok_codes=(0, 1),
        )
        drift_floor = best_wall(
            [sys.executable, "-c", FLOOR_SCRIPT, str(reference), str(current)], args.repeat
        )
    print(
        json.dumps(
            {
                "benchmark": "cli",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "repeat": args.repeat,
                "help": {
                    "ours_seconds": round(help_ours, 3),
                    "floor_seconds": round(help_floor, 3),
                    "goal_seconds": HELP_GOAL_SECONDS,
                    "meets_goal": help_ours <= HELP_GOAL_SECONDS,
                },
                "drift_report": {
                    "rows": args.rows,
                    "columns": COLUMNS,
                    "ours_seconds": round(drift_ours, 3),
                    "floor_seconds": round(drift_floor, 3),
                    "ratio": round(drift_ours / drift_floor, 3),
                    "goal_ratio": DRIFT_GOAL_RATIO,
                    "meets_goal": drift_ours / drift_floor <= DRIFT_GOAL_RATIO,
                    "floor": "pandas.read_csv x2 + scipy.stats.ks_2samp per column",
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
