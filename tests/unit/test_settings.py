"""One way to read a function's settings, one SettingsError, one reading of a validation error."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from functions.shared.settings import (
    DriftMonitorSettings,
    RetrainSettings,
    SettingsError,
    load_settings,
    parse_event,
)
from infra.config import EnvConfig
from pipelines.drift import DriftThresholds
from pipelines.drift_thresholds import DEFAULT_THRESHOLDS

pytestmark = pytest.mark.unit

RETRAIN = {
    "DRIFTLINE_ENV": "dev",
    "DRIFTLINE_ARTIFACTS_BUCKET": "artifacts",
    "DRIFTLINE_ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
    "DRIFTLINE_DATASETS_BUCKET": "datasets",
    "DRIFTLINE_DATASETS_TABLE": "datasets",
    "DRIFTLINE_RUNS_TABLE": "runs",
    "DRIFTLINE_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:t",
}


def test_settings_come_from_driftline_variables_and_ignore_others() -> None:
    settings = load_settings(
        RetrainSettings, {**RETRAIN, "DRIFTLINE_RETRAIN_COOLDOWN_HOURS": "2.5"}
    )

    assert (settings.env, settings.runs_table, settings.retrain_cooldown_hours) == (
        "dev",
        "runs",
        2.5,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DRIFTLINE_RUNS_TABLE": None}, r"^environment variable DRIFTLINE_RUNS_TABLE is not set$"),
        (
            {"DRIFTLINE_RETRAIN_COOLDOWN_HOURS": "-1"},
            r"^environment variable DRIFTLINE_RETRAIN_COOLDOWN_HOURS: Input should be greater",
        ),
    ],
)
def test_a_bad_variable_is_one_settings_error_line_naming_it(
    change: dict[str, str | None], message: str
) -> None:
    environ = {k: v for k, v in {**RETRAIN, **change}.items() if v is not None}

    with pytest.raises(SettingsError, match=message) as raised:
        load_settings(RetrainSettings, environ)
    assert "\n" not in str(raised.value)


def test_an_event_error_names_the_first_bad_field() -> None:
    class Event(BaseModel):
        model: str
        version: int

    with pytest.raises(ValueError, match=r"^retrain input field 'version': Input should be"):
        parse_event(Event, {"model": "iris", "version": "three"}, what="retrain input")
    with pytest.raises(ValueError, match=r"^retrain input field '<event>': Input should be"):
        parse_event(Event, ["not", "an", "object"], what="retrain input")


def test_drift_threshold_defaults_are_one_model_everywhere() -> None:
    environ = {
        **RETRAIN,
        "DRIFTLINE_MODELS_TABLE": "models",
        "DRIFTLINE_ENDPOINTS_TABLE": "endpoints",
    }
    monitor = load_settings(DriftMonitorSettings, environ)
    env = EnvConfig.model_fields["thresholds"].default

    for name, value in DEFAULT_THRESHOLDS.model_dump().items():
        assert getattr(monitor, name) == value
        assert getattr(env, name) == value
        assert getattr(DriftThresholds(), name) == value
    assert monitor.thresholds() == DriftThresholds()
