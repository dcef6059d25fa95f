"""Prepare, split, train and evaluate one model, as pure functions of (data, config, seed).

The split is returned as positional row indices into the frame that was prepared. They are a
function of the row count, the target values and the split seed only, so whoever holds the
same dataset version and config can recompute them; the champion is scored on the challenger's
test rows by passing `frame.iloc[run.prepared.split.test]` to `score_model`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipelines.evaluation import (
    SPLITS,
    ConfusionMatrix,
    Evaluation,
    ResidualSummary,
    SplitName,
)
from pipelines.model_config import (
    METRICS,
    FeatureKind,
    ModelConfig,
    Task,
    build_estimator,
    feature_kind,
    resolve_features,
)

IndexArray = npt.NDArray[np.int64]


class TrainingError(RuntimeError):
    """The data cannot train this model; the message names the cause and the column."""


@dataclass(frozen=True)
class SplitIndices:
    """Sorted positional row indices of each part of the split."""

    train: IndexArray
    validation: IndexArray
    test: IndexArray
    seed: int
    stratified: bool

    def sizes(self) -> dict[str, int]:
        return {name: len(self.part(name)) for name in SPLITS}

    def part(self, name: SplitName) -> IndexArray:
        indices: IndexArray = getattr(self, name)
        return indices


@dataclass(frozen=True)
class PreparedData:
    """Model inputs for every row, coerced to the kinds the contract declares."""

    features: tuple[str, ...]
    feature_kinds: Mapping[str, FeatureKind]
    feature_types: Mapping[str, str]
    target: str
    x: pd.DataFrame
    y: pd.Series
    split: SplitIndices

    def part(self, name: SplitName) -> tuple[pd.DataFrame, pd.Series]:
        rows = self.split.part(name)
        return self.x.iloc[rows], self.y.iloc[rows]


@dataclass(frozen=True)
class TrainingRun:
    config: ModelConfig
    prepared: PreparedData
    model: Any
    evaluation: Evaluation


def _first_row(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _coerce_features(frame: pd.DataFrame, kinds: Mapping[str, FeatureKind]) -> pd.DataFrame:
    """Numbers as float, categories as Python strings with NaN for missing.

    Categories become strings even when the file held digits (a zip code), so encoders see one
    value type per column and a CSV round trip cannot change how a value is encoded.
    """
    columns: dict[str, pd.Series] = {}
    for name, kind in kinds.items():
        column = frame[name]
        if kind == "numeric":
            if pd.api.types.is_bool_dtype(column):
                column = column.astype("float64")
            converted = pd.to_numeric(column, errors="coerce").astype("float64")
            bad = converted.isna() & column.notna()
            if bad.any():
                row = _first_row(bad)
                raise TrainingError(
                    f"feature '{name}' is numeric in the contract but row {row} holds "
                    f"{column.iloc[row]!r}"
                )
            columns[name] = converted
        else:
            as_text = column.astype("object").map(str, na_action="ignore")
            columns[name] = as_text.where(column.notna(), np.nan).astype("object")
    return pd.DataFrame(columns, index=frame.index)


def split_rows(
    y: pd.Series, *, task: Task, test_fraction: float, validation_fraction: float, seed: int
) -> SplitIndices:
    """Seeded train/validation/test row indices; stratified by class when every class allows.

    Depends only on the target values, their order and the seed, so it is reproducible from
    (data, seed) alone.
    """
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y), dtype=np.int64)
    labels = y.to_numpy() if task == "classification" else None

    def cut(
        candidates: IndexArray, fraction: float, salt: int
    ) -> tuple[IndexArray, IndexArray, bool]:
        if fraction <= 0 or len(candidates) == 0:
            return candidates, np.empty(0, dtype=np.int64), True
        if len(candidates) < 2:
            return candidates, np.empty(0, dtype=np.int64), False
        if labels is not None:
            try:
                kept, taken = train_test_split(
                    candidates,
                    test_size=fraction,
                    random_state=seed + salt,
                    stratify=labels[candidates],
                )
                return np.sort(kept), np.sort(taken), True
            except ValueError:
                pass  # a class too small to appear on both sides: fall back to a plain shuffle
        try:
            kept, taken = train_test_split(candidates, test_size=fraction, random_state=seed + salt)
        except ValueError:
            return candidates, np.empty(0, dtype=np.int64), False
        return np.sort(kept), np.sort(taken), False

    rest, test, test_stratified = cut(rows, test_fraction, 0)
    relative = validation_fraction / (1.0 - test_fraction)
    train, validation, validation_stratified = cut(rest, relative, 1)
    return SplitIndices(
        train=train.astype(np.int64),
        validation=validation.astype(np.int64),
        test=test.astype(np.int64),
        seed=seed,
        stratified=task == "classification" and test_stratified and validation_stratified,
    )


def prepare(
    frame: pd.DataFrame, config: ModelConfig, contract_columns: Mapping[str, str]
) -> PreparedData:
    """Select and coerce features, reject untrainable data, split the rows."""
    features = resolve_features(config, contract_columns)
    target = config.target
    for name in (*features, target):
        if name not in frame.columns:
            raise TrainingError(f"column '{name}' is in the contract but missing from the data")
    if len(frame) == 0:
        raise TrainingError("training split is empty: the dataset has no rows")
    frame = frame.reset_index(drop=True)

    y = frame[target]
    missing_target = y.isna()
    if missing_target.any():
        raise TrainingError(
            f"target '{target}' has {int(missing_target.sum())} null values "
            f"(first at row {_first_row(missing_target)})"
        )
    if config.task == "classification":
        classes = pd.unique(y)
        if len(classes) < 2:
            raise TrainingError(
                f"target '{target}' has only one class ({_plain(classes[0])!r}); "
                "a classifier needs at least two"
            )
    else:
        numeric_y = pd.to_numeric(y, errors="coerce")
        if numeric_y.isna().any():
            row = _first_row(numeric_y.isna())
            raise TrainingError(
                f"target '{target}' must be numeric for regression; row {row} holds {y.iloc[row]!r}"
            )
        y = numeric_y.astype("float64")

    kinds = {name: feature_kind(contract_columns[name]) for name in features}
    x = _coerce_features(frame, kinds)
    for name in features:
        if x[name].isna().all():
            raise TrainingError(f"feature '{name}' is null in every row; drop it or fix the data")

    split = split_rows(
        y,
        task=config.task,
        test_fraction=config.split.test_fraction,
        validation_fraction=config.split.validation_fraction,
        seed=config.split.seed,
    )
    prepared = PreparedData(
        features=tuple(features),
        feature_kinds=kinds,
        feature_types={name: contract_columns[name] for name in features},
        target=target,
        x=x,
        y=y,
        split=split,
    )
    _check_training_split(prepared, config.task)
    return prepared


def _check_training_split(prepared: PreparedData, task: Task) -> None:
    x_train, y_train = prepared.part("train")
    if len(x_train) == 0:
        raise TrainingError(
            f"training split is empty ({len(prepared.x)} rows, "
            f"test/validation fractions leave none to train on)"
        )
    if task == "classification" and y_train.nunique() < 2:
        raise TrainingError(
            f"training split has only one class of '{prepared.target}' "
            f"({len(x_train)} rows); add rows of the other classes"
        )
    for name in prepared.features:
        if x_train[name].isna().all():
            raise TrainingError(f"feature '{name}' is null in every training row")


def build_pipeline(config: ModelConfig, feature_kinds: Mapping[str, FeatureKind]) -> Any:
    """Column preprocessing plus the configured estimator, as one fitted-together Pipeline.

    Estimators that take NaN natively get numbers untouched (imputing would hide missingness
    they can use); HistGradientBoosting gets ordinal codes flagged as categorical; everything
    else gets imputed, one-hot encoded categories. Unknown categories at scoring time become
    missing (ordinal) or all-zero (one-hot) instead of failing a prediction.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder
    from sklearn.utils import get_tags

    estimator = build_estimator(config)
    numeric = [name for name, kind in feature_kinds.items() if kind == "numeric"]
    categorical = [name for name, kind in feature_kinds.items() if kind == "categorical"]
    native_categories = "categorical_features" in estimator.get_params(deep=False)
    allows_nan = bool(get_tags(estimator).input_tags.allow_nan)

    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(
            ("numeric", "passthrough" if allows_nan else SimpleImputer(strategy="median"), numeric)
        )
    if categorical:
        if native_categories:
            max_bins = int(estimator.get_params()["max_bins"])
            encoder: Any = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                max_categories=max_bins,
            )
            if "categorical_features" not in config.estimator.params:
                estimator.set_params(categorical_features=categorical)
        else:
            encoder = make_pipeline(
                SimpleImputer(strategy="constant", fill_value="__missing__"),
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
            )
        transformers.append(("categorical", encoder, categorical))
    preprocess = ColumnTransformer(transformers, verbose_feature_names_out=False)
    preprocess.set_output(transform="pandas")
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def train(prepared: PreparedData, config: ModelConfig) -> Any:
    """Fit the configured estimator on the training split."""
    model = build_pipeline(config, prepared.feature_kinds)
    x_train, y_train = prepared.part("train")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            model.fit(x_train, y_train)
    except (ValueError, TypeError, ArithmeticError, MemoryError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(
            f"{config.estimator_path} failed to fit {len(x_train)} training rows: {message}"
        ) from exc
    return model


def model_feature_kinds(model: Any) -> dict[str, FeatureKind]:
    """Recover the feature kinds from a fitted Pipeline built by `build_pipeline`."""
    kinds: dict[str, FeatureKind] = {}
    for name, _, columns in model.named_steps["preprocess"].transformers_:
        if name in ("numeric", "categorical"):
            kinds.update(dict.fromkeys(columns, name))
    return {name: kinds[name] for name in model.feature_names_in_}


def _decision_scores(model: Any, x: pd.DataFrame) -> npt.NDArray[Any] | None:
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(x))
    return None


