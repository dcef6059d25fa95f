"""Every function's settings: one pydantic model per function, read once from the environment.

A settings model's field `<name>` (or its alias) is the variable `DRIFTLINE_<NAME>`; the CDK
constructs set them (see `infra/constructs/`). `load_settings(Model)` validates them and raises
`SettingsError` with one line naming the first bad variable: a missing or wrong one is a
deployment bug. Each function keeps its settings for the life of the execution environment
(`get_settings` here and the cached getters beside each model).

`first_problem` is the one reading of a pydantic `ValidationError` every one-line message of a
function uses (settings, events, state); `parse_event` validates an event with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.shared.errors import SettingsError, setting_variable
from pipelines.drift_thresholds import DriftThresholdConfig

if TYPE_CHECKING:
    from pipelines.drift import DriftThresholds


@dataclass(frozen=True)
class Problem:
    """The first problem of a validation error."""

    location: tuple[str, ...]  # () at the root
    message: str  # pydantic's, without its "Value error, " prefix
    missing: bool
    more: int  # how many further problems the error has

    @property
    def where(self) -> str:
        return ".".join(self.location)


def first_problem(error: ValidationError) -> Problem:
    first = error.errors()[0]
    return Problem(
        location=tuple(str(part) for part in first["loc"]),
        message=str(first["msg"]).removeprefix("Value error, "),
        missing=first["type"] == "missing",
        more=error.error_count() - 1,
    )


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_event(model: type[ModelT], event: Any, *, what: str) -> ModelT:
    """Validate a handler's `event`, or raise ValueError naming the first bad field of `what`."""
    try:
        return model.model_validate(event)
    except ValidationError as error:
        problem = first_problem(error)
        raise ValueError(
            f"{what} field '{problem.where or '<event>'}': {problem.message}"
        ) from None


def load_settings(model: type[ModelT], environ: Mapping[str, str] | None = None) -> ModelT:
    """The model from `DRIFTLINE_<FIELD>` variables (default: the process environment)."""
    source = os.environ if environ is None else environ
    names = [field.alias or name for name, field in model.model_fields.items()]
    values = {
        name: source[setting_variable(name)] for name in names if setting_variable(name) in source
    }
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problem = first_problem(error)
        if not problem.location:  # a rule over several variables names them itself
            raise SettingsError(problem.message) from None
        if problem.missing:
            raise SettingsError.missing(problem.location[0]) from None
        raise SettingsError.invalid(problem.location[0], problem.message) from None


class FunctionSettings(BaseModel):
    """What every function's settings have."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    env: str = Field(min_length=1)


# --------------------------------------------------------------------------- training pipeline


class Settings(FunctionSettings):
    """The training pipeline's functions (Validate ... Register, RecordOutcome)."""

    git_sha: str = Field(min_length=1)
    approval_policy: Literal["automatic", "manual"]
    datasets_bucket: str = Field(min_length=3)
    artifacts_bucket: str = Field(min_length=3)
    datasets_table: str = Field(min_length=1)
    runs_table: str = Field(min_length=1)
    models_table: str = Field(min_length=1)
    alerts_topic_arn: str = Field(min_length=1)
    # Where Evaluate finds the champion (what the endpoint serves); only Evaluate needs it.
    endpoints_table: str = ""
    # JSON model -> SageMaker Model Package Group; empty on the twin (moto has no such groups).
    model_package_groups: str = ""
    # The shared function image, named as a model package's inference container.
    model_image_uri: str = ""

    @property
    def required_endpoints_table(self) -> str:
        """The Endpoints table; a SettingsError naming the variable when it is not set."""
        if not self.endpoints_table:
            raise SettingsError.missing("endpoints_table")
        return self.endpoints_table


@cache
def get_settings() -> Settings:
    """Parsed on first use and kept for the life of the execution environment."""
    return load_settings(Settings)


class StartRunSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    state_machine_arn: str = Field(min_length=1)


@cache
def start_run_settings() -> StartRunSettings:
    return load_settings(StartRunSettings)


# --------------------------------------------------------------------------- monitoring


class MonitoringSettings(FunctionSettings):
    """What every monitoring function has."""

    artifacts_bucket: str = Field(min_length=3)
    alerts_topic_arn: str = Field(min_length=1)


class DriftMonitorSettings(MonitoringSettings, DriftThresholdConfig):
    """The drift monitor: its tables, window, and the env's drift thresholds (DRIFTLINE_PSI...)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    models_table: str = Field(min_length=1)
    endpoints_table: str = Field(min_length=1)
    runs_table: str = Field(min_length=1)
    drift_window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    capture_check_interval_seconds: int = Field(default=60, ge=0)

    def thresholds(self) -> DriftThresholds:
        from pipelines.drift import DriftThresholds  # the statistics stack, only when checking

        return DriftThresholds(
            psi=self.psi,
            ks_statistic=self.ks_statistic,
            drifted_share=self.drifted_share,
            prediction_psi=self.prediction_psi,
            min_samples=self.min_samples,
        )


class NotifierSettings(MonitoringSettings):
    pass


class FeedbackSettings(MonitoringSettings):
    datasets_bucket: str = Field(min_length=3)
    models_table: str = Field(min_length=1)
    endpoints_table: str = Field(min_length=1)
    feedback_min_samples: int = Field(default=30, ge=1)
    feedback_lookback_days: int = Field(default=7, ge=1, le=90)


class RetrainSettings(MonitoringSettings):
    datasets_bucket: str = Field(min_length=3)
    datasets_table: str = Field(min_length=1)
    runs_table: str = Field(min_length=1)
    state_machine_arn: str = Field(min_length=1)
    retrain_cooldown_hours: float = Field(default=6, ge=0)


@cache
def drift_monitor_settings() -> DriftMonitorSettings:
    return load_settings(DriftMonitorSettings)


@cache
def notifier_settings() -> NotifierSettings:
    return load_settings(NotifierSettings)


@cache
def feedback_settings() -> FeedbackSettings:
    return load_settings(FeedbackSettings)


@cache
def retrain_settings() -> RetrainSettings:
    return load_settings(RetrainSettings)
