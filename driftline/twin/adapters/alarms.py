"""Section 6: CloudWatch alarms — evaluated, acting on state changes, with history.

Metric alarms (one metric or one Metrics Insights query, see `metrics_insights`) and
composite alarms; the CloudFormation types that create them are in `cfn_types`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from driftline.twin.adapters.base import LOG, iso, patch, utc
from driftline.twin.adapters.metrics_insights import (
    INSIGHTS_FUNCTIONS,
    InsightsQuery,
    insights_query,
)

_ALARM_LOCK = threading.RLock()
_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
_STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")
_REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
}


@dataclass(frozen=True)
class _AlarmMetric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    period: int
    statistic: str
    unit: str | None


def _alarm_metric(alarm: Any) -> _AlarmMetric:
    """The single metric a metric alarm watches (directly or as one MetricStat query)."""
    from moto.cloudwatch.exceptions import ValidationError

    if alarm.metric_data_queries:
        stats = [q for q in alarm.metric_data_queries if q.metric_stat is not None]
        if len(alarm.metric_data_queries) != 1 or len(stats) != 1:
            raise ValidationError(
                f"alarm {alarm.name}: metric math (Metrics with an Expression that is not a "
                "Metrics Insights SELECT) is not evaluated by the twin"
            )
        stat = stats[0].metric_stat
        metric = stat.metric
        dimensions = tuple(sorted((d.name, d.value) for d in metric.dimensions))
        return _AlarmMetric(
            metric.namespace,
            metric.metric_name,
            dimensions,
            int(stat.period),
            str(stat.stat),
            stat.unit,
        )
    statistic = alarm.extended_statistic or alarm.statistic
    dimensions = tuple(sorted((d.name, d.value) for d in alarm.dimensions))
    return _AlarmMetric(
        alarm.namespace,
        alarm.metric_name,
        dimensions,
        int(alarm.period),
        str(statistic),
        alarm.unit,
    )


def _alarm_namespace(alarm: Any) -> str:
    query = insights_query(alarm)
    return query.namespace if query is not None else _alarm_metric(alarm).namespace


def _validate_alarm(alarm: Any) -> None:
    from moto.cloudwatch.exceptions import ValidationError

    if alarm.rule is not None:
        _parse_alarm_rule(alarm.rule)
        return
    if alarm.comparison_operator not in _COMPARISONS:
        raise ValidationError(
            f"alarm {alarm.name}: ComparisonOperator {alarm.comparison_operator} (anomaly "
            "detection "
            f"bands) is not evaluated by the twin; use one of {', '.join(_COMPARISONS)}"
        )
    query = insights_query(alarm)
    if query is not None:
        period = query.period
    else:
        metric = _alarm_metric(alarm)
        if metric.statistic not in _STATISTICS and not _PERCENTILE.match(metric.statistic):
            raise ValidationError(
                f"alarm {alarm.name}: statistic {metric.statistic} is not evaluated by the twin "
                f"(supported: {', '.join(_STATISTICS)}, pNN)"
            )
        period = metric.period
    if period <= 0 or int(alarm.evaluation_periods or 0) <= 0:
        raise ValidationError(f"alarm {alarm.name}: Period and EvaluationPeriods must be positive")
    if alarm.treat_missing_data not in (None, "missing", "notBreaching", "breaching", "ignore"):
        raise ValidationError(
            f"alarm {alarm.name}: TreatMissingData {alarm.treat_missing_data} is not valid"
        )


def _period_value(data: list[Any], statistic: str) -> float | None:
    """One period's statistic over moto's datums (single values and statistic sets)."""
    values = [float(d.value) for d in data if hasattr(d, "value")]
    sets = [d for d in data if not hasattr(d, "value")]
    count = len(values) + sum(float(s.sample_count) for s in sets)
    if count == 0:
        return None
    total = sum(values) + sum(float(s.sum) for s in sets)
    if statistic == "SampleCount":
        return count
    if statistic == "Sum":
        return total
    if statistic == "Average":
        return total / count
    if statistic == "Minimum":
        return min([*values, *(float(s.min) for s in sets)])
    if statistic == "Maximum":
        return max([*values, *(float(s.max) for s in sets)])
    if not values:
        return None  # percentiles need the individual values
    ordered = sorted(values)
    rank = math.ceil(float(statistic[1:]) / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def _datum_dimensions(datum: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((d.name, d.value) for d in datum.dimensions))


def _window_start(now: datetime, period: int, periods: int) -> int:
    """Start (epoch seconds) of the last `periods` periods, the current partial one included."""
    end = (math.floor(now.timestamp() / period) + 1) * period
    return end - periods * period


def _period_index(datum: Any, start: int, period: int, periods: int) -> int | None:
    """Which of the window's periods `datum` falls in (None: outside the window)."""
    index = math.floor((utc(datum.timestamp).timestamp() - start) / period)
    return index if 0 <= index < periods else None