def compute_metrics(
    names: Sequence[str],
    *,
    task: Task,
    y_true: npt.NDArray[Any],
    y_pred: npt.NDArray[Any],
    scores: npt.NDArray[Any] | None = None,
    classes: Sequence[Any] = (),
) -> dict[str, float]:
    """Each named metric as a float; NaN where the split cannot define it (one class, 1 row)."""
    from sklearn import metrics as skm

    results: dict[str, float] = {}
    binary = len(classes) == 2
    averaging: dict[str, Any] = (
        {"average": "binary", "pos_label": classes[1]} if binary else {"average": "macro"}
    )
    for name in names:
        spec = METRICS[name]
        if spec.task != task:
            raise ValueError(f"metric '{name}' does not apply to {task}")
        value: float
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if name == "accuracy":
                    value = float(skm.accuracy_score(y_true, y_pred))
                elif name in ("f1", "precision", "recall"):
                    function = {
                        "f1": skm.f1_score,
                        "precision": skm.precision_score,
                        "recall": skm.recall_score,
                    }[name]
                    value = float(
                        function(y_true, y_pred, labels=list(classes), zero_division=0, **averaging)
                    )
                elif name == "roc_auc":
                    value = _roc_auc(y_true, scores, classes)
                elif name == "log_loss":
                    value = (
                        float(skm.log_loss(y_true, scores, labels=list(classes)))
                        if scores is not None
                        else math.nan
                    )
                elif name == "rmse":
                    value = float(skm.root_mean_squared_error(y_true, y_pred))
                elif name == "mae":
                    value = float(skm.mean_absolute_error(y_true, y_pred))
                else:
                    value = float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else math.nan
            except ValueError:
                value = math.nan
        results[name] = value
    return results


