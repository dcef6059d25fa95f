"""Drift at 1M reference rows vs 1M current rows x 20 numeric features; prints one JSON object.

ours:     pipelines.drift.compute_drift (PSI, KS + p-value, Wasserstein, chi-square, histograms,
          Benjamini-Hochberg and the verdict) on the two DataFrames.
floor:    a per-feature ``scipy.stats.ks_2samp`` loop (KS only), the obvious baseline.
peer:     Evidently's DataDriftPreset. Evidently 0.7 does not import with pandas 3, so it runs in
          its own virtualenv under .driftline/bench-evidently/ (created on first use, pinned
          below) on the same frames written to Parquet; only ``Report.run`` is timed. If that
          cannot be set up the peer is null with the reason.

Usage: .venv/bin/python bench/drift.py [--rows N] [--skip-evidently]
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
import venv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.drift import compute_drift  # noqa: E402

EVIDENTLY_VENV = REPO / ".driftline" / "bench-evidently"
EVIDENTLY_PINS = ("evidently==0.7.23", "pandas==2.3.3", "pyarrow==26.0.1")
FEATURES = 20
SEED = 20260101

# What happens to which feature in the current data (the rest are the same distribution).
SHIFTS: dict[str, str] = {
    "f00": "mean +0.5 sd",
    "f01": "mean +0.3 sd",
    "f02": "sd x1.5",
    "f03": "mean +0.02 sd (negligible: p-values flag it, effect sizes should not)",
    "f04": "5% of values x10 (tail)",
}

EVIDENTLY_SCRIPT = r"""
import json, resource, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
import evidently

reference = pd.read_parquet(sys.argv[1])
current = pd.read_parquet(sys.argv[2])
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(reference_data=reference, current_data=current)
seconds = time.perf_counter() - start
rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
drifted = []
count = None
for metric in snapshot.dict()["metrics"]:
    config, value = metric["config"], metric["value"]
    if config.get("type", "").endswith("DriftedColumnsCount"):
        count = value["count"]
    elif config.get("type", "").endswith("ValueDrift") and value >= config["threshold"]:
        drifted.append(config["column"])
print(json.dumps({
    "seconds": seconds,
    "version": evidently.__version__,
    "drifted_columns": count,
    "drifted": sorted(drifted),
    "extra_max_rss_mib": (rss_after - rss_before) / 1024,
}))
"""


def make_frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(SEED)
    names = [f"f{i:02d}" for i in range(FEATURES)]
    reference = pd.DataFrame({name: rng.normal(size=rows) for name in names})
    current = pd.DataFrame({name: rng.normal(size=rows) for name in names})
    current["f00"] += 0.5
    current["f01"] += 0.3
    current["f02"] *= 1.5
    current["f03"] += 0.02
    tail = rng.uniform(size=rows) < 0.05
    current.loc[tail, "f04"] *= 10
    return reference, current


def timed(function: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def ensure_evidently_venv() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    marker = EVIDENTLY_VENV / "pins.txt"
    if python.exists() and marker.exists() and marker.read_text() == "\n".join(EVIDENTLY_PINS):
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(EVIDENTLY_VENV)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_PINS],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    marker.write_text("\n".join(EVIDENTLY_PINS))
    return python


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    try:
        python = ensure_evidently_venv()
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        return {"seconds": None, "error": f"virtualenv setup failed: {detail.strip()[-300:]}"}
    with tempfile.TemporaryDirectory(dir=REPO / ".driftline") as scratch:
        ref_path, cur_path = Path(scratch) / "reference.parquet", Path(scratch) / "current.parquet"
        reference.to_parquet(ref_path)
        current.to_parquet(cur_path)
        try:
            done = subprocess.run(
                [str(python), "-c", EVIDENTLY_SCRIPT, str(ref_path), str(cur_path)],
                check=True,
                capture_output=True,
                text=True,
                timeout=3600,
            )
        except subprocess.CalledProcessError as error:
            return {"seconds": None, "error": f"evidently failed: {error.stderr.strip()[-300:]}"}
        except subprocess.TimeoutExpired:
            return {"seconds": None, "error": "evidently did not finish within an hour"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["error"] = None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()
    reference, current = make_frames(args.rows)

    ours_seconds, report = timed(lambda: compute_drift(reference, current))
    scipy_seconds, scipy_results = timed(
        lambda: {
            name: ks_2samp(reference[name].to_numpy(), current[name].to_numpy())
            for name in reference.columns
        }
    )
    for name, result in scipy_results.items():  # the fast path must agree with scipy here too
        assert abs(report.feature(name).ks_statistic - float(result.statistic)) < 1e-12, name

    peer: dict[str, Any]
    if args.skip_evidently:
        peer = {"seconds": None, "error": "skipped (--skip-evidently)"}
    else:
        peer = run_evidently(reference, current)

    evidently_seconds = peer.get("seconds")
    print(
        json.dumps(
            {
                "benchmark": "drift",
                "rows_reference": args.rows,
                "rows_current": args.rows,
                "features": FEATURES,
                "shifted": SHIFTS,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "ours": {
                    "seconds": round(ours_seconds, 3),
                    "computes": "PSI, KS + p-value, Wasserstein (+ normalised), chi-square on "
                    "PSI bins, histograms, BH gate, verdict",
                    "verdict": report.verdict,
                    "drifted": report.drifted_features,
                },
                "floor_scipy_ks_2samp_loop": {
                    "seconds": round(scipy_seconds, 3),
                    "computes": "KS statistic + p-value only",
                    "p_below_0_05": sorted(
                        name for name, result in scipy_results.items() if result.pvalue < 0.05
                    ),
                },
                "peer_evidently_data_drift_preset": peer,
                "ratio_ours_over_scipy_loop": round(ours_seconds / scipy_seconds, 3),
                "ratio_evidently_over_ours": (
                    round(evidently_seconds / ours_seconds, 2) if evidently_seconds else None
                ),
                "targets": {"ours_over_scipy_loop_max": 1.5, "evidently_over_ours_min": 10},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
