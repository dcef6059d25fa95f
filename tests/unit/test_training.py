"""Preparing, splitting, training, evaluating and (de)serialising models.

Fitting runs under a one-thread OpenMP limit: on a shared 2-core machine HistGradientBoosting's
thread pool spends far longer contending than computing on a few hundred rows.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from pipelines.gating import evaluate_gate
from pipelines.model_card import (
    CardFacts,
    metrics_document,
    render_evaluation_plot,
    render_model_card,
)
from pipelines.model_config import ModelConfig, load_model_config, parse_model_config
from pipelines.model_io import (
    DataLineage,
    ModelIOError,
    ModelVersionError,
    dump_model,
    load_model,
    metadata_for_run,
    read_metadata,
)
from pipelines.training import (
    Evaluation,
    TrainingError,
    TrainingRun,
    evaluate,
    prepare,
    run_training,
    score_model,
    split_rows,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LINEAGE = DataLineage(
    dataset="breast_cancer",
    s3_version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
    manifest_sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    code_version="b460475",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


def breast_cancer() -> tuple[pd.DataFrame, dict[str, str]]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [name.lower().replace(" ", "_") for name in frame.columns]
    contract = {name: ("int" if name == "target" else "float") for name in frame.columns}
    return frame, contract


@pytest.fixture(scope="module")
def cancer_run() -> tuple[TrainingRun, pd.DataFrame, dict[str, str]]:
    frame, contract = breast_cancer()
    config = load_model_config(REPO / "models" / "breast_cancer.yaml", contract)
    with threadpool_limits(limits=1):
        return run_training(frame, config, contract), frame, contract


def small_config(extra: str = "", task: str = "classification", target: str = "label") -> Any:
    return parse_model_config(
        f"task: {task}\ntarget: {target}\nestimator: {{params: {{max_iter: 20}}}}\n{extra}",
        source="models/small.yaml",
    )


def mixed_frame(rows: int = 200, seed: int = 0) -> tuple[pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(seed)
    city = rng.choice(["oslo", "lima", "pune"], size=rows)
    income = rng.normal(50, 10, size=rows)
    label = ((city == "oslo") | (income > 55)).astype(int)
    frame = pd.DataFrame({"income": income, "city": city, "label": label})
    frame.loc[::17, "income"] = np.nan
    return frame, {"income": "float", "city": "string", "label": "int"}


# --- split ----------------------------------------------------------------------------------


def test_same_seed_gives_the_same_rows() -> None:
    y = pd.Series(np.tile([0, 1, 1, 0, 1], 40))
    first = split_rows(y, task="classification", test_fraction=0.2, validation_fraction=0.2, seed=5)
    again = split_rows(y, task="classification", test_fraction=0.2, validation_fraction=0.2, seed=5)
    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(first.part(part), again.part(part))


def test_different_seed_gives_different_rows() -> None:
    y = pd.Series(np.tile([0, 1, 1, 0, 1], 40))
    first = split_rows(y, task="classification", test_fraction=0.2, validation_fraction=0.2, seed=5)
    other = split_rows(y, task="classification", test_fraction=0.2, validation_fraction=0.2, seed=6)
    assert not np.array_equal(first.test, other.test)


def test_split_partitions_every_row_exactly_once_and_is_stratified() -> None:
    y = pd.Series([0] * 150 + [1] * 50)
    split = split_rows(y, task="classification", test_fraction=0.2, validation_fraction=0.2, seed=1)
    together = np.concatenate([split.train, split.validation, split.test])
    np.testing.assert_array_equal(np.sort(together), np.arange(200))
    assert split.stratified
    assert split.sizes() == {"train": 120, "validation": 40, "test": 40}
    assert y.iloc[split.test].mean() == pytest.approx(0.25)


def test_split_falls_back_to_unstratified_when_a_class_is_too_small() -> None:
    y = pd.Series([0] * 19 + [1])
    split = split_rows(y, task="classification", test_fraction=0.2, validation_fraction=0.2, seed=1)
    assert not split.stratified
    assert sum(split.sizes().values()) == 20


def test_challenger_and_champion_configs_share_the_test_rows() -> None:
    frame, contract = mixed_frame()
    challenger = prepare(frame, small_config("split: {seed: 9}"), contract)
    champion_config = parse_model_config(
        "task: classification\ntarget: label\nsplit: {seed: 9}\n"
        "estimator: {class_path: sklearn.linear_model.LogisticRegression}",
        source="models/other.yaml",
    )
    champion = prepare(frame, champion_config, contract)
    np.testing.assert_array_equal(challenger.split.test, champion.split.test)


# --- training failures ----------------------------------------------------------------------


def test_single_class_target_is_a_training_error() -> None:
    frame, contract = mixed_frame()
    frame["label"] = 1
    with pytest.raises(TrainingError, match="target 'label' has only one class"):
        run_training(frame, small_config(), contract)


def test_all_null_feature_is_a_training_error_naming_the_column() -> None:
    frame, contract = mixed_frame()
    frame["income"] = np.nan
    with pytest.raises(TrainingError, match="feature 'income' is null in every row"):
        run_training(frame, small_config(), contract)


def test_null_target_is_a_training_error_naming_the_first_row() -> None:
    frame, contract = mixed_frame()
    frame["label"] = frame["label"].astype("float64")
    frame.loc[[3, 8], "label"] = np.nan
    with pytest.raises(TrainingError, match=r"target 'label' has 2 null values \(first at row 3\)"):
        run_training(frame, small_config(), contract)


def test_empty_dataset_is_a_training_error() -> None:
    frame, contract = mixed_frame()
    with pytest.raises(TrainingError, match="training split is empty"):
        run_training(frame.iloc[0:0], small_config(), contract)


def test_text_in_a_numeric_column_is_a_training_error_naming_the_row() -> None:
    frame, contract = mixed_frame()
    frame["income"] = frame["income"].astype("object")
    frame.loc[4, "income"] = "n/a"
    with pytest.raises(TrainingError, match=r"feature 'income' is numeric .* row 4 holds 'n/a'"):
        run_training(frame, small_config(), contract)


def test_column_missing_from_the_data_is_a_training_error() -> None:
    frame, contract = mixed_frame()
    with pytest.raises(TrainingError, match="column 'city' is in the contract but missing"):
        run_training(frame.drop(columns=["city"]), small_config(), contract)


def test_non_numeric_regression_target_is_a_training_error() -> None:
    frame, contract = mixed_frame()
    frame["label"] = frame["label"].map({0: "low", 1: "high"})
    with pytest.raises(TrainingError, match="must be numeric for regression"):
        run_training(frame, small_config(task="regression"), contract)


# --- training and evaluation ----------------------------------------------------------------


def test_breast_cancer_model_passes_the_shipped_gate(
    cancer_run: tuple[TrainingRun, pd.DataFrame, dict[str, str]],
) -> None:
    run, _, _ = cancer_run
    test_metrics = run.evaluation.test_metrics
    decision = evaluate_gate(
        test_metrics, None, run.config.gate, primary_metric=run.config.primary_metric
    )
    assert decision.passed, decision.reasons
    assert test_metrics["roc_auc"] >= 0.95
    assert set(run.evaluation.metrics) == {"train", "validation", "test"}
    confusion = run.evaluation.confusion
    assert confusion is not None
    assert sum(sum(row) for row in confusion.matrix) == len(run.prepared.split.test)


def test_scoring_on_the_test_rows_reproduces_the_test_metrics(
    cancer_run: tuple[TrainingRun, pd.DataFrame, dict[str, str]],
) -> None:
    run, frame, _ = cancer_run
    scored = score_model(run.model, frame.iloc[run.prepared.split.test], run.config)
    assert scored == pytest.approx(run.evaluation.test_metrics)


class CountingClassifier:
    """A fitted classifier that counts how often it is asked to score."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.classes_ = model.classes_
        self.calls = {"predict": 0, "predict_proba": 0}

    def predict(self, x: pd.DataFrame) -> Any:
        self.calls["predict"] += 1
        return self.model.predict(x)

    def predict_proba(self, x: pd.DataFrame) -> Any:
        self.calls["predict_proba"] += 1
        return self.model.predict_proba(x)


