"""The promotion gate: absolute bounds, champion comparison on the same rows, clear reasons."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from pipelines.gating import evaluate_gate
from pipelines.model_config import GateConfig, load_model_config, parse_model_config
from pipelines.training import run_training, score_model

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
GATE = GateConfig(
    thresholds={"roc_auc": 0.9, "accuracy": 0.85},
    max_regression={"roc_auc": 0.02, "accuracy": 0.02},
)


@pytest.fixture(autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


def test_good_first_model_passes_on_absolute_bounds() -> None:
    decision = evaluate_gate({"roc_auc": 0.97, "accuracy": 0.93}, None, GATE)
    assert decision.passed
    assert "roc_auc 0.9700 >= minimum 0.9" in decision.reasons
    assert "no champion yet: regression checks skipped" in decision.reasons
    assert not decision.champion_compared


def test_below_minimum_fails_naming_the_metric() -> None:
    decision = evaluate_gate({"roc_auc": 0.97, "accuracy": 0.80}, None, GATE)
    assert not decision.passed
    assert decision.reasons == ["accuracy 0.8000 < minimum 0.85"]


def test_error_metric_threshold_is_a_maximum() -> None:
    gate = GateConfig(thresholds={"rmse": 2.0})
    assert evaluate_gate({"rmse": 1.5}, None, gate).passed
    failed = evaluate_gate({"rmse": 2.5}, None, gate)
    assert failed.reasons == ["rmse 2.5000 > maximum 2"]


def test_challenger_worse_than_champion_beyond_tolerance_fails_naming_the_metric() -> None:
    decision = evaluate_gate(
        {"roc_auc": 0.95, "accuracy": 0.92}, {"roc_auc": 0.99, "accuracy": 0.92}, GATE
    )
    assert not decision.passed
    assert len(decision.reasons) == 1
    assert decision.reasons[0].startswith("roc_auc 0.9500 is 0.0400 worse than champion 0.9900")
    assert "exceeds the allowed regression 0.02" in decision.reasons[0]


def test_regression_within_tolerance_passes() -> None:
    decision = evaluate_gate(
        {"roc_auc": 0.975, "accuracy": 0.93}, {"roc_auc": 0.99, "accuracy": 0.92}, GATE
    )
    assert decision.passed
    assert decision.champion_compared


def test_error_metric_regression_counts_an_increase_as_worse() -> None:
    gate = GateConfig(max_regression={"mae": 0.1})
    assert evaluate_gate({"mae": 1.05}, {"mae": 1.0}, gate).passed
    decision = evaluate_gate({"mae": 1.3}, {"mae": 1.0}, gate)
    assert not decision.passed
    assert "mae 1.3000 is 0.3000 worse than champion 1.0000" in decision.reasons[0]


def test_primary_metric_is_compared_with_zero_tolerance_when_none_is_configured() -> None:
    gate = GateConfig(thresholds={"f1": 0.5})
    decision = evaluate_gate({"f1": 0.80}, {"f1": 0.81}, gate, primary_metric="f1")
    assert not decision.passed
    assert "f1 0.8000 is 0.0100 worse than champion 0.8100" in decision.reasons[0]
    assert evaluate_gate({"f1": 0.82}, {"f1": 0.81}, gate, primary_metric="f1").passed


def test_undefined_or_missing_metrics_fail_instead_of_passing() -> None:
    undefined = evaluate_gate({"roc_auc": math.nan, "accuracy": 0.9}, None, GATE)
    assert undefined.reasons == ["roc_auc is undefined on the test split; minimum is 0.9"]
    missing_champion = evaluate_gate({"roc_auc": 0.95, "accuracy": 0.9}, {"roc_auc": 0.95}, GATE)
    assert not missing_champion.passed
    assert "champion accuracy is undefined on the same test split" in missing_champion.reasons[0]


def test_decision_document_is_json_ready() -> None:
    document = evaluate_gate({"roc_auc": 0.5, "accuracy": 0.9}, None, GATE).to_dict()
    assert document["passed"] is False
    assert document["checks"][0] == {
        "kind": "threshold",
        "metric": "roc_auc",
        "passed": False,
        "challenger": 0.5,
        "limit": 0.9,
        "champion": None,
        "reason": "roc_auc 0.5000 < minimum 0.9",
    }


def test_weak_challenger_scored_against_the_real_champion_on_its_test_rows_fails() -> None:
    from sklearn.datasets import load_breast_cancer

    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    frame.columns = [name.lower().replace(" ", "_") for name in frame.columns]
    contract = {name: ("int" if name == "target" else "float") for name in frame.columns}
    champion_config = load_model_config(REPO / "models" / "breast_cancer.yaml", contract)
    champion = run_training(frame, champion_config, contract)

    # Same dataset, same seed: the challenger sees one weak feature through a one-split stump.
    weak_config = parse_model_config(
        "task: classification\ntarget: target\nfeatures: [mean_fractal_dimension]\n"
        "estimator: {class_path: sklearn.tree.DecisionTreeClassifier, params: {max_depth: 1}}\n"
        "metrics: [roc_auc, accuracy, f1]\nsplit: {seed: 42}\n"
        "gate: {max_regression: {roc_auc: 0.02, accuracy: 0.02}}",
        source="models/weak.yaml",
    )
    challenger = run_training(frame, weak_config, contract)
    test_rows = frame.iloc[challenger.prepared.split.test]
    champion_metrics = score_model(champion.model, test_rows, weak_config)

    decision = evaluate_gate(
        challenger.evaluation.test_metrics,
        champion_metrics,
        weak_config.gate,
        primary_metric=weak_config.primary_metric,
    )
    assert not decision.passed
    failed_metrics = {check.metric for check in decision.checks if not check.passed}
    assert {"roc_auc", "accuracy"} <= failed_metrics
    assert any(
        reason.startswith("roc_auc ") and "worse than champion" in reason
        for reason in decision.reasons
    )
