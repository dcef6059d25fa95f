"""`make docs-images`: the README's screenshots, rendered by headless Chromium, never by hand.

- docs/images/drift-report.png: `driftline drift report --html` on the example dataset, one
  half as the baseline and the other half with four size features scaled by 1.8 (the demo's
  drift), the target as the prediction column;
- docs/images/runs-view.png: `driftline report runs --html` of a week of breast_cancer runs
  (an upload, a retrain the gate rejected, a retrain that shipped), as the registries hold them.

Usage: .venv/bin/python docs/make_images.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from driftline.runs_view import render_runs_html  # noqa: E402
from pipelines.drift import compute_drift  # noqa: E402
from pipelines.drift_html import render_html  # noqa: E402
from tests.browser.chromium import HEADLESS_FLAGS, find_chromium  # noqa: E402

EXECUTION_ARN_PREFIX = "arn:aws:states:eu-west-1:222233334444:execution:Training"
DRIFTED = ("mean_radius", "mean_perimeter", "worst_radius", "worst_perimeter")
FEATURES = list(pd.read_csv(REPO / "examples" / "breast_cancer.csv", nrows=0).columns)


def drift_page() -> str:
    data = pd.read_csv(REPO / "examples" / "breast_cancer.csv")
    reference = data.sample(frac=0.5, random_state=1)
    current = data.drop(reference.index).copy()
    for column in DRIFTED:
        current[column] *= 1.8
    report = compute_drift(reference, current, prediction="target")
    return render_html(report, title="Drift report: breast_cancer v1 (example)")


def _run(run_id: str, day: int, auc: float, status: str, trigger: str, **extra: Any) -> Any:
    return {
        "run_id": run_id,
        "dataset": "breast_cancer",
        "status": status,
        "trigger": trigger,
        "started_at": f"2026-11-{day:02d}T09:30:00Z",
        "finished_at": f"2026-11-{day:02d}T09:31:02Z",
        "duration_total": 61.8,
        "dataset_version_id": f"3HL4kqtJlcpXroDTDmJ{day:02d}",
        "code_version": "6df43f1",
        "primary_metric": "roc_auc",
        "metrics": {
            "test": {"roc_auc": auc, "accuracy": round(auc - 0.04, 4), "f1": round(auc - 0.03, 4)},
            "train": {"roc_auc": 1.0, "accuracy": 0.998, "f1": 0.998},
        },
        "params": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "estimator_params": {"max_iter": 200, "learning_rate": 0.1},
            "features": [name for name in FEATURES if name != "target"],
            "split": {"seed": 42, "test_fraction": 0.2},
        },
        "artifacts": {
            "model": f"runs/{run_id}/model.skops",
            "metrics": f"runs/{run_id}/metrics.json",
        },
        **extra,
    }


def runs_document() -> dict[str, Any]:
    runs = [
        _run(
            "breast_cancer-3HL4kqtJ01",
            1,
            0.9912,
            "Succeeded",
            "upload",
            model_version=1,
            deployment_status="Deployed",
        ),
        _run("breast_cancer-3HL4kqtJ04", 4, 0.9455, "Rejected", "retrain", cause="gate"),
        _run(
            "breast_cancer-3HL4kqtJ08",
            8,
            0.9968,
            "Succeeded",
            "retrain",
            model_version=2,
            deployment_status="Deployed",
        ),
    ]
    versions = [
        {
            "model": "breast_cancer",
            "version": number,
            "status": "Approved",
            "run_id": run["run_id"],
            "artifacts": {"model": f"models/breast_cancer/v{number}/model.skops"},
            "lineage": {"dataset": "breast_cancer", "s3_version_id": run["dataset_version_id"]},
        }
        for number, run in ((2, runs[2]), (1, runs[0]))
    ]
    history = [
        {
            "model_version": number,
            "action": "deploy",
            "status": "Succeeded",
            "recorded_at": f"{run['finished_at']}",
            "deployed_by": f"{EXECUTION_ARN_PREFIX}:{run['run_id']}",
        }
        for number, run in ((2, runs[2]), (1, runs[0]))
    ]
    return {
        "env": "dev",
        "generated_at": "2026-11-08T12:00:00+00:00",
        "artifacts_bucket": "driftline-dev-artifacts",
        "datasets_bucket": "driftline-dev-datasets",
        "runs": runs,
        "models": {"breast_cancer": versions},
        "endpoints": {"breast_cancer": history},
        "datasets": {
            "breast_cancer": [
                {"version_id": run["dataset_version_id"], "key": "datasets/breast_cancer/data.csv"}
                for run in runs
            ]
        },
    }


def screenshot(html: str, out: Path, *, height: int) -> None:
    browser = find_chromium()
    if browser is None:
        raise SystemExit("docs-images: no chromium on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="driftline-docs-") as scratch:
        page = Path(scratch) / "page.html"
        page.write_text(html, encoding="utf-8")
        subprocess.run(
            [
                browser,
                *HEADLESS_FLAGS,
                "--hide-scrollbars",
                f"--user-data-dir={Path(scratch) / 'profile'}",
                f"--window-size=1280,{height}",
                f"--screenshot={out}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    screenshot(drift_page(), args.out.resolve() / "drift-report.png", height=1100)
    screenshot(render_runs_html(runs_document()), args.out.resolve() / "runs-view.png", height=1300)


if __name__ == "__main__":
    main()