def test_evaluation_scores_each_split_with_one_predict_proba_and_labels_from_it(
    cancer_run: tuple[TrainingRun, pd.DataFrame, dict[str, str]],
) -> None:
    run, _, _ = cancer_run
    counting = CountingClassifier(run.model)

    evaluation = evaluate(counting, run.prepared, run.config)

    assert counting.calls == {"predict": 0, "predict_proba": 3}  # train, validation, test
    x_test, _ = run.prepared.part("test")
    np.testing.assert_array_equal(evaluation.test_predicted, run.model.predict(x_test))
    assert evaluation.metrics == run.evaluation.metrics


@pytest.mark.parametrize(
    "estimator",
    ["sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.linear_model.LogisticRegression"],
)
def test_string_and_missing_features_train_and_unseen_categories_still_predict(
    estimator: str,
) -> None:
    frame, contract = mixed_frame()
    config: ModelConfig = parse_model_config(
        f"task: classification\ntarget: label\nestimator: {{class_path: {estimator}}}",
        source="models/mixed.yaml",
    )
    run = run_training(frame, config, contract)
    assert run.evaluation.test_metrics["accuracy"] > 0.8
    unseen = pd.DataFrame({"income": [np.nan, 70.0], "city": ["reykjavik", None], "label": [0, 1]})
    assert len(score_model(run.model, unseen, config)) == len(config.metric_names)