def _roc_auc(
    y_true: npt.NDArray[Any], scores: npt.NDArray[Any] | None, classes: Sequence[Any]
) -> float:
    from sklearn.metrics import roc_auc_score

    if scores is None or len(np.unique(y_true)) < 2:
        return math.nan
    if len(classes) == 2:
        positive = scores[:, 1] if scores.ndim == 2 else scores
        return float(roc_auc_score(y_true == classes[1], positive))
    return float(roc_auc_score(y_true, scores, multi_class="ovr", labels=list(classes)))


def _predict(
    model: Any, x: pd.DataFrame, task: Task
) -> tuple[npt.NDArray[Any], npt.NDArray[Any] | None]:
    """Labels, plus class scores for a classifier, from as few passes over `x` as possible.

    A classifier with `predict_proba` is scored once: its label is the most probable class,
    as the inference function labels rows (and as most estimators' own `predict` does, by
    calling `predict_proba` again), so the metrics describe what serving returns.
    """
    if task == "classification" and hasattr(model, "predict_proba"):
        probabilities = np.asarray(model.predict_proba(x))
        labels = np.asarray(model.classes_)[np.argmax(probabilities, axis=1)]
        return labels, probabilities
    predicted = np.asarray(model.predict(x))
    return predicted, (_decision_scores(model, x) if task == "classification" else None)


