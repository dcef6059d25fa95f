"""`driftline drift report`: compare a current data file with a baseline, offline.

It runs the same statistics as the drift monitor on CSV or Parquet files. The report is always
printed before the exit code is decided: 0 no drift, 1 drift found, 2 unusable input or too
little data for a verdict (a script must not read "not enough rows" as "no drift").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftline.commands import drift_status
from driftline.errors import (
    EXIT_NEGATIVE_VERDICT,
    EXIT_OK,
    EXIT_UNUSABLE_INPUT,
    UsageError,
)
from driftline.output import emit

if TYPE_CHECKING:  # pandas and scipy load only when the command runs (cold start of the CLI)
    import pandas as pd

    from pipelines.drift import DriftReport


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("drift", help="compare data distributions for drift")
    actions = parser.add_subparsers(dest="drift_command", required=True)
    report = actions.add_parser(
        "report",
        help="compare a current CSV/Parquet file with a baseline file",
        description="Exit 0 no drift, 1 drift found, 2 unusable input or insufficient data.",
    )
    report.add_argument("--baseline", required=True, type=Path, help="reference CSV or Parquet")
    report.add_argument("--current", required=True, type=Path, help="current CSV or Parquet")
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.add_argument("--html", type=Path, metavar="OUT", help="also write an HTML report")
    report.add_argument("--features", help="comma-separated feature names (default: all)")
    report.add_argument("--prediction-column", metavar="COL", help="model output column")
    report.set_defaults(handler=run)
    drift_status.register(actions)


def read_frame(path: Path, role: str) -> pd.DataFrame:
    """Read a CSV or Parquet file; anything unreadable is a one-line UsageError."""
    import pandas as pd

    if not path.is_file():
        raise UsageError(f"{role} file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt") or suffix == "":
            return pd.read_csv(path)
    except Exception as error:  # parsers raise many types; the user needs the file and reason
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UsageError(
            f"{role} file {path} is unreadable: {type(error).__name__}: {first_line}"
        ) from error
    raise UsageError(f"{role} file {path}: expected .csv or .parquet, got {suffix!r}")


def run(args: argparse.Namespace) -> int:
    from pipelines.drift import DriftInputError, compute_drift
    from pipelines.drift_html import render_html

    baseline = read_frame(args.baseline, "baseline")
    current = read_frame(args.current, "current")
    features = None
    if args.features:
        features = [name.strip() for name in args.features.split(",") if name.strip()]
        unknown = [name for name in features if name not in baseline.columns]
        if unknown:
            raise UsageError(f"--features: {', '.join(unknown)} not in baseline {args.baseline}")
    prediction = args.prediction_column
    if prediction is not None and prediction not in baseline.columns:
        raise UsageError(f"--prediction-column {prediction!r} not in baseline {args.baseline}")
    try:
        report = compute_drift(baseline, current, features=features, prediction=prediction)
    except DriftInputError as error:
        raise UsageError(str(error)) from error

    document = report.to_dict()
    if args.html is not None:
        try:
            args.html.write_text(render_html(report), encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot write --html {args.html}: {error.strerror}") from error
    emit(document, as_json=args.json, rows=_rows(report))
    if not args.json:
        print(f"verdict: {report.verdict} ({report.summary})")
    if args.html is not None:
        print(f"driftline: wrote HTML report to {args.html}", file=sys.stderr)
    if report.verdict == "drift":
        return EXIT_NEGATIVE_VERDICT
    if report.verdict == "insufficient_data":
        print(f"driftline: insufficient data: {report.summary}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    return EXIT_OK


def _rows(report: DriftReport) -> list[dict[str, Any]]:
    entries = list(report.features)
    if report.prediction is not None:
        entries.append(report.prediction)
    rows = []
    for entry in entries:
        is_prediction = entry is report.prediction
        rows.append(
            {
                "feature": f"{entry.name} (prediction)" if is_prediction else entry.name,
                "kind": entry.kind,
                "status": entry.status,
                "psi": entry.psi,
                "ks": entry.ks_statistic,
                "wasserstein_sd": entry.wasserstein_normalized,
                "chi2_p": entry.chi2_pvalue,
                "js": entry.js_distance,
                "null_ref": entry.null_rate_reference,
                "null_cur": entry.null_rate_current,
                "reason": entry.reason,
            }
        )
    return rows