def test_regression_reports_residuals_and_draws_a_scatter() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 2))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": 3 * x[:, 0] - x[:, 1]})
    config = small_config(task="regression", target="y")
    run = run_training(frame, config, {"a": "float", "b": "float", "y": "float"})
    assert run.evaluation.residuals is not None
    assert run.evaluation.residuals.count == len(run.prepared.split.test)
    assert run.evaluation.test_metrics["r2"] > 0.8
    assert render_evaluation_plot(run.evaluation, title="synthetic").startswith(PNG_MAGIC)


# --- model card and metrics document --------------------------------------------------------


def test_model_card_carries_lineage_metrics_and_gate_reasons(
    cancer_run: tuple[TrainingRun, pd.DataFrame, dict[str, str]],
) -> None:
    run, _, _ = cancer_run
    decision = evaluate_gate(run.evaluation.test_metrics, None, run.config.gate)
    card = render_model_card(
        run,
        lineage=LINEAGE,
        created_at="2026-11-29T21:00:00+00:00",
        sklearn_version="1.9.1",
        gate=decision,
    )
    for expected in (
        LINEAGE.s3_version_id,
        LINEAGE.manifest_sha256,
        LINEAGE.code_version,
        "| roc_auc (primary) |",
        "## Intended use",
        "## Limitations",
        "Gate **passed**",
        decision.reasons[0],
    ):
        assert expected in card
    assert render_evaluation_plot(run.evaluation, title="breast_cancer").startswith(PNG_MAGIC)
    document = metrics_document(run, gate=decision)
    assert document["split"]["sizes"]["test"] == len(run.prepared.split.test)
    assert document["gate"]["passed"] is True


def test_card_from_the_metrics_document_matches_the_card_from_the_run(
    cancer_run: tuple[TrainingRun, pd.DataFrame, dict[str, str]],
) -> None:
    """The gate renders the card from `metrics.json` (as stored: JSON), not from the model."""
    run, _, _ = cancer_run
    decision = evaluate_gate(run.evaluation.test_metrics, None, run.config.gate)
    stored = json.loads(json.dumps(metrics_document(run)))
    card = {
        "lineage": LINEAGE,
        "created_at": "2026-11-29T21:00:00+00:00",
        "sklearn_version": "1.9.1",
        "gate": decision,
    }

    from_document = CardFacts.from_document(stored, run.config, features=0)

    assert from_document.features == len(run.prepared.features)
    assert render_model_card(from_document, **card) == render_model_card(run, **card)


