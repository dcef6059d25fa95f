"""`driftline report runs --html OUT [--env ENV] [--dataset D] [--limit N]`: a static HTML view.

One self-contained page (inline CSS and SVG, no scripts from anywhere, works offline) of the
env's runs and models: each dataset's runs with their primary metric over time, any two runs
compared side by side, the lineage dataset version → run → model version → endpoint history,
and the s3:// keys of every artifact. Built from the registries the CLI already reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from driftline.envs import add_env_argument
from driftline.errors import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report", help="write static HTML views: runs, metrics over time, lineage"
    )
    actions = parser.add_subparsers(dest="report_command", required=True)
    runs = actions.add_parser(
        "runs",
        help="runs and models as one HTML page: metrics over time, compare, lineage, artifacts",
    )
    runs.add_argument("--html", type=Path, required=True, metavar="OUT", help="file to write")
    add_env_argument(runs)
    runs.add_argument("--dataset", help="only this dataset's runs")
    runs.add_argument("--limit", type=int, default=200, help="at most N runs per dataset (200)")
    runs.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from driftline.runs_view import collect, render_runs_html

    document = collect(args.env, dataset=args.dataset, limit=args.limit)
    try:
        args.html.write_text(render_runs_html(document), encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write --html {args.html}: {error.strerror}") from error
    print(
        f"driftline: wrote {len(document['runs'])} runs and {len(document['models'])} models "
        f"to {args.html}",
        file=sys.stderr,
    )
    return 0
