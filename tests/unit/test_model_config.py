"""Model configs: every mistake is one line naming the file and key, raised before training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.model_config import (
    ModelConfigError,
    build_estimator,
    load_model_config,
    parse_model_config,
    resolve_features,
)
from pipelines.training import run_training

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CONTRACT = {"age": "int", "income": "float", "city": "string", "label": "int"}
SOURCE = "models/example.yaml"


def parse(text: str) -> object:
    return parse_model_config(text, source=SOURCE)


def config_error(text: str, contract: dict[str, str] | None = None) -> str:
    with pytest.raises(ModelConfigError) as caught:
        config = parse_model_config(text, source=SOURCE)
        if contract is not None:
            resolve_features(config, contract)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{SOURCE}: ")
    return message


def test_shipped_breast_cancer_config_is_valid_against_its_columns() -> None:
    from sklearn.datasets import load_breast_cancer

    names = [name.lower().replace(" ", "_") for name in load_breast_cancer().feature_names]
    contract = {**dict.fromkeys(names, "float"), "target": "int"}
    config = load_model_config(REPO / "models" / "breast_cancer.yaml", contract)
    assert config.task == "classification"
    assert config.primary_metric == "roc_auc"
    assert config.gate.thresholds["roc_auc"] >= 0.95
    assert resolve_features(config, contract) == names


def test_unknown_estimator_is_rejected_naming_the_key() -> None:
    message = config_error(
        "task: classification\ntarget: label\n"
        "estimator: {class_path: sklearn.ensemble.NoSuchForest}\n"
    )
    assert "key 'estimator.class_path'" in message
    assert "NoSuchForest" in message


def test_estimator_outside_sklearn_is_rejected() -> None:
    message = config_error(
        "task: classification\ntarget: label\nestimator: {class_path: os.system}"
    )
    assert "not a scikit-learn import path" in message


def test_sklearn_object_that_is_not_an_estimator_is_rejected() -> None:
    message = config_error(
        "task: regression\ntarget: label\nestimator: {class_path: sklearn.metrics.r2_score}"
    )
    assert "is not a scikit-learn estimator class" in message


def test_regressor_for_a_classification_task_is_rejected() -> None:
    message = config_error(
        "task: classification\ntarget: label\n"
        "estimator: {class_path: sklearn.linear_model.LinearRegression}"
    )
    assert "is not a classification estimator" in message


def test_unknown_estimator_parameter_is_rejected_naming_it() -> None:
    message = config_error(
        "task: classification\ntarget: label\nestimator: {params: {max_iterations: 10}}"
    )
    assert "key 'estimator.params.max_iterations'" in message
    assert "max_iter" in message  # the valid names are listed


def test_invalid_estimator_parameter_value_is_rejected_before_training() -> None:
    message = config_error(
        "task: classification\ntarget: label\nestimator: {params: {max_iter: -1}}"
    )
    assert "key 'estimator.params'" in message
    assert "max_iter" in message


def test_unknown_metric_is_rejected_with_the_valid_names() -> None:
    message = config_error("task: classification\ntarget: label\nmetrics: [roc_auc, gini]")
    assert "key 'metrics[1]'" in message
    assert "unknown metric 'gini'" in message
    assert "accuracy" in message


def test_metric_of_the_other_task_is_rejected() -> None:
    message = config_error("task: classification\ntarget: label\nmetrics: [rmse]")
    assert "'rmse' is a regression metric" in message


def test_probability_metric_needs_an_estimator_that_gives_probabilities() -> None:
    message = config_error(
        "task: classification\ntarget: label\nmetrics: [log_loss]\n"
        "estimator: {class_path: sklearn.svm.LinearSVC}"
    )
    assert "key 'metrics[0]'" in message


def test_target_not_in_the_contract_is_rejected() -> None:
    message = config_error("task: classification\ntarget: outcome\n", CONTRACT)
    assert "key 'target'" in message
    assert "'outcome' is not a column of the data contract" in message


def test_feature_not_in_the_contract_is_rejected() -> None:
    message = config_error(
        "task: classification\ntarget: label\nfeatures: [age, postcode]\n", CONTRACT
    )
    assert "key 'features[1]'" in message
    assert "postcode" in message


def test_feature_of_an_unsupported_type_is_rejected_naming_the_column() -> None:
    message = config_error(
        "task: classification\ntarget: label\n", {**CONTRACT, "signup": "datetime"}
    )
    assert "column 'signup'" in message
    assert "datetime" in message


def test_unknown_key_is_rejected() -> None:
    message = config_error("task: classification\ntarget: label\nestimatr: {}\n")
    assert "key 'estimatr': unknown key" in message


def test_gate_on_a_metric_not_computed_is_rejected() -> None:
    message = config_error(
        "task: classification\ntarget: label\nmetrics: [accuracy]\n"
        "gate: {thresholds: {roc_auc: 0.9}}"
    )
    assert "key 'gate.thresholds.roc_auc'" in message


def test_split_leaving_no_training_rows_is_rejected() -> None:
    message = config_error(
        "task: classification\ntarget: label\nsplit: {test_fraction: 0.5, validation_fraction: 0.5}"
    )
    assert "key 'split'" in message
    assert "below 1" in message


def test_invalid_yaml_names_the_line() -> None:
    message = config_error("task: classification\ntarget: [label\n")
    assert "not valid YAML at line" in message


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match=r"missing\.yaml: cannot read"):
        load_model_config(tmp_path / "missing.yaml")


def test_defaults_follow_the_task() -> None:
    classification = parse_model_config("task: classification\ntarget: label", source=SOURCE)
    regression = parse_model_config("task: regression\ntarget: label", source=SOURCE)
    assert classification.estimator_path.endswith("HistGradientBoostingClassifier")
    assert regression.estimator_path.endswith("HistGradientBoostingRegressor")
    assert regression.primary_metric == "rmse"
    assert classification.approval == "env-default"


def test_default_features_are_every_contract_column_but_the_target_in_order() -> None:
    config = parse_model_config("task: classification\ntarget: label", source=SOURCE)
    assert resolve_features(config, CONTRACT) == ["age", "income", "city"]


def test_estimator_is_seeded_from_the_split_seed_unless_configured() -> None:
    seeded = parse_model_config(
        "task: classification\ntarget: label\nsplit: {seed: 7}", source=SOURCE
    )
    explicit = parse_model_config(
        "task: classification\ntarget: label\nestimator: {params: {random_state: 3}}",
        source=SOURCE,
    )
    assert build_estimator(seeded).random_state == 7
    assert build_estimator(explicit).random_state == 3


def test_contract_mismatch_stops_a_run_before_any_fitting() -> None:
    config = parse_model_config("task: classification\ntarget: outcome", source=SOURCE)
    frame = pd.DataFrame({"age": [1, 2], "income": [1.0, 2.0], "city": ["a", "b"], "label": [0, 1]})
    with pytest.raises(ModelConfigError, match="key 'target'"):
        run_training(frame, config, CONTRACT)