def _evaluate_metric_alarm(backend: Any, alarm: Any, now: datetime) -> tuple[str, str, str]:
    """(state, reason, reason data) from the last EvaluationPeriods periods, M out of N."""
    metric = _alarm_metric(alarm)
    periods = int(alarm.evaluation_periods)
    start = _window_start(now, metric.period, periods)
    buckets: list[list[Any]] = [[] for _ in range(periods)]
    for datum in list(backend.metric_data):
        if datum.namespace != metric.namespace or datum.name != metric.name:
            continue
        if _datum_dimensions(datum) != metric.dimensions:
            continue
        if metric.unit and datum.unit and datum.unit != metric.unit:
            continue
        index = _period_index(datum, start, metric.period, periods)
        if index is not None:
            buckets[index].append(datum)
    values = [_period_value(bucket, metric.statistic) for bucket in buckets]
    return _judge_periods(alarm, values, start, metric.period, metric.statistic, now)


def _breaches(alarm: Any, values: list[float | None]) -> list[bool]:
    """Per period: does it breach? Missing periods count per TreatMissingData or are skipped."""
    compare, _ = _COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    treat = alarm.treat_missing_data or "missing"
    flags: list[bool] = []
    for value in values:
        if value is not None:
            flags.append(compare(value, threshold))
        elif treat == "breaching":
            flags.append(True)
        elif treat == "notBreaching":
            flags.append(False)
    return flags


def _judge_periods(
    alarm: Any,
    values: list[float | None],
    start: int,
    period: int,
    statistic: str,
    now: datetime,
) -> tuple[str, str, str]:
    """(state, reason, reason data) of one series' per-period values (oldest first), M of N."""
    periods = len(values)
    needed = int(alarm.datapoints_to_alarm or periods)
    _, wording = _COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    treat = alarm.treat_missing_data or "missing"
    flags = _breaches(alarm, values)
    present = [
        (value, datetime.fromtimestamp(start + i * period, UTC))
        for i, value in enumerate(values)
        if value is not None
    ]
    shown = ", ".join(f"{v} ({m:%d/%m/%y %H:%M:%S})" for v, m in reversed(present))
    reason_data = json.dumps(
        {
            "version": "1.0",
            "queryDate": iso(now),
            "startDate": iso(datetime.fromtimestamp(start, UTC)),
            "statistic": statistic,
            "period": period,
            "recentDatapoints": [v for v, _ in present],
            "threshold": threshold,
            "evaluatedDatapoints": [
                {"timestamp": iso(m), "value": v} for v, m in reversed(present)
            ],
        }
    )
    if not flags:
        if treat == "ignore":
            return alarm.state_value, alarm.state_reason, alarm.state_reason_data
        reason = (
            f"Insufficient Data: {periods} datapoint{'s were' if periods > 1 else ' was'} unknown."
        )
        return "INSUFFICIENT_DATA", reason, reason_data
    # With data missing ("missing"/"ignore"), CloudWatch judges on the datapoints it has.
    required = needed if treat in ("breaching", "notBreaching") else min(needed, len(flags))
    breaching = sum(flags)
    if breaching >= required:
        reason = (
            f"Threshold Crossed: {breaching} out of the last {len(flags)} datapoints [{shown}] "
            f"{'was' if breaching == 1 else 'were'} {wording} the threshold ({threshold}) "
            f"(minimum {required} datapoint{'s' if required > 1 else ''} "
            "for OK -> ALARM transition)."
        )
        return "ALARM", reason, reason_data
    reason = (
        f"Threshold Crossed: {len(flags) - breaching} out of the last {len(flags)} datapoints "
        f"[{shown}] {'was' if len(flags) - breaching == 1 else 'were'} not {wording} the threshold "
        f"({threshold}) (minimum {len(flags) - required + 1} datapoint"
        f"{'s' if len(flags) - required + 1 > 1 else ''} for ALARM -> OK transition)."
    )
    return "OK", reason, reason_data


SeriesKey = tuple[tuple[str, str], ...]


