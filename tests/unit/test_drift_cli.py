"""`driftline drift report` on files: printed report first, then exit 0/1/2; HTML is standalone."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.cli import main
from pipelines.drift import compute_drift
from pipelines.drift_html import render_html

pytestmark = pytest.mark.unit

ODD_NAME = '<img src=x onerror="alert(1)">&'


def frame(seed: int, n: int = 1000, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40 + 10 * shift, 10, size=n),
            "income": rng.lognormal(10, 0.5, size=n),
            "city": rng.choice(["paris", "rome", "oslo"], size=n),
            ODD_NAME: rng.normal(shift, 1, size=n),
            "score": rng.beta(2 + 3 * shift, 5, size=n),
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "baseline": tmp_path / "baseline.csv",
        "same": tmp_path / "same.parquet",
        "drifted": tmp_path / "drifted.csv",
        "tiny": tmp_path / "tiny.csv",
    }
    frame(1).to_csv(paths["baseline"], index=False)
    frame(2).to_parquet(paths["same"])
    frame(3, shift=1.0).to_csv(paths["drifted"], index=False)
    frame(4, n=50).to_csv(paths["tiny"], index=False)
    return paths


def drift_report(baseline: Path | str, current: Path | str, *options: str) -> int:
    return main(
        ["drift", "report", "--baseline", str(baseline), "--current", str(current), *options]
    )


def run_json(
    capsys: pytest.CaptureFixture[str], baseline: Path, current: Path, *options: str
) -> tuple[int, dict[str, Any]]:
    code = drift_report(baseline, current, *options, "--json")
    return code, json.loads(capsys.readouterr().out)


def test_no_drift_exits_0_and_json_is_one_report_object(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = run_json(capsys, files["baseline"], files["same"])

    assert code == 0
    assert document["verdict"] == "no_drift"
    assert set(document["features"]) == {"age", "income", "city", ODD_NAME, "score"}


def test_drift_prints_the_report_then_exits_1(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = run_json(capsys, files["baseline"], files["drifted"])

    assert code == 1
    assert document["verdict"] == "drift"
    assert document["drift_detected"] is True


def test_human_output_is_a_table_per_feature_with_the_verdict(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = drift_report(files["baseline"], files["drifted"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0].split()[:3] == ["FEATURE", "KIND", "STATUS"]
    assert {line.split()[0] for line in lines[1:6]} == {"age", "income", "city", "<img", "score"}
    assert lines[-1].startswith("verdict: drift")


def test_features_and_prediction_column_select_what_is_compared(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = run_json(
        capsys,
        files["baseline"],
        files["drifted"],
        "--features",
        "income,city",
        "--prediction-column",
        "score",
    )

    assert set(document["features"]) == {"income", "city"}
    assert document["prediction"]["name"] == "score"
    assert document["prediction"]["drifted"] is True
    assert code == 1


def test_too_few_rows_prints_insufficient_data_and_exits_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = drift_report(files["baseline"], files["tiny"], "--json")

    captured = capsys.readouterr()
    assert code == 2
    assert json.loads(captured.out)["verdict"] == "insufficient_data"
    assert captured.err.startswith("driftline: insufficient data: only 1000 reference and 50")


def unusable_file(directory: Path, case: str) -> Path:
    contents = {"unreadable": ("garbage.parquet", b"not parquet"), "extension": ("d.json", b"{}")}
    if case == "missing":
        return directory / "absent.csv"
    name, body = contents[case]
    (directory / name).write_bytes(body)
    return directory / name


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "current file not found: {path}"),
        ("unreadable", "current file {path} is unreadable"),
        ("extension", "current file {path}: expected .csv or .parquet"),
    ],
)
def test_unusable_current_file_is_one_line_and_exit_2(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    path = unusable_file(tmp_path, case)

    code = drift_report(files["baseline"], path)

    err = capsys.readouterr().err
    assert code == 2
    assert message.format(path=path) in err
    assert err.count("\n") == 1


def test_unknown_feature_and_non_numeric_values_are_usage_errors(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = frame(5)
    broken["age"] = broken["age"].astype(object)
    broken.loc[7, "age"] = "forty"
    broken.to_csv(tmp_path / "broken.csv", index=False)
    baseline = files["baseline"]

    unknown = drift_report(baseline, baseline, "--features", "nope")
    unknown_err = capsys.readouterr().err
    bad_value = drift_report(baseline, tmp_path / "broken.csv")
    bad_err = capsys.readouterr().err

    assert unknown == 2 and "--features: nope not in baseline" in unknown_err
    assert bad_value == 2 and "current column 'age': value 'forty' at row 7" in bad_err


def test_html_report_is_self_contained_with_overlaid_plots_and_escaped_names(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"

    code = drift_report(files["baseline"], files["drifted"], "--html", str(out), "--json")

    assert code == 1
    json.loads(capsys.readouterr().out)
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert ODD_NAME not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page
    assert "<script" not in page.lower()
    assert set(re.findall(r"(?:src|href)=\"(https?:[^\"]*)\"", page)) == set()
    features = page.split('<details class="feature"')[1:]
    assert len(features) == 5
    for feature in features:  # one chart per feature: both sides on one axis
        assert feature.count("<svg") == 1
        assert 'class="reference"' in feature and 'class="current"' in feature
        assert "share of rows" in feature
    assert 'data-status="drift"' in page


def test_html_summary_counts_drifted_features_and_rows_are_sorted_by_drift_score(
    files: dict[str, Path],
) -> None:
    baseline, drifted = pd.read_csv(files["baseline"]), pd.read_csv(files["drifted"])
    report = compute_drift(baseline, drifted)

    page = render_html(report)

    drifted_count = len(report.drifted_features)
    assert f"{drifted_count} of 5 features drifted" in page
    rows = re.findall(r'data-status="(\w+)" data-score="([\d.]+)"', page)
    statuses = [status for status, _ in rows]
    assert statuses == sorted(statuses, key=["drift", "insufficient_data", "no_drift"].index)
    drifted_scores = [float(score) for status, score in rows if status == "drift"]
    assert drifted_scores == sorted(drifted_scores, reverse=True)
    assert "Benjamini-Hochberg" in page


def test_html_captions_give_each_side_its_own_tallest_bar() -> None:
    rng = np.random.default_rng(7)
    reference = {"x": rng.normal(size=2000)}
    current = {"x": rng.normal(size=2000) * 0.3}  # much narrower: a much taller peak
    report = compute_drift(reference, current)
    histogram = report.feature("x").histogram
    assert histogram is not None and histogram.current is not None

    page = render_html(report)

    peaks = dict(re.findall(r'data-side="(\w+)">.*?\(tallest bar ([\d.]+)%\)', page))
    assert float(peaks["reference"]) == pytest.approx(100 * max(histogram.reference), abs=0.06)
    assert float(peaks["current"]) == pytest.approx(100 * max(histogram.current), abs=0.06)
    assert peaks["reference"] != peaks["current"]


def test_a_zero_one_target_is_drawn_as_two_category_bars() -> None:
    rng = np.random.default_rng(8)
    reference = {"target": rng.integers(0, 2, size=1000), "x": rng.normal(size=1000)}
    current = {"target": (rng.uniform(size=1000) < 0.8).astype(int), "x": rng.normal(size=1000)}
    report = compute_drift(reference, current)
    histogram = report.feature("target").histogram
    assert histogram is not None

    page = render_html(report)

    assert histogram.labels == ("0", "1") and histogram.edges is None
    target = next(part for part in page.split("<details")[1:] if 'id="f-target"' in part)
    assert target.count('<rect class="reference"') == 2
    assert target.count('<rect class="current"') == 2
    assert "target (category)" in target


def test_html_marks_a_missing_feature_and_renders_from_the_stored_json() -> None:
    rng = np.random.default_rng(6)
    reference = {"x": rng.normal(size=300), "gone": rng.normal(size=300)}
    current = {"x": rng.normal(size=300)}
    report = compute_drift(reference, current)

    page = render_html(json.loads(json.dumps(report.to_dict())))

    assert page == render_html(report)
    assert "current: missing" in page
    assert "missing from current" in page