def _metrics_for(
    model: Any, x: pd.DataFrame, y: pd.Series, config: ModelConfig
) -> tuple[dict[str, float], npt.NDArray[Any], npt.NDArray[Any]]:
    predicted, scores = _predict(model, x, config.task)
    y_true = y.to_numpy()
    classes = list(getattr(model, "classes_", [])) if config.task == "classification" else []
    values = compute_metrics(
        config.metric_names,
        task=config.task,
        y_true=y_true,
        y_pred=predicted,
        scores=scores,
        classes=classes,
    )
    return values, y_true, predicted


def evaluate(model: Any, prepared: PreparedData, config: ModelConfig) -> Evaluation:
    """Metrics on every non-empty split, with confusion matrix or residuals on the test split."""
    metrics: dict[str, dict[str, float]] = {}
    test_true: npt.NDArray[Any] = np.empty(0)
    test_predicted: npt.NDArray[Any] = np.empty(0)
    for name in SPLITS:
        x, y = prepared.part(name)
        if len(x) == 0:
            continue
        values, y_true, predicted = _metrics_for(model, x, y, config)
        metrics[name] = values
        if name == "test":
            test_true, test_predicted = y_true, predicted
    if "test" not in metrics:
        raise TrainingError("test split is empty: raise split.test_fraction or add rows")
    confusion = residuals = None
    if config.task == "classification":
        from sklearn.metrics import confusion_matrix

        labels = [_plain(label) for label in model.classes_]
        matrix = confusion_matrix(test_true, test_predicted, labels=list(model.classes_))
        confusion = ConfusionMatrix(labels=labels, matrix=matrix.astype(int).tolist())
    else:
        residuals = summarise_residuals(test_true, test_predicted)
    return Evaluation(
        task=config.task,
        primary_metric=config.primary_metric,
        metrics=metrics,
        confusion=confusion,
        residuals=residuals,
        test_true=test_true,
        test_predicted=test_predicted,
    )


def summarise_residuals(y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any]) -> ResidualSummary:
    residual = np.asarray(y_true, dtype="float64") - np.asarray(y_pred, dtype="float64")
    quantiles = np.quantile(residual, [0.05, 0.5, 0.95])
    return ResidualSummary(
        count=len(residual),
        mean=float(residual.mean()),
        std=float(residual.std()),
        mean_absolute=float(np.abs(residual).mean()),
        max_absolute=float(np.abs(residual).max()),
        quantiles={
            "p05": float(quantiles[0]),
            "p50": float(quantiles[1]),
            "p95": float(quantiles[2]),
        },
    )


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so labels survive JSON."""
    return value.item() if isinstance(value, np.generic) else value


def score_model(model: Any, frame: pd.DataFrame, config: ModelConfig) -> dict[str, float]:
    """The config's metrics for any fitted model on given rows (the champion on test rows).

    Features are the ones the model was fitted on, coerced the way it was trained, so a
    champion from an older config is scored on its own inputs but the challenger's rows.
    """
    kinds = model_feature_kinds(model)
    missing = [name for name in (*kinds, config.target) if name not in frame.columns]
    if missing:
        raise TrainingError(f"cannot score model: column '{missing[0]}' missing from the data")
    if len(frame) == 0:
        raise TrainingError("cannot score model on zero rows")
    x = _coerce_features(frame, kinds)
    y = frame[config.target]
    if config.task == "regression":
        y = pd.to_numeric(y, errors="coerce").astype("float64")
    values, _, _ = _metrics_for(model, x, y, config)
    return values


def run_training(
    frame: pd.DataFrame, config: ModelConfig, contract_columns: Mapping[str, str]
) -> TrainingRun:
    """Prepare, train and evaluate: the one sequence both training backends run."""
    prepared = prepare(frame, config, contract_columns)
    model = train(prepared, config)
    evaluation = evaluate(model, prepared, config)
    return TrainingRun(config=config, prepared=prepared, model=model, evaluation=evaluation)
