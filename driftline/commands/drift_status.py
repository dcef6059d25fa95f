"""`driftline drift status --model M [--env ENV] [--json]`: the latest drift check of a model.

Reads `reports/drift/<model>/latest.json` (written by the drift monitor after every check) and
the report it points at from the env's artifacts bucket. Exit codes as `drift report`: 0 no
drift, 1 drift found, 2 too little traffic for a verdict (or no report at all).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from driftline.envs import add_env_argument
from driftline.errors import EXIT_NEGATIVE_VERDICT, EXIT_OK, EXIT_UNUSABLE_INPUT, UsageError
from driftline.output import emit


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = actions.add_parser(
        "status",
        help="summary of a deployed model's latest drift check",
        description="Exit 0 no drift, 1 drift found, 2 insufficient data or no report yet.",
    )
    status.add_argument("--model", required=True, help="model (= dataset) name")
    add_env_argument(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=run)


def _read_json(bucket: str, key: str, what: str) -> dict[str, Any]:
    from driftline.aws import s3_json

    try:
        document: dict[str, Any] | None = s3_json(bucket, key)
    except ValueError:
        raise UsageError(f"{what} s3://{bucket}/{key} is not JSON") from None
    if document is None:
        raise UsageError(f"{what} not found: s3://{bucket}/{key}")
    return document


def run(args: argparse.Namespace) -> int:
    from driftline.aws import require_output, stack_outputs
    from pipelines.keys import latest_report_key
    from pipelines.monitoring import flagged_features

    bucket = require_output(stack_outputs(args.env), "ArtifactsBucketName", args.env)
    latest = _read_json(
        bucket,
        latest_report_key(args.model),
        f"no drift check of model {args.model!r} yet: its latest report",
    )
    document = _read_json(bucket, str(latest["report_key"]), "drift report")
    report = document.get("report") or {}
    flagged = [
        {
            "feature": score.name,
            "status": score.status,
            "psi": score.psi,
            "ks": score.ks_statistic,
            "reason": score.reason,
        }
        for score in flagged_features(report)
    ]
    emit(
        {**latest, "flagged_features": flagged},
        as_json=args.json,
        rows=flagged
        or [
            {"feature": "(none)", "status": latest.get("verdict"), "reason": latest.get("summary")}
        ],
    )
    if not args.json:
        print(
            f"model {args.model} v{latest.get('model_version')} at {latest.get('generated_at')}: "
            f"{latest.get('verdict')} ({latest.get('summary')}); report {latest.get('html_uri')}"
        )
    verdict = latest.get("verdict")
    if verdict == "drift":
        return EXIT_NEGATIVE_VERDICT
    if verdict != "no_drift":
        print(f"driftline: no verdict: {latest.get('summary')}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    return EXIT_OK