def _insights_series(
    backend: Any, query: InsightsQuery, start: int, periods: int
) -> dict[SeriesKey, list[list[Any]]]:
    """The query's time series in the window: GROUP BY (key, value) pairs -> datums per period.

    Without GROUP BY every matching metric feeds one aggregated series, keyed (). A metric that
    lacks a GROUP BY key falls in that key's `Other` group, as on AWS. Series come in GROUP BY
    value order unless ORDER BY says otherwise; LIMIT keeps the first n.
    """
    groups: dict[SeriesKey, list[list[Any]]] = {}
    for datum in list(backend.metric_data):
        if datum.namespace != query.namespace or datum.name != query.metric:
            continue
        dimensions = dict(_datum_dimensions(datum))
        if query.schema is not None and set(dimensions) != set(query.schema):
            continue
        # `key != 'v'` also keeps metrics without the key: their value is not 'v'.
        if any((dimensions.get(key) == value) != (op == "=") for key, op, value in query.where):
            continue
        index = _period_index(datum, start, query.period, periods)
        if index is None:
            continue
        key = tuple((name, dimensions.get(name, "Other")) for name in query.group_by)
        groups.setdefault(key, [[] for _ in range(periods)])[index].append(datum)
    keys = sorted(groups)
    if query.order is not None:
        function, descending = query.order
        statistic = INSIGHTS_FUNCTIONS[function]
        score = {
            key: _period_value([d for bucket in groups[key] for d in bucket], statistic) or 0.0
            for key in keys
        }
        keys.sort(key=lambda key: score[key], reverse=descending)
    return {key: groups[key] for key in keys[: query.limit]}


@dataclass
class _Contributor:
    """One series of a GROUP BY Metrics Insights alarm: ALARM or OK, never INSUFFICIENT_DATA."""

    id: str
    attributes: dict[str, str]
    timestamp: datetime
    state: str = "OK"
    reason: str = ""


