"""`driftline drift report` on the issue's case: one of five features drifted is drift (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.cli import main

pytestmark = pytest.mark.unit


def five_features(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {f"f{i}": rng.normal(size=n) for i in range(4)}
        | {"city": rng.choice(["paris", "rome", "oslo"], size=n)}
    )


def report_on(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    directory: Path,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, dict[str, Any]]:
    """`drift report --json` on the two frames, written as CSV files."""
    paths = directory / "baseline.csv", directory / "current.csv"
    baseline.to_csv(paths[0], index=False)
    current.to_csv(paths[1], index=False)
    code = main(
        ["drift", "report", "--baseline", str(paths[0]), "--current", str(paths[1]), "--json"]
    )
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("change", ["mean_shift", "new_category"])
def test_one_drifted_feature_of_five_exits_1_with_the_share_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    baseline, current = five_features(1), five_features(2)
    if change == "mean_shift":
        current["f2"] = current["f2"] + 0.5  # 0.5 sigma
    else:
        current.loc[:29, "city"] = "lima"

    code, document = report_on(baseline, current, tmp_path, capsys)

    assert (code, document["verdict"]) == (1, "drift")
    assert document["drifted_features"] == (["f2"] if change == "mean_shift" else ["city"])
    assert document["drifted_share"] == pytest.approx(0.2)


def test_all_null_against_all_null_exits_as_insufficient_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = pd.DataFrame({"x": [np.nan] * 500})

    code, document = report_on(empty, empty, tmp_path, capsys)

    assert document["verdict"] == "insufficient_data" and code != 0


def test_psi_metrics_leave_out_a_psi_the_report_did_not_confirm() -> None:
    """The PSI alarms fire only where the report's rule finds drift."""
    import dataclasses

    from pipelines.drift import compute_drift
    from pipelines.monitoring import drift_metrics

    baseline, current = five_features(3), five_features(4)
    current["f1"] = current["f1"] + 1.0
    report = compute_drift(baseline, current)
    assert report.drifted_features == ["f1"]
    unconfirmed = dataclasses.replace(report.feature("f1"), status="no_drift")
    features = tuple(unconfirmed if f.name == "f1" else f for f in report.features)
    calm = dataclasses.replace(report, features=features, drifted_share=0.0)

    confirmed_metrics, calm_metrics = drift_metrics(report), drift_metrics(calm)

    psi = report.feature("f1").psi
    assert psi is not None and psi > report.thresholds.psi
    assert confirmed_metrics.max_feature_psi == psi
    assert confirmed_metrics.drift_score is not None and confirmed_metrics.drift_score > 1
    assert calm_metrics.feature_psi["f1"] == psi  # still published per feature
    assert calm_metrics.max_feature_psi is not None
    assert calm_metrics.max_feature_psi <= report.thresholds.psi
    assert calm_metrics.drift_score is not None and calm_metrics.drift_score <= 1
