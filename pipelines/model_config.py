"""Per-dataset model configuration (`models/<dataset>.yaml`), checked completely before training.

Training is the expensive, asynchronous step of the loop, so every mistake a config can hold
(an unknown estimator or parameter, a metric the task cannot compute, a target or feature the
data contract does not have) is turned here into one line naming the file and the key, before
any data is read. The data contract is taken as plain `column name -> type string` so this
module stays independent of how contracts are stored.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

Task = Literal["classification", "regression"]
FeatureKind = Literal["numeric", "categorical"]
Approval = Literal["automatic", "manual", "env-default"]

DEFAULT_ESTIMATORS: Mapping[str, str] = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
DEFAULT_METRICS: Mapping[str, tuple[str, ...]] = {
    "classification": ("roc_auc", "accuracy", "f1"),
    "regression": ("rmse", "mae", "r2"),
}
ALLOWED_ESTIMATOR_PREFIX = "sklearn."


class ModelConfigError(ValueError):
    """A model config that cannot be trained; the message names the file and the key."""


@dataclass(frozen=True)
class MetricSpec:
    """How a metric is read: the gate needs its direction, config checks need its inputs."""

    name: str
    task: Task
    higher_is_better: bool
    needs_scores: bool
    needs_probabilities: bool = False


METRICS: Mapping[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("accuracy", "classification", True, False),
        MetricSpec("f1", "classification", True, False),
        MetricSpec("precision", "classification", True, False),
        MetricSpec("recall", "classification", True, False),
        MetricSpec("roc_auc", "classification", True, True),
        MetricSpec("log_loss", "classification", False, True, needs_probabilities=True),
        MetricSpec("rmse", "regression", False, False),
        MetricSpec("mae", "regression", False, False),
        MetricSpec("r2", "regression", True, False),
    )
}

# Contract type strings, lower-cased. Anything else is rejected rather than guessed, because a
# wrong guess (an id column treated as a number) trains silently and badly.
_NUMERIC_TYPES = frozenset(
    {
        "int", "integer", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
        "uint64", "long", "float", "float32", "float64", "double", "number", "numeric",
        "decimal", "bool", "boolean",
    }
)  # fmt: skip
_CATEGORICAL_TYPES = frozenset(
    {"string", "str", "category", "categorical", "object", "enum", "text"}
)


def feature_kind(type_string: str) -> FeatureKind:
    """Map a contract type string to how the model treats the column."""
    normalised = type_string.strip().lower()
    if normalised in _NUMERIC_TYPES:
        return "numeric"
    if normalised in _CATEGORICAL_TYPES:
        return "categorical"
    raise ValueError(
        f"type '{type_string}' cannot be a model feature (numeric or string/category types only)"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EstimatorConfig(_Strict):
    class_path: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class SplitConfig(_Strict):
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    validation_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    seed: int = Field(default=42, ge=0, le=2**32 - 2)

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitConfig:
        if self.test_fraction + self.validation_fraction >= 1.0:
            raise ValueError("test_fraction + validation_fraction must be below 1")
        return self


class GateConfig(_Strict):
    """Absolute bounds and champion-relative tolerances, both in the metric's own units.

    `thresholds` is a minimum for metrics where higher is better and a maximum for error
    metrics (rmse, mae, log_loss); `max_regression` is how much worse than the champion the
    challenger may score on the same test rows.
    """

    thresholds: dict[str, float] = Field(default_factory=dict)
    max_regression: dict[str, float] = Field(default_factory=dict)


class ModelConfig(_Strict):
    task: Task
    target: str = Field(min_length=1)
    features: list[str] | None = None
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig)
    metrics: list[str] | None = None
    split: SplitConfig = Field(default_factory=SplitConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    approval: Approval = "env-default"
    intended_use: str = (
        "Batch and online scoring of records that follow the dataset's data contract."
    )
    limitations: list[str] = Field(default_factory=list)

    _source: str = PrivateAttr(default="<model config>")

    @property
    def source(self) -> str:
        """Where the config came from, for error messages raised long after parsing."""
        return self._source

    @property
    def estimator_path(self) -> str:
        return self.estimator.class_path or DEFAULT_ESTIMATORS[self.task]

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(self.metrics) if self.metrics else DEFAULT_METRICS[self.task]

    @property
    def primary_metric(self) -> str:
        return self.metric_names[0]


def _error(source: str, key: str, message: str) -> ModelConfigError:
    return ModelConfigError(f"{source}: key '{key}': {message}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _from_validation_error(source: str, exc: ValidationError) -> ModelConfigError:
    errors = exc.errors()
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"]) or "<root>"
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "value_error":
        message = str(first.get("ctx", {}).get("error", first["msg"]))
    else:
        message = first["msg"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _error(source, key, f"{message}{more}")


def parse_model_config(text: str, *, source: str) -> ModelConfig:
    """Parse and check a config held as text (a file, an S3 object, a hyperparameter)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ModelConfigError(f"{source}: not valid YAML{where}") from exc
    if not isinstance(document, dict):
        raise ModelConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        config = ModelConfig.model_validate(document)
    except ValidationError as exc:
        raise _from_validation_error(source, exc) from None
    config._source = source
    _check_metrics(config)
    _check_gate(config)
    _check_estimator(config)
    return config


