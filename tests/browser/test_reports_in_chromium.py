"""Both HTML reports rendered by a real browser: structure as a reader sees it, no script error.

The drift report is built from the example dataset with four size features scaled by 1.8 (the
demo's drift); the runs view from registry records shaped as
the pipeline writes them.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from driftline.runs_view import render_runs_html
from pipelines.drift import compute_drift
from pipelines.drift_html import render_html
from tests.browser.conftest import Browser

pytestmark = [pytest.mark.unit, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DRIFTED = ("mean_radius", "mean_perimeter", "worst_radius", "worst_perimeter")


class Elements(HTMLParser):
    """Start tags with their attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


def elements(dom: str) -> list[tuple[str, dict[str, str]]]:
    parser = Elements()
    parser.feed(dom)
    return parser.tags


def assert_no_script_error(console: list[str]) -> None:
    errors = [line for line in console if re.search(r"Uncaught|Error|error", line)]
    assert errors == [], errors


def drift_page(tmp_path: Path) -> Path:
    data = pd.read_csv(REPO / "examples" / "breast_cancer.csv")
    reference = data.sample(frac=0.5, random_state=1)
    current = data.drop(reference.index).copy()
    for column in DRIFTED:
        current[column] *= 1.8
    report = compute_drift(reference, current, prediction="target")
    page = tmp_path / "drift.html"
    page.write_text(render_html(report), encoding="utf-8")
    return page


def test_the_drift_report_renders_with_its_summary_sorted_rows_and_charts(
    browser: Browser, tmp_path: Path
) -> None:
    rendered = browser.render(drift_page(tmp_path))

    assert_no_script_error(rendered.console)
    summary = re.search(r'id="summary">(.*?)</p>', rendered.dom, re.S)
    assert summary is not None
    assert "4 of 30 features drifted" in re.sub(r"<[^>]+>", "", summary.group(1))
    rows = [attrs for tag, attrs in elements(rendered.dom) if tag == "details"]
    assert len(rows) == 31  # 30 features + the prediction
    drifted = [row for row in rows if row["data-status"] == "drift"]
    assert {row["data-feature"] for row in drifted} == set(DRIFTED)
    assert rows[: len(drifted)] == drifted  # drifted first
    scores = [float(row["data-score"]) for row in drifted]
    assert scores == sorted(scores, reverse=True)
    assert "open" in rows[0] and all("open" not in row for row in rows[1:])
    assert rendered.dom.count("<svg") == 31
    assert "share of rows" in rendered.dom


def run(run_id: str, started: str, auc: float, status: str = "Succeeded", **extra: Any) -> Any:
    return {
        "run_id": run_id,
        "dataset": "breast_cancer",
        "status": status,
        "trigger": "upload",
        "started_at": started,
        "duration_total": 41.2,
        "dataset_version_id": f"v-{run_id}",
        "code_version": "abc1234",
        "primary_metric": "roc_auc",
        "metrics": {"test": {"roc_auc": auc, "accuracy": auc - 0.03}},
        "params": {"features": [f"f{i}" for i in range(30)], "estimator_params": {"lr": 0.1}},
        "artifacts": {"model": f"runs/{run_id}/model.skops"},
        **extra,
    }


def runs_document() -> dict[str, Any]:
    runs = [
        run("bc-1", "2026-11-01T10:00:00Z", 0.981, model_version=1, deployment_status="Deployed"),
        run("bc-2", "2026-11-08T10:00:00Z", 0.930, status="Rejected"),
        run("bc-3", "2026-11-15T10:00:00Z", 0.990, model_version=2, deployment_status="Deployed"),
    ]
    versions = [
        {
            "model": "breast_cancer",
            "version": number,
            "status": "Approved",
            "run_id": run_id,
            "artifacts": {"model": f"models/breast_cancer/v{number}/model.skops"},
            "lineage": {"dataset": "breast_cancer", "s3_version_id": f"v-{run_id}"},
        }
        for number, run_id in ((2, "bc-3"), (1, "bc-1"))
    ]
    history = [
        {
            "model_version": number,
            "action": "deploy",
            "status": "Succeeded",
            "recorded_at": at,
            "deployed_by": f"arn:aws:states:us-east-1:0:execution:M:{run_id}",
        }
        for number, run_id, at in ((2, "bc-3", "2026-11-15T10:01:00Z"), (1, "bc-1", "x"))
    ]
    return {
        "env": "local",
        "generated_at": "2026-12-04T12:00:00+00:00",
        "artifacts_bucket": "artifacts",
        "datasets_bucket": "datasets",
        "runs": runs,
        "models": {"breast_cancer": versions},
        "endpoints": {"breast_cancer": history},
        "datasets": {
            "breast_cancer": [
                {"version_id": f"v-bc-{n}", "key": "datasets/breast_cancer/data.csv"}
                for n in (1, 2, 3)
            ]
        },
    }


def test_the_runs_view_renders_metrics_compare_lineage_and_artifacts(
    browser: Browser, tmp_path: Path
) -> None:
    page = tmp_path / "runs.html"
    page.write_text(render_runs_html(runs_document()), encoding="utf-8")

    rendered = browser.render(page)

    assert_no_script_error(rendered.console)
    assert 'data-compare="ready"' in rendered.dom  # the compare script ran to its end
    tags = elements(rendered.dom)
    assert [a["id"] for t, a in tags if t == "section"] == [
        "metrics",
        "runs",
        "compare",
        "lineage",
        "artifacts",
    ]
    assert sum(1 for t, a in tags if t == "circle" and a.get("class") == "point") == 3
    assert [a["id"] for t, a in tags if t == "tr" and a.get("id", "").startswith("run-")] == [
        "run-bc-3",
        "run-bc-2",
        "run-bc-1",
    ]
    body = rendered.dom.split('id="compare-body"')[1].split("</tbody>")[0]
    assert "+0.0600" in body  # test.roc_auc of bc-3 minus bc-2, filled in by the script
    assert "s3://datasets/datasets/breast_cancer/data.csv?versionId=v-bc-3" in rendered.dom
    assert "run:bc-3" in rendered.dom  # who deployed, shortened
    assert "s3://artifacts/models/breast_cancer/v2/model.skops" in rendered.dom