def _contributor_id(alarm_name: str, attributes: Mapping[str, str]) -> str:
    """A stable 16-hex-digit id per alarm and attribute values (AWS's ids have this form)."""
    text = json.dumps([alarm_name, sorted(attributes.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _contributor_reason(
    alarm: Any, state: str, values: list[float | None], start: int, period: int
) -> str:
    """CloudWatch's short per-contributor reason (no reason data): count and latest datapoint."""
    compare, wording = _COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    present = [
        (value, datetime.fromtimestamp(start + i * period, UTC))
        for i, value in enumerate(values)
        if value is not None
    ]
    crossed = [(v, m) for v, m in present if compare(v, threshold)]
    chosen = crossed if state == "ALARM" else [(v, m) for v, m in present if (v, m) not in crossed]
    if not chosen:
        return (
            f"Threshold Crossed: missing datapoints were treated as "
            f"{'breaching' if state == 'ALARM' else 'not breaching'} the threshold ({threshold})."
        )
    value, moment = chosen[-1]
    many = len(chosen) > 1
    return (
        f"Threshold Crossed: {len(chosen)} datapoint{'s were' if many else ' was'} "
        f"{'' if state == 'ALARM' else 'not '}{wording} the threshold ({threshold}). "
        f"The most recent datapoint{'s' if many else ''} which "
        f"{'crossed' if state == 'ALARM' else 'did not cross'} the threshold: "
        f"[{value} ({moment:%d/%m/%y %H:%M:%S})]."
    )


def _judge_insights_alarm(
    backend: Any, alarm: Any, query: InsightsQuery, now: datetime
) -> tuple[str, str, str]:
    """Judge a Metrics Insights alarm: each GROUP BY series on its own (acting on contributor
    transitions), then the alarm: ALARM while any contributor is. Returns the alarm's verdict."""
    periods = int(alarm.evaluation_periods)
    start = _window_start(now, query.period, periods)
    statistic = INSIGHTS_FUNCTIONS[query.function]
    series = _insights_series(backend, query, start, periods)
    if not query.group_by:
        alarm.twin_contributors = {}
        buckets = series.get((), [[] for _ in range(periods)])
        values = [_period_value(bucket, statistic) for bucket in buckets]
        return _judge_periods(alarm, values, start, query.period, statistic, now)
    contributors: dict[str, _Contributor] = getattr(alarm, "twin_contributors", None) or {}
    alarm.twin_contributors = contributors
    current: set[str] = set()
    for key, buckets in series.items():
        attributes = dict(key)
        identifier = _contributor_id(alarm.name, attributes)
        current.add(identifier)
        contributor = contributors.setdefault(
            identifier, _Contributor(identifier, attributes, timestamp=now)
        )
        values = [_period_value(bucket, statistic) for bucket in buckets]
        state, _, _ = _judge_periods(alarm, values, start, query.period, statistic, now)
        reason = _contributor_reason(alarm, state, values, start, query.period)
        _change_contributor_state(backend, alarm, contributor, state, reason, now)
    ended = set(contributors) - current
    for identifier in sorted(ended, key=lambda i: tuple(contributors[i].attributes.items())):
        # No datapoint left in the window (or out of the LIMIT): the series ends, as OK.
        reason = f"No datapoints in the last {periods} periods: the time series is not evaluated."
        _change_contributor_state(backend, alarm, contributors.pop(identifier), "OK", reason, now)
    if not contributors:
        return _judge_periods(alarm, [None] * periods, start, query.period, statistic, now)
    in_alarm = sum(contributor.state == "ALARM" for contributor in contributors.values())
    reason_data = json.dumps(
        {
            "version": "1.0",
            "queryDate": iso(now),
            "startDate": iso(datetime.fromtimestamp(start, UTC)),
            "period": query.period,
            "threshold": float(alarm.threshold),
        }
    )
    reason = f"{in_alarm} out of {len(contributors)} time series evaluated to ALARM"
    return ("ALARM" if in_alarm else "OK"), reason, reason_data


def _judge_metric_alarm(backend: Any, alarm: Any, now: datetime) -> None:
    """Evaluate a metric alarm and move it (and a GROUP BY query's contributors)."""
    query = insights_query(alarm)
    if query is None:
        alarm.twin_contributors = {}
        verdict = _evaluate_metric_alarm(backend, alarm, now)
    else:
        verdict = _judge_insights_alarm(backend, alarm, query, now)
        if query.group_by and verdict[0] == alarm.state_value:
            # Same state, new count of contributors in ALARM: the reason follows, nothing acts.
            alarm.state_reason, alarm.state_reason_data = verdict[1], verdict[2]
            return
    _change_alarm_state(backend, alarm, *verdict)


# Composite alarm rules: ALARM(x) / OK(x) / INSUFFICIENT_DATA(x), AND, OR, NOT, parentheses.
_RULE_TOKENS = re.compile(
    r"""\s*(?:
        (?P<state>ALARM|OK|INSUFFICIENT_DATA)\s*\(\s*(?P<name>"(?:[^"\\]|\\.)*"|[^()\s]+)\s*\)
        |(?P<word>AND|OR|NOT|TRUE|FALSE)\b
        |(?P<paren>[()])
    )""",
    re.VERBOSE,
)

RuleNode = tuple[Any, ...]


def _parse_alarm_rule(rule: str) -> RuleNode:
    """Parse an AlarmRule into a tree; raise ValidationError naming the offending position."""
    from moto.cloudwatch.exceptions import ValidationError

    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(rule.rstrip()):
        match = _RULE_TOKENS.match(rule, position)
        if match is None:
            raise ValidationError(
                f"AlarmRule: cannot parse {rule[position:].strip()!r} in {rule!r}"
            )
        if match.group("state"):
            name = match.group("name")
            if name.startswith('"'):
                name = json.loads(name)
            tokens.append(("state", f"{match.group('state')}|{name.rsplit(':alarm:', 1)[-1]}"))
        elif match.group("word"):
            tokens.append(("word", match.group("word")))
        else:
            tokens.append(("paren", match.group("paren")))
        position = match.end()

    def expect(index: int) -> tuple[str, str]:
        if index >= len(tokens):
            raise ValidationError(f"AlarmRule: unexpected end of {rule!r}")
        return tokens[index]

    def parse_or(index: int) -> tuple[RuleNode, int]:
        node, index = parse_and(index)
        while index < len(tokens) and tokens[index] == ("word", "OR"):
            right, index = parse_and(index + 1)
            node = ("or", node, right)
        return node, index

    def parse_and(index: int) -> tuple[RuleNode, int]:
        node, index = parse_not(index)
        while index < len(tokens) and tokens[index] == ("word", "AND"):
            right, index = parse_not(index + 1)
            node = ("and", node, right)
        return node, index

    def parse_not(index: int) -> tuple[RuleNode, int]:
        kind, value = expect(index)
        if (kind, value) == ("word", "NOT"):
            node, index = parse_not(index + 1)
            return ("not", node), index
        if (kind, value) == ("paren", "("):
            node, index = parse_or(index + 1)
            if expect(index) != ("paren", ")"):
                raise ValidationError(f"AlarmRule: missing ')' in {rule!r}")
            return node, index + 1
        if kind == "word" and value in ("TRUE", "FALSE"):
            return ("const", value == "TRUE"), index + 1
        if kind == "state":
            state, name = value.split("|", 1)
            return ("state", state, name), index + 1
        raise ValidationError(f"AlarmRule: unexpected {value!r} in {rule!r}")

    tree, end = parse_or(0)
    if end != len(tokens):
        raise ValidationError(f"AlarmRule: unexpected {tokens[end][1]!r} in {rule!r}")
    return tree


def _rule_alarm_names(node: RuleNode) -> set[str]:
    if node[0] == "state":
        return {str(node[2])}
    if node[0] == "const":
        return set()
    return set().union(*(_rule_alarm_names(child) for child in node[1:]))


def _rule_holds(node: RuleNode, state_of: Callable[[str], str | None]) -> bool:
    kind = node[0]
    if kind == "const":
        return bool(node[1])
    if kind == "state":
        return state_of(str(node[2])) == str(node[1])
    if kind == "not":
        return not _rule_holds(node[1], state_of)
    results = [_rule_holds(child, state_of) for child in node[1:]]
    return all(results) if kind == "and" else any(results)


def _evaluate_composite(backend: Any, alarm: Any) -> tuple[str, str, str]:
    tree = _parse_alarm_rule(alarm.rule)

    def state_of(name: str) -> str | None:
        child = backend.alarms.get(name)
        return None if child is None else str(child.state_value)

    names = sorted(_rule_alarm_names(tree))
    triggering = [n for n in names if state_of(n) == "ALARM"]
    reason_data = json.dumps(
        {"triggeringAlarms": [backend.alarms[n].alarm_arn for n in triggering]}
    )
    if _rule_holds(tree, state_of):
        return "ALARM", f"arn(s) in ALARM: {', '.join(triggering) or 'none'}", reason_data
    return "OK", "the alarm rule evaluates to FALSE", reason_data


def _alarm_message(alarm: Any, account_id: str, old_state: str) -> dict[str, Any]:
    """The JSON CloudWatch publishes to an alarm's SNS actions."""
    message: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": iso(alarm.configuration_updated_timestamp),
        "NewStateValue": alarm.state_value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": iso(alarm.state_updated_timestamp),
        "Region": _REGION_NAMES.get(alarm.region_name, alarm.region_name),
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old_state,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
    }
    if alarm.rule is not None:
        message["AlarmRule"] = alarm.rule
        return message
    trigger: dict[str, Any] = {}
    query = insights_query(alarm)
    if query is not None:
        trigger["Metrics"] = [
            {
                "Expression": query.expression,
                "Id": query.query_id,
                "Period": query.period,
                "ReturnData": True,
            }
        ]
        period = query.period
    else:
        metric = _alarm_metric(alarm)
        trigger.update(
            MetricName=metric.name,
            Namespace=metric.namespace,
            Unit=metric.unit,
            Dimensions=[{"value": value, "name": name} for name, value in metric.dimensions],
        )
        if _PERCENTILE.match(metric.statistic):
            trigger.update(StatisticType="ExtendedStatistic", ExtendedStatistic=metric.statistic)
        else:
            trigger.update(StatisticType="Statistic", Statistic=metric.statistic.upper())
        period = metric.period
    trigger.update(
        Period=period,
        EvaluationPeriods=int(alarm.evaluation_periods),
        DatapointsToAlarm=int(alarm.datapoints_to_alarm or alarm.evaluation_periods),
        ComparisonOperator=alarm.comparison_operator,
        Threshold=float(alarm.threshold),
        TreatMissingData=alarm.treat_missing_data or "missing",
        EvaluateLowSampleCountPercentile=alarm.evaluate_low_sample_count_percentile or "",
    )
    message["Trigger"] = trigger
    return message


def _alarm_configuration(alarm: Any) -> dict[str, Any]:
    """`detail.configuration` of an alarm's EventBridge events."""
    configuration: dict[str, Any] = {"description": alarm.description}
    query = None if alarm.rule is not None else insights_query(alarm)
    if alarm.rule is not None:
        configuration["alarmRule"] = alarm.rule
    elif query is not None:
        configuration["metrics"] = [
            {
                "id": query.query_id,
                "expression": query.expression,
                "returnData": True,
                "period": query.period,
            }
        ]
    else:
        metric = _alarm_metric(alarm)
        configuration["metrics"] = [
            {
                "id": "m1",
                "metricStat": {
                    "metric": {
                        "namespace": metric.namespace,
                        "name": metric.name,
                        "dimensions": dict(metric.dimensions),
                    },
                    "period": metric.period,
                    "stat": metric.statistic,
                },
                "returnData": True,
            }
        ]
    return configuration


def _alarm_event_detail(alarm: Any, old: dict[str, str]) -> dict[str, Any]:
    """`detail` of EventBridge's "CloudWatch Alarm State Change" event."""
    return {
        "alarmName": alarm.name,
        "state": {
            "value": alarm.state_value,
            "reason": alarm.state_reason,
            "reasonData": alarm.state_reason_data,
            "timestamp": iso(alarm.state_updated_timestamp),
        },
        "previousState": old,
        "configuration": _alarm_configuration(alarm),
    }


def _contributor_event_detail(alarm: Any, contributor: _Contributor) -> dict[str, Any]:
    """`detail` of "CloudWatch Alarm Contributor State Change", as CloudWatch's documented
    sample has it: no previousState, no reasonData."""
    return {
        "alarmName": alarm.name,
        "alarmContributor": {"id": contributor.id, "attributes": dict(contributor.attributes)},
        "state": {
            "value": contributor.state,
            "reason": contributor.reason,
            "timestamp": iso(contributor.timestamp),
        },
        "configuration": _alarm_configuration(alarm),
    }


def _alarm_history_item(alarm: Any, old_state: str, when: datetime) -> dict[str, Any]:
    return {
        "AlarmName": alarm.name,
        "AlarmType": "CompositeAlarm" if alarm.rule is not None else "MetricAlarm",
        "Timestamp": when,
        "HistoryItemType": "StateUpdate",
        "HistorySummary": f"Alarm updated from {old_state} to {alarm.state_value}",
        "HistoryData": json.dumps(
            {
                "version": "1.0",
                "oldState": {"stateValue": old_state},
                "newState": {
                    "stateValue": alarm.state_value,
                    "stateReason": alarm.state_reason,
                    "stateReasonData": alarm.state_reason_data,
                },
            }
        ),
    }


def _contributor_history_item(
    alarm: Any, contributor: _Contributor, old_state: str
) -> dict[str, Any]:
    return {
        "AlarmName": alarm.name,
        "AlarmContributorId": contributor.id,
        "AlarmContributorAttributes": dict(contributor.attributes),
        "AlarmType": "MetricAlarm",
        "Timestamp": contributor.timestamp,
        "HistoryItemType": "AlarmContributorStateUpdate",
        "HistorySummary": f"Contributor updated from {old_state} to {contributor.state}",
        "HistoryData": json.dumps(
            {
                "version": "1.0",
                "oldState": {"stateValue": old_state},
                "newState": {"stateValue": contributor.state, "stateReason": contributor.reason},
            }
        ),
    }


def _change_contributor_state(
    backend: Any, alarm: Any, contributor: _Contributor, state: str, reason: str, now: datetime
) -> None:
    """Move one contributor; on a change record it, run the alarm's actions for the contributor
    and emit "CloudWatch Alarm Contributor State Change" (the alarm's own state may not move)."""
    contributor.reason = reason
    if state == contributor.state:
        return
    old_state = contributor.state
    contributor.state, contributor.timestamp = state, now
    if not hasattr(alarm, "twin_history"):
        alarm.twin_history = []
    alarm.twin_history.append(_contributor_history_item(alarm, contributor, old_state))
    if alarm.actions_enabled:
        message = _alarm_message(alarm, backend.account_id, old_state)
        message.update(
            NewStateValue=state,
            NewStateReason=reason,
            StateChangeTime=iso(now),
            AlarmContributorId=contributor.id,
            AlarmContributorAttributes=dict(contributor.attributes),
        )
        _publish_alarm_actions(backend, alarm, state, message)
    _put_alarm_event(
        backend,
        alarm,
        "CloudWatch Alarm Contributor State Change",
        _contributor_event_detail(alarm, contributor),
    )


def _change_alarm_state(
    backend: Any, alarm: Any, state: str, reason: str, reason_data: str
) -> None:
    """Move `alarm` to `state`; on a change run its actions, emit the event, re-judge composites."""
    with _ALARM_LOCK:
        old = {
            "value": alarm.state_value,
            "reason": alarm.state_reason,
            "timestamp": iso(alarm.state_updated_timestamp),
        }
        if state == alarm.state_value:
            return
        alarm.update_state(reason, reason_data, state)
        if not hasattr(alarm, "twin_history"):
            alarm.twin_history = []
        alarm.twin_history.append(_alarm_history_item(alarm, old["value"], datetime.now(UTC)))
        if alarm.actions_enabled:
            _run_alarm_actions(backend, alarm, old["value"])
        _emit_alarm_event(backend, alarm, old)
        for other in list(backend.alarms.values()):
            if other.rule is not None and alarm.name in _rule_alarm_names(
                _parse_alarm_rule(other.rule)
            ):
                _change_alarm_state(backend, other, *_evaluate_composite(backend, other))


def _run_alarm_actions(backend: Any, alarm: Any, old_state: str) -> None:
    message = _alarm_message(alarm, backend.account_id, old_state)
    _publish_alarm_actions(backend, alarm, alarm.state_value, message)


def _publish_alarm_actions(backend: Any, alarm: Any, state: str, document: dict[str, Any]) -> None:
    """Publish `document` to the alarm's SNS actions for `state` (other actions: logged)."""
    from moto.sns.models import sns_backends
    from moto.utilities.arns import parse_arn

    actions = {
        "ALARM": alarm.alarm_actions,
        "OK": alarm.ok_actions,
        "INSUFFICIENT_DATA": alarm.insufficient_data_actions,
    }[state]
    message = json.dumps(document)
    region = _REGION_NAMES.get(alarm.region_name, alarm.region_name)
    subject = f'{state}: "{alarm.name}" in {region}'[:99]
    for action in actions or []:
        try:
            arn = parse_arn(action)
            if arn.service == "sns":
                sns_backends[arn.account][arn.region].publish(message, arn=action, subject=subject)
            else:
                LOG.warning("alarm %s: action %s is not run by the twin", alarm.name, action)
        except Exception as error:  # an action failure must not stop the state change
            LOG.warning("alarm %s: action %s failed: %s", alarm.name, action, error)


def _emit_alarm_event(backend: Any, alarm: Any, old: dict[str, str]) -> None:
    detail = _alarm_event_detail(alarm, old)
    _put_alarm_event(backend, alarm, "CloudWatch Alarm State Change", detail)


def _put_alarm_event(backend: Any, alarm: Any, detail_type: str, detail: dict[str, Any]) -> None:
    """Put an aws.cloudwatch event about `alarm` on the default bus."""
    from moto.events.models import events_backends

    entry = {
        "Source": "aws.cloudwatch",
        "DetailType": detail_type,
        "Detail": json.dumps(detail),
        "Resources": [alarm.alarm_arn],
    }
    try:
        events_backends[backend.account_id][backend.region_name].put_events([entry])
    except Exception as error:
        LOG.warning("alarm %s: %s event failed: %s", alarm.name, detail_type, error)


def evaluate_alarms(
    backend: Any, namespaces: set[str] | None = None, now: datetime | None = None
) -> None:
    """Re-judge the backend's metric alarms (optionally only those on `namespaces`) as of `now`
    (default: the current time; a later time shows what the alarms do when data stops)."""
    now = now or datetime.now(UTC)
    with _ALARM_LOCK:
        for alarm in list(backend.alarms.values()):
            if alarm.rule is not None:
                continue
            if namespaces is not None and _alarm_namespace(alarm) not in namespaces:
                continue
            _judge_metric_alarm(backend, alarm, now)


def _describe_alarm_history(self: Any) -> Any:
    from moto.core.responses import ActionResult

    name = self._get_param("AlarmName")
    item_type = self._get_param("HistoryItemType")
    contributor = self._get_param("AlarmContributorId")
    start = self._get_param("StartDate")
    end = self._get_param("EndDate")
    limit = self._get_param("MaxRecords")
    oldest_first = self._get_param("ScanBy") == "TimestampAscending"
    items: list[dict[str, Any]] = []
    for alarm in self.cloudwatch_backend.alarms.values():
        if name and alarm.name != name:
            continue
        items.extend(getattr(alarm, "twin_history", []))
    # Contributor items only when asked for, by their type or a contributor id.
    contributor_items = contributor is not None or str(item_type).startswith("AlarmContributor")
    items = [
        item
        for item in items
        if (not item_type or item["HistoryItemType"] == item_type)
        and ("AlarmContributorId" in item) == contributor_items
        and (contributor is None or item["AlarmContributorId"] == contributor)
        and (start is None or item["Timestamp"] >= utc(start))
        and (end is None or item["Timestamp"] <= utc(end))
    ]
    items.sort(key=lambda item: item["Timestamp"], reverse=not oldest_first)
    if limit:
        items = items[: int(limit)]
    return ActionResult({"AlarmHistoryItems": items})


def _describe_alarm_contributors(self: Any) -> Any:
    """The contributors of a GROUP BY Metrics Insights alarm that are in ALARM (one page)."""
    from moto.cloudwatch.exceptions import ResourceNotFoundException
    from moto.core.responses import ActionResult

    name = self._get_param("AlarmName")
    alarm = self.cloudwatch_backend.alarms.get(name)
    if alarm is None:
        raise ResourceNotFoundException(f"Alarm {name} does not exist")
    with _ALARM_LOCK:
        contributors = [
            {
                "ContributorId": contributor.id,
                "ContributorAttributes": dict(contributor.attributes),
                "StateReason": contributor.reason,
                "StateTransitionedTimestamp": contributor.timestamp,
            }
            for contributor in getattr(alarm, "twin_contributors", {}).values()
            if contributor.state == "ALARM"
        ]
    return ActionResult({"AlarmContributors": contributors})


def without_metric() -> dict[str, Any]:
    """`put_metric_alarm` arguments of a composite alarm: it watches no metric of its own."""
    return {
        "namespace": None,
        "metric_name": None,
        "comparison_operator": None,
        "evaluation_periods": None,
        "period": None,
        "threshold": None,
        "statistic": None,
        "dimensions": [],
    }


def _put_composite_alarm(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    actions_enabled = self._get_param("ActionsEnabled")
    self.cloudwatch_backend.put_metric_alarm(
        **without_metric(),
        name=self._get_param("AlarmName"),
        description=self._get_param("AlarmDescription"),
        alarm_actions=self._get_param("AlarmActions", []),
        ok_actions=self._get_param("OKActions", []),
        insufficient_data_actions=self._get_param("InsufficientDataActions", []),
        actions_enabled=True if actions_enabled is None else actions_enabled,
        rule=self._get_param("AlarmRule"),
        tags=self._get_param("Tags", []),
    )
    return EmptyResult()


def adapt_cloudwatch_alarms() -> None:
    """moto 5.2.5 stores alarms but never evaluates them, acts on them, or records history.

    Wraps `CloudWatchBackend.put_metric_alarm` (validate, start INSUFFICIENT_DATA, keep state
    on update, evaluate), `put_metric_data` (evaluate the namespace's alarms), and
    `set_alarm_state` (a manual change acts like an evaluated one); adds the missing
    `PutCompositeAlarm`, `DescribeAlarmHistory` and `DescribeAlarmContributors` actions. A state
    change publishes CloudWatch's SNS message to the actions, emits "CloudWatch Alarm State
    Change" on the default bus and re-judges composite alarms watching the alarm. An alarm on a
    Metrics Insights query with GROUP BY judges each series (contributor) on its own, and every
    contributor change publishes to the actions and emits "CloudWatch Alarm Contributor State
    Change" too.
    """
    from moto.cloudwatch.exceptions import InvalidFormat, ValidationError
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse

    put_metric_alarm = CloudWatchBackend.put_metric_alarm
    put_metric_data = CloudWatchBackend.put_metric_data
    set_alarm_state = CloudWatchBackend.set_alarm_state

    def put_evaluated_alarm(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs["name"] if "name" in kwargs else args[0]
        with _ALARM_LOCK:
            previous = self.alarms.get(name)
            alarm: Any = put_metric_alarm(self, *args, **kwargs)
            try:
                _validate_alarm(alarm)
                if alarm.rule is not None:
                    unknown = _rule_alarm_names(_parse_alarm_rule(alarm.rule)) - set(self.alarms)
                    if unknown:
                        raise ValidationError(
                            f"alarm {name}: AlarmRule names alarms that do not exist: "
                            f"{', '.join(sorted(unknown))}"
                        )
            except Exception:
                if previous is None:
                    self.alarms.pop(name, None)
                else:
                    self.alarms[name] = previous
                raise
            if previous is not None:
                # CloudWatch keeps an updated alarm's state and history.
                alarm.state_value = previous.state_value
                alarm.state_reason = previous.state_reason
                alarm.state_reason_data = previous.state_reason_data
                alarm.state_updated_timestamp = previous.state_updated_timestamp
                alarm.twin_history = getattr(previous, "twin_history", [])
                alarm.twin_contributors = getattr(previous, "twin_contributors", {})
            else:
                alarm.state_value = "INSUFFICIENT_DATA"
                alarm.twin_history = []
            if alarm.rule is not None:
                _change_alarm_state(self, alarm, *_evaluate_composite(self, alarm))
            else:
                _judge_metric_alarm(self, alarm, datetime.now(UTC))
        return alarm

    def put_and_evaluate(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        put_metric_data(self, namespace, metric_data)
        evaluate_alarms(self, {namespace})

    def set_state_and_act(
        self: Any, alarm_name: str, reason: str, reason_data: str, state_value: str
    ) -> None:
        with _ALARM_LOCK:
            # moto's own method validates and raises for unknown alarms and bad states.
            alarm = self.alarms.get(alarm_name)
            if alarm is None or state_value not in ("OK", "ALARM", "INSUFFICIENT_DATA"):
                set_alarm_state(self, alarm_name, reason, reason_data, state_value)
                return
            try:
                if reason_data is not None:
                    json.loads(reason_data)
            except ValueError:
                raise InvalidFormat("Unknown") from None
            _change_alarm_state(self, alarm, state_value, reason, reason_data or "{}")

    patch(CloudWatchBackend, "put_metric_alarm", put_evaluated_alarm)
    patch(CloudWatchBackend, "put_metric_data", put_and_evaluate)
    patch(CloudWatchBackend, "set_alarm_state", set_state_and_act)
    patch(CloudWatchResponse, "describe_alarm_history", _describe_alarm_history)
    patch(CloudWatchResponse, "put_composite_alarm", _put_composite_alarm)
    patch(CloudWatchResponse, "describe_alarm_contributors", _describe_alarm_contributors)