def load_model_config(path: Path, contract_columns: Mapping[str, str] | None = None) -> ModelConfig:
    """Read `models/<dataset>.yaml`; with the contract's columns, check it against them too."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot read model config ({exc.strerror})") from exc
    config = parse_model_config(text, source=str(path))
    if contract_columns is not None:
        resolve_features(config, contract_columns)
    return config


def _check_metrics(config: ModelConfig) -> None:
    names = config.metric_names
    for index, name in enumerate(names):
        spec = METRICS.get(name)
        valid = ", ".join(n for n, s in METRICS.items() if s.task == config.task)
        if spec is None:
            raise _error(
                config.source, f"metrics[{index}]", f"unknown metric '{name}'; one of: {valid}"
            )
        if spec.task != config.task:
            raise _error(
                config.source,
                f"metrics[{index}]",
                f"'{name}' is a {spec.task} metric; {config.task} metrics: {valid}",
            )
    if len(set(names)) != len(names):
        raise _error(config.source, "metrics", "lists a metric more than once")


def _check_gate(config: ModelConfig) -> None:
    for section in ("thresholds", "max_regression"):
        values: dict[str, float] = getattr(config.gate, section)
        for metric, value in values.items():
            key = f"gate.{section}.{metric}"
            if metric not in config.metric_names:
                raise _error(
                    config.source,
                    key,
                    f"gates on '{metric}' which is not in metrics {list(config.metric_names)}",
                )
            if section == "max_regression" and value < 0:
                raise _error(config.source, key, f"must be >= 0, got {value}")


def _estimator_class(config: ModelConfig) -> type[Any]:
    path = config.estimator_path
    key = "estimator.class_path"
    if not path.startswith(ALLOWED_ESTIMATOR_PREFIX):
        raise _error(config.source, key, f"'{path}' is not a scikit-learn import path (sklearn.*)")
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise _error(config.source, key, f"cannot import module '{module_name}'") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise _error(config.source, key, f"'{module_name}' has no '{class_name}'")
    from sklearn.base import BaseEstimator

    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator) and hasattr(cls, "fit")):
        raise _error(config.source, key, f"'{path}' is not a scikit-learn estimator class")
    return cls


def _check_estimator(config: ModelConfig) -> None:
    from sklearn.base import is_classifier, is_regressor

    cls = _estimator_class(config)
    path = config.estimator_path
    try:
        valid_params = set(cls().get_params(deep=False))
    except TypeError:
        raise _error(
            config.source,
            "estimator.class_path",
            f"'{path}' needs constructor arguments a config cannot give (a meta-estimator?)",
        ) from None
    for name in config.estimator.params:
        if name not in valid_params:
            raise _error(
                config.source,
                f"estimator.params.{name}",
                f"not a parameter of {cls.__name__}; valid: {', '.join(sorted(valid_params))}",
            )
    estimator = cls(**config.estimator.params)
    validate = getattr(estimator, "_validate_params", None)
    if callable(validate):
        try:
            validate()
        except (ValueError, TypeError) as exc:
            raise _error(config.source, "estimator.params", _first_line(str(exc))) from None
    fits_task = (
        is_classifier(estimator) if config.task == "classification" else (is_regressor(estimator))
    )
    if not fits_task:
        raise _error(
            config.source, "estimator.class_path", f"'{path}' is not a {config.task} estimator"
        )
    for index, name in enumerate(config.metric_names):
        spec = METRICS[name]
        has_proba = hasattr(estimator, "predict_proba")
        has_scores = has_proba or hasattr(estimator, "decision_function")
        if (spec.needs_probabilities and not has_proba) or (spec.needs_scores and not has_scores):
            raise _error(
                config.source,
                f"metrics[{index}]",
                f"'{name}' needs class scores that {cls.__name__} with these params cannot give",
            )


def resolve_features(config: ModelConfig, contract_columns: Mapping[str, str]) -> list[str]:
    """The model's feature columns, in contract order, checked against the contract.

    Without an explicit `features` list every contract column except the target is a feature,
    so a contract change (a new column) reaches the next model without a config edit.
    """
    if config.target not in contract_columns:
        raise _error(
            config.source,
            "target",
            f"'{config.target}' is not a column of the data contract "
            f"(columns: {', '.join(contract_columns)})",
        )
    if config.features is None:
        features = [name for name in contract_columns if name != config.target]
        key_for = {name: "features (default: every contract column)" for name in features}
    else:
        features = list(config.features)
        key_for = {name: f"features[{i}]" for i, name in enumerate(features)}
        for index, name in enumerate(features):
            if name not in contract_columns:
                raise _error(
                    config.source,
                    f"features[{index}]",
                    f"'{name}' is not a column of the data contract",
                )
            if name == config.target:
                raise _error(config.source, f"features[{index}]", "the target cannot be a feature")
        if len(set(features)) != len(features):
            raise _error(config.source, "features", "lists a column more than once")
    if not features:
        raise _error(config.source, "features", "no feature columns left besides the target")
    for name in features:
        try:
            feature_kind(contract_columns[name])
        except ValueError as exc:
            raise _error(config.source, key_for[name], f"column '{name}': {exc}") from None
    return features


def build_estimator(config: ModelConfig) -> Any:
    """A fresh, unfitted estimator; seeded from the split seed unless the config sets one."""
    cls = _estimator_class(config)
    params = dict(config.estimator.params)
    if "random_state" in cls().get_params(deep=False) and "random_state" not in params:
        params["random_state"] = config.split.seed
    return cls(**params)