def test_card_from_a_document_without_class_shares_or_features_still_renders() -> None:
    """Documents written before the card's inputs were stored in them (an older Train)."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=120), "label": ([0] * 110) + ([1] * 10)})
    config = small_config()
    run = run_training(frame, config, {"a": "float", "label": "int"})
    stored = json.loads(json.dumps(metrics_document(run)))
    del stored["class_shares"], stored["features"]

    card = render_model_card(
        CardFacts.from_document(stored, config, features=1),
        lineage=LINEAGE,
        created_at="2026-11-29T21:00:00+00:00",
        sklearn_version="1.9.1",
    )

    assert "| features | 1 |" in card
    assert "accuracy alone overstates" not in card  # class shares unknown: no claim made
    assert "accuracy alone overstates" in render_model_card(
        run, lineage=LINEAGE, created_at="2026-11-29T21:00:00+00:00", sklearn_version="1.9.1"
    )


def test_evaluation_from_its_document_keeps_every_number_and_undefined_metrics_as_nan() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 2))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": 3 * x[:, 0] - x[:, 1]})
    run = run_training(
        frame,
        small_config(task="regression", target="y"),
        {"a": "float", "b": "float", "y": "float"},
    )
    document = json.loads(json.dumps(run.evaluation.to_dict()))
    document["metrics"]["test"]["r2"] = None

    restored = Evaluation.from_dict(document)

    assert restored.residuals == run.evaluation.residuals
    assert np.isnan(restored.test_metrics["r2"])
    assert restored.metrics["train"] == run.evaluation.metrics["train"]
    assert restored.to_dict() == document


# --- model IO -------------------------------------------------------------------------------


def test_model_round_trip_predicts_identically_and_keeps_metadata(
    cancer_run: tuple[TrainingRun, pd.DataFrame, dict[str, str]],
) -> None:
    run, frame, _ = cancer_run
    metadata = metadata_for_run(run, created_at="2026-11-29T21:00:00+00:00", lineage=LINEAGE)
    loaded = load_model(dump_model(run.model, metadata))
    x = frame[list(run.prepared.features)]
    np.testing.assert_array_equal(loaded.model.predict_proba(x), run.model.predict_proba(x))
    assert loaded.metadata == metadata
    assert loaded.metadata.classes == [0, 1]
    assert loaded.metadata.features == list(run.prepared.features)
    assert loaded.metadata.lineage["s3_version_id"] == LINEAGE.s3_version_id


def test_loading_under_another_sklearn_version_is_a_clear_error(
    cancer_run: tuple[TrainingRun, pd.DataFrame, dict[str, str]],
) -> None:
    run, _, _ = cancer_run
    metadata = metadata_for_run(run, created_at="2026-11-29T21:00:00+00:00")
    data = dump_model(run.model, dataclasses.replace(metadata, sklearn_version="1.5.2"))
    with pytest.raises(
        ModelVersionError, match=r"written with scikit-learn 1\.5\.2 but this runtime"
    ):
        load_model(data)
    assert read_metadata(data).sklearn_version == "1.5.2"


class _Smuggled:
    """A type no allowlist should admit."""

    def __init__(self) -> None:
        self.payload = 1


def test_archive_holding_a_type_outside_the_allowlist_is_refused(
    cancer_run: tuple[TrainingRun, pd.DataFrame, dict[str, str]],
) -> None:
    run, _, _ = cancer_run
    metadata = metadata_for_run(run, created_at="2026-11-29T21:00:00+00:00")
    with pytest.raises(ModelIOError, match=r"outside the allowlist: .*_Smuggled"):
        load_model(dump_model(_Smuggled(), metadata))


def test_bytes_that_are_not_a_model_archive_are_refused() -> None:
    with pytest.raises(ModelIOError, match="not a Driftline model archive"):
        load_model(b"not a zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(ModelIOError, match="no 'format' marker"):
        load_model(buffer.getvalue())
