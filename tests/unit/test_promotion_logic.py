"""Soak-and-promote decisions (pipelines/promotion.py): promote, wait, hold or done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.promotion import (
    Alarm,
    AlarmEvent,
    Candidate,
    Verdict,
    concerns,
    decide,
    model_of_alarm,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SOAK = timedelta(hours=24)
MODEL = "breast_cancer"
ENDPOINT_ERRORS = Alarm("Driftline-staging-Serving-BreastCancerErrors-1", "OK", MODEL)
OTHER_DRIFT = Alarm("Driftline-staging-Monitoring-DigitsDrift-1", "OK", "digits")
PIPELINE_FAILURES = Alarm("Driftline-staging-Monitoring-RunsFailed-1", "OK", None)
ALARMS = (ENDPOINT_ERRORS, OTHER_DRIFT, PIPELINE_FAILURES)


def candidate(live_hours_ago: float | None, promoted_as: int | None = None) -> Candidate:
    live = None if live_hours_ago is None else NOW - timedelta(hours=live_hours_ago)
    return Candidate(MODEL, 3, live, promoted_as)


def fired(alarm: Alarm, hours_ago: float, state: str = "ALARM") -> AlarmEvent:
    return AlarmEvent(alarm.name, NOW - timedelta(hours=hours_ago), state)


def judge(
    live_hours_ago: float | None,
    *,
    alarms: tuple[Alarm, ...] = ALARMS,
    history: tuple[AlarmEvent, ...] = (),
    promoted_as: int | None = None,
) -> tuple[Verdict, str]:
    decision = decide(
        candidate(live_hours_ago, promoted_as), now=NOW, soak=SOAK, alarms=alarms, history=history
    )
    return decision.verdict, decision.reason


def test_a_version_live_for_the_whole_soak_without_alarms_is_promoted() -> None:
    verdict, reason = judge(30)
    assert verdict is Verdict.PROMOTE
    assert (
        reason == "live since 2026-11-30T06:00:00Z, no alarm in the last 24h (2 alarm(s) watched)"
    )


def test_a_version_still_soaking_waits_and_says_until_when() -> None:
    decision = decide(candidate(20), now=NOW, soak=SOAK, alarms=ALARMS, history=())
    assert decision.verdict is Verdict.WAIT
    assert decision.reason == "soaking until 2026-12-01T16:00:00Z (4.0h to go)"
    assert decision.soak_ends_at == NOW + timedelta(hours=4)


def test_an_alarm_of_the_model_in_the_window_holds_it_until_a_clean_window_has_passed() -> None:
    decision = decide(
        candidate(30), now=NOW, soak=SOAK, alarms=ALARMS, history=(fired(ENDPOINT_ERRORS, 5),)
    )
    assert decision.verdict is Verdict.HOLD
    assert decision.alarms == (ENDPOINT_ERRORS.name,)
    assert decision.soak_ends_at == NOW + timedelta(hours=19)
    assert "went to ALARM at 2026-12-01T07:00:00Z within the 24h soak window" in decision.reason


def test_an_env_wide_alarm_holds_every_model() -> None:
    assert judge(30, history=(fired(PIPELINE_FAILURES, 1),))[0] is Verdict.HOLD


def test_another_models_alarm_does_not_hold_this_one() -> None:
    firing_elsewhere = Alarm(OTHER_DRIFT.name, "ALARM", "digits")
    verdict, _ = judge(
        30,
        alarms=(ENDPOINT_ERRORS, firing_elsewhere, PIPELINE_FAILURES),
        history=(fired(OTHER_DRIFT, 2),),
    )
    assert verdict is Verdict.PROMOTE


def test_an_alarm_before_the_window_does_not_count_but_one_firing_now_does() -> None:
    assert (
        judge(50, history=(fired(ENDPOINT_ERRORS, 30), fired(ENDPOINT_ERRORS, 29, "OK")))[0]
        is Verdict.PROMOTE
    )
    still_firing = Alarm(ENDPOINT_ERRORS.name, "ALARM", MODEL)
    verdict, reason = judge(50, alarms=(still_firing,), history=(fired(ENDPOINT_ERRORS, 30),))
    assert (verdict, reason) == (Verdict.HOLD, f"in ALARM now: {ENDPOINT_ERRORS.name}")


def test_recoveries_in_the_window_do_not_hold() -> None:
    assert judge(30, history=(fired(ENDPOINT_ERRORS, 3, "OK"),))[0] is Verdict.PROMOTE


def test_an_alarm_before_the_version_went_live_does_not_count() -> None:
    """Window = the later of (live since, now - soak): the previous version's alarms are its own."""
    decision = decide(
        candidate(24.5),
        now=NOW,
        soak=SOAK,
        alarms=ALARMS,
        history=(fired(ENDPOINT_ERRORS, 24.75),),
    )
    assert decision.verdict is Verdict.PROMOTE


def test_already_promoted_is_done_and_no_approval_time_waits() -> None:
    assert judge(30, promoted_as=7) == (Verdict.DONE, "already promoted as version 7")
    assert judge(None)[0] is Verdict.WAIT


def test_a_zero_soak_promotes_at_once_when_nothing_fires() -> None:
    decision = decide(candidate(0), now=NOW, soak=timedelta(0), alarms=ALARMS, history=())
    assert decision.verdict is Verdict.PROMOTE


@pytest.mark.parametrize(
    ("dimensions", "expected"),
    [
        ([{"Name": "Model", "Value": "digits"}], "digits"),
        ([{"Name": "FunctionName", "Value": "fn-bc"}], MODEL),
        (
            [
                {"Name": "FunctionName", "Value": "fn-bc"},
                {"Name": "Resource", "Value": "fn-bc:live"},
            ],
            MODEL,
        ),
        ([{"Name": "Resource", "Value": "fn-bc:live"}], MODEL),
        ([{"Name": "FunctionName", "Value": "fn-shared"}], None),
        ([{"Name": "StateMachineArn", "Value": "arn"}], None),
        ([], None),
    ],
)
def test_an_alarm_belongs_to_a_model_by_its_dimension_or_its_endpoint_function(
    dimensions: list[dict[str, str]], expected: str | None
) -> None:
    assert model_of_alarm(dimensions, {"fn-bc": MODEL}) == expected
    assert concerns(Alarm("a", "OK", model_of_alarm(dimensions, {"fn-bc": MODEL})), MODEL) is (
        expected in (None, MODEL)
    )
