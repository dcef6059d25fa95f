"""Automated promotion across envs: soak in the source env, then promote, wait or hold.

A model version that is the champion (the Approved version its endpoint serves) of the source
env (staging) is promoted to the target env (prod) once it has been live there for the whole
soak and the last soak window was healthy: no alarm that concerns it went to ALARM in the
window, and none is in ALARM now. Which status it arrives in is the target env's
`approval_policy`: Approved under `automatic`, PendingApproval under `manual` (then `driftline
models approve --env prod` decides).

Pure: the caller reads registries and CloudWatch; nothing here calls AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

ALARM = "ALARM"


class Verdict(StrEnum):
    PROMOTE = "promote"  # soaked, healthy: copy it to the target env now
    WAIT = "wait"  # not live long enough yet (or nothing approved): ask again later
    HOLD = "hold"  # an alarm concerning it fired in the soak window or is firing now
    DONE = "done"  # already promoted: nothing to do


@dataclass(frozen=True)
class Alarm:
    """An alarm of the source env; `model` is the one it watches, None when it watches them all."""

    name: str
    state: str
    model: str | None = None


@dataclass(frozen=True)
class AlarmEvent:
    """One state change from the alarm history."""

    alarm: str
    at: datetime
    state: str


@dataclass(frozen=True)
class Candidate:
    model: str
    version: int
    live_since: datetime | None  # when the source env's endpoint started serving it
    promoted_as: int | None = None  # its version in the target env, if already promoted


@dataclass(frozen=True)
class Decision:
    model: str
    version: int
    verdict: Verdict
    reason: str
    soak_ends_at: datetime | None = None
    alarms: tuple[str, ...] = ()


def model_of_alarm(
    dimensions: Iterable[Mapping[str, str]], function_models: Mapping[str, str]
) -> str | None:
    """The model an alarm watches: its `Model` dimension, or the model whose dedicated endpoint
    function it watches (`FunctionName`, `Resource` = function:alias); None = env-wide."""
    for dimension in dimensions:
        name, value = dimension.get("Name"), str(dimension.get("Value", ""))
        if name == "Model":
            return value
        if name in ("FunctionName", "Resource"):
            function = value.split(":", 1)[0]
            if function in function_models:
                return function_models[function]
    return None


def concerns(alarm: Alarm, model: str) -> bool:
    return alarm.model is None or alarm.model == model


def decide(
    candidate: Candidate,
    *,
    now: datetime,
    soak: timedelta,
    alarms: Sequence[Alarm],
    history: Sequence[AlarmEvent],
) -> Decision:
    """Promote, wait or hold one candidate; the reason is one line a person can act on."""
    model, version = candidate.model, candidate.version

    def decision(
        verdict: Verdict,
        reason: str,
        soak_ends_at: datetime | None = None,
        alarms: tuple[str, ...] = (),
    ) -> Decision:
        return Decision(model, version, verdict, reason, soak_ends_at, alarms)

    if candidate.promoted_as is not None:
        return decision(Verdict.DONE, f"already promoted as version {candidate.promoted_as}")
    if candidate.live_since is None:
        return decision(Verdict.WAIT, "no approval time on record: cannot tell how long it soaked")
    soak_ends = candidate.live_since + soak
    if now < soak_ends:
        return decision(
            Verdict.WAIT,
            f"soaking until {_iso(soak_ends)} ({_hours(soak_ends - now)} to go)",
            soak_ends_at=soak_ends,
        )
    relevant = {alarm.name: alarm for alarm in alarms if concerns(alarm, model)}
    firing = sorted(name for name, alarm in relevant.items() if alarm.state == ALARM)
    if firing:
        return decision(
            Verdict.HOLD,
            f"in ALARM now: {', '.join(firing)}",
            soak_ends_at=soak_ends,
            alarms=tuple(firing),
        )
    window_start = max(candidate.live_since, now - soak)
    fired = sorted(
        (
            event
            for event in history
            if event.alarm in relevant and event.state == ALARM and window_start <= event.at <= now
        ),
        key=lambda event: event.at,
    )
    if fired:
        names = tuple(sorted({event.alarm for event in fired}))
        last = fired[-1]
        clear_at = last.at + soak
        return decision(
            Verdict.HOLD,
            f"{last.alarm} went to ALARM at {_iso(last.at)} within the {_hours(soak)} soak "
            f"window; promotable from {_iso(clear_at)} if nothing else fires",
            soak_ends_at=clear_at,
            alarms=names,
        )
    return decision(
        Verdict.PROMOTE,
        f"live since {_iso(candidate.live_since)}, no alarm in the last {_hours(soak)} "
        f"({len(relevant)} alarm(s) watched)",
        soak_ends_at=soak_ends,
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f}h" if hours < 10 else f"{hours:.0f}h"
