"""The promotion gate: may this challenger replace the champion?

Two kinds of check, both on test-split metrics: an absolute bound (the model must be good
enough on its own) and a tolerance against the champion scored on the same test rows (it must
not be meaningfully worse than what serves today). A metric that is missing or undefined (NaN)
fails its check: the gate never passes on a number it could not compute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pipelines.model_config import METRICS, GateConfig

CheckKind = Literal["threshold", "regression"]


@dataclass(frozen=True)
class GateCheck:
    kind: CheckKind
    metric: str
    passed: bool
    challenger: float | None
    limit: float
    champion: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class GateDecision:
    """Passed or not, with one human line per check that decided it."""

    passed: bool
    reasons: list[str]
    checks: list[GateCheck] = field(default_factory=list)
    primary_metric: str | None = None
    champion_compared: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "primary_metric": self.primary_metric,
            "champion_compared": self.champion_compared,
            "checks": [asdict(check) for check in self.checks],
        }


def _usable(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _fmt(value: float | None) -> str:
    return "undefined" if value is None or math.isnan(value) else f"{value:.4f}"


def _threshold_check(metric: str, limit: float, challenger: float | None) -> GateCheck:
    higher = METRICS[metric].higher_is_better
    bound = "minimum" if higher else "maximum"
    if challenger is None or math.isnan(challenger):
        return GateCheck(
            "threshold",
            metric,
            False,
            None,
            limit,
            reason=f"{metric} is {_fmt(challenger)} on the test split; {bound} is {limit:g}",
        )
    passed = challenger >= limit if higher else challenger <= limit
    relation = (">=" if higher else "<=") if passed else ("<" if higher else ">")
    return GateCheck(
        "threshold",
        metric,
        passed,
        challenger,
        limit,
        reason=f"{metric} {_fmt(challenger)} {relation} {bound} {limit:g}",
    )


def _regression_check(
    metric: str, tolerance: float, challenger: float | None, champion: float | None
) -> GateCheck:
    higher = METRICS[metric].higher_is_better
    if not _usable(champion):
        return GateCheck(
            "regression",
            metric,
            False,
            challenger if _usable(challenger) else None,
            tolerance,
            None,
            reason=f"champion {metric} is {_fmt(champion)} on the same test split; cannot compare",
        )
    if challenger is None or math.isnan(challenger):
        return GateCheck(
            "regression",
            metric,
            False,
            None,
            tolerance,
            champion,
            reason=f"challenger {metric} is undefined; champion has {_fmt(champion)}",
        )
    assert champion is not None
    worse_by = (champion - challenger) if higher else (challenger - champion)
    # Tolerances are written in decimal (0.02); compare with a little slack so that a metric
    # exactly at the tolerance does not fail on floating-point noise.
    passed = worse_by <= tolerance + 1e-12
    if worse_by <= 0:
        detail = f"{metric} {_fmt(challenger)} is no worse than champion {_fmt(champion)}"
    else:
        verdict = "within" if passed else "exceeds"
        detail = (
            f"{metric} {_fmt(challenger)} is {worse_by:.4f} worse than champion "
            f"{_fmt(champion)}, {verdict} the allowed regression {tolerance:g}"
        )
    return GateCheck("regression", metric, passed, challenger, tolerance, champion, detail)


def evaluate_gate(
    challenger_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    gate_config: GateConfig,
    *,
    primary_metric: str | None = None,
) -> GateDecision:
    """Decide promotion from test-split metrics (champion scored on the challenger's test rows).

    Without a champion (the first model for a dataset) only the absolute bounds apply. With
    one, the primary metric is always compared, with zero tolerance unless `max_regression`
    sets one: a challenger must at least match the champion on the metric that matters most.
    `reasons` lists the failed checks when the gate fails and every check when it passes, so
    either way it explains the verdict.
    """
    checks = [
        _threshold_check(metric, limit, challenger_metrics.get(metric))
        for metric, limit in gate_config.thresholds.items()
    ]
    tolerances = dict(gate_config.max_regression)
    if primary_metric is not None:
        tolerances.setdefault(primary_metric, 0.0)
    if champion_metrics is not None:
        checks.extend(
            _regression_check(
                metric,
                tolerance,
                challenger_metrics.get(metric),
                champion_metrics.get(metric),
            )
            for metric, tolerance in tolerances.items()
        )
    failed = [check for check in checks if not check.passed]
    passed = not failed
    reasons = [check.reason for check in (checks if passed else failed)]
    if not checks:
        reasons = ["no gate checks configured"]
    elif passed and champion_metrics is None and tolerances:
        reasons.append("no champion yet: regression checks skipped")
    return GateDecision(
        passed=passed,
        reasons=reasons,
        checks=checks,
        primary_metric=primary_metric,
        champion_compared=champion_metrics is not None,
    )
