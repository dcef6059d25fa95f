"""`driftline models promote --auto --from staging --to prod`: soak, then promote, wait or hold.

For each model of the source env, its champion (the Approved version its endpoint serves) is
judged by `pipelines.promotion.decide` against the source env's CloudWatch alarms and their
history over the soak window. A version judged `promote` is copied into the target env exactly
as an explicit `models promote` copies it, arriving in the status the target env's
`approval_policy` gives it (Approved under `automatic`; PendingApproval under `manual`, for
`driftline models approve --env prod`). Both registries record it: the target version carries
`promoted_from`, `promoted_by` and `promotion` (mode, soak, reason); the source version carries
`promotions.<target env>`.

The delivery account runs it on a schedule (see README, "Deliver to production"); it is
idempotent: a version already promoted is reported `done`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from driftline.aws import client
from driftline.commands import models as models_command
from driftline.commands.runs import registry_errors
from driftline.errors import UsageError
from driftline.output import emit
from functions.shared.registry import ModelStatus
from functions.shared.state import utc_now
from pipelines.promotion import (
    Alarm,
    AlarmEvent,
    Candidate,
    Decision,
    Verdict,
    decide,
    model_of_alarm,
)

DEFAULT_SOAK_HOURS = 24.0


def add_auto_arguments(parser: argparse.ArgumentParser) -> None:
    """`--auto` and its options on `models promote`; --model/--version become optional there."""
    for action in parser._actions:
        if action.dest in ("model", "version"):
            action.required = False
    parser.add_argument(
        "--auto",
        action="store_true",
        help="promote each model's champion of --from that soaked there without an alarm",
    )
    parser.add_argument(
        "--soak-hours",
        type=_positive_hours,
        default=DEFAULT_SOAK_HOURS,
        help=f"with --auto: how long a version must be live and alarm-free "
        f"(default {DEFAULT_SOAK_HOURS:g})",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="with --auto: decide and report, copy nothing"
    )


def _positive_hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"soak hours cannot be negative, got {text!r}")
    return value


def require_explicit(args: argparse.Namespace) -> None:
    if args.model is None or args.version is None:
        raise UsageError(
            "models promote: --model and --version are required (or --auto to promote every "
            "soaked champion)"
        )


def run_auto(args: argparse.Namespace) -> int:
    if args.from_env == args.to_env:
        raise UsageError(f"--from and --to are both {args.to_env!r}: promote to another env")
    if args.version is not None:
        raise UsageError("--auto promotes each model's champion: drop --version")
    now = datetime.now(UTC)
    soak = timedelta(hours=args.soak_hours)
    with registry_errors():
        status = models_command.approval_status(args.to_env)
        source = models_command._Env(args.from_env, args.from_profile)
        target = models_command._Env(args.to_env, args.to_profile)
        names = [args.model] if args.model else source.registry.list_models()
        cloudwatch = client("cloudwatch", profile=args.from_profile)
        outputs = models_command.stack_outputs(  # type: ignore[attr-defined]
            args.from_env, profile=args.from_profile
        )
        function_models = endpoint_functions(outputs)
        alarms = list(env_alarms(cloudwatch, args.from_env, function_models))
        start = now - soak
        history = list(alarm_history(cloudwatch, start, now)) if alarms else []
        results = []
        for model in names:
            candidate = champion_candidate(source, target, model, args.from_env)
            if candidate is None:
                results.append(
                    {
                        "model": model,
                        "version": None,
                        "verdict": Verdict.WAIT.value,
                        "reason": f"no Approved version in env {args.from_env!r}",
                    }
                )
                continue
            decision = decide(candidate, now=now, soak=soak, alarms=alarms, history=history)
            result = _result(decision)
            if decision.verdict is Verdict.PROMOTE and not args.dry_run:
                result |= promote_decided(
                    source, target, decision, status=status, soak=soak, now=now
                )
            results.append(result)
    document = {
        "from": args.from_env,
        "to": args.to_env,
        "soak_hours": args.soak_hours,
        "target_status": status,
        "dry_run": bool(args.dry_run),
        "decisions": results,
    }
    emit(document, as_json=args.json, rows=[_row(result) for result in results])
    return 0


def _result(decision: Decision) -> dict[str, Any]:
    return {
        "model": decision.model,
        "version": decision.version,
        "verdict": decision.verdict.value,
        "reason": decision.reason,
        "soak_ends_at": decision.soak_ends_at.isoformat() if decision.soak_ends_at else None,
        "alarms": list(decision.alarms),
    }


def _row(result: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "model": result["model"],
        "version": result["version"],
        "verdict": result["verdict"],
        "target_version": result.get("target_version"),
        "status": result.get("target_status"),
        "reason": result["reason"],
    }


def endpoint_functions(outputs: Mapping[str, str]) -> dict[str, str]:
    """Dedicated endpoint function name → model, from the Serving stack's `Endpoints` output."""
    import json

    try:
        document = json.loads(outputs.get("Endpoints") or "{}")
    except json.JSONDecodeError:
        return {}
    return {
        str(entry["function_name"]): str(model)
        for model, entry in document.items()
        if isinstance(entry, dict) and entry.get("function_name")
    }


def env_alarms(cloudwatch: Any, env: str, function_models: Mapping[str, str]) -> Iterator[Alarm]:
    """The env's metric and composite alarms (CloudFormation names them after their stack)."""
    prefix = f"Driftline-{env}-"
    paginator = cloudwatch.get_paginator("describe_alarms")
    pages = paginator.paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    for page in pages:
        for alarm in page.get("MetricAlarms", []):
            dimensions = list(alarm.get("Dimensions") or [])
            for query in alarm.get("Metrics") or []:
                metric = (query.get("MetricStat") or {}).get("Metric") or {}
                dimensions.extend(metric.get("Dimensions") or [])
            yield Alarm(
                alarm["AlarmName"], alarm["StateValue"], model_of_alarm(dimensions, function_models)
            )
        for alarm in page.get("CompositeAlarms", []):
            yield Alarm(alarm["AlarmName"], alarm["StateValue"], None)


def alarm_history(cloudwatch: Any, start: datetime, end: datetime) -> Iterator[AlarmEvent]:
    """Every state change of any alarm in [start, end] (one paged call, filtered by the caller)."""
    import json

    paginator = cloudwatch.get_paginator("describe_alarm_history")
    for page in paginator.paginate(HistoryItemType="StateUpdate", StartDate=start, EndDate=end):
        for item in page.get("AlarmHistoryItems", []):
            try:
                data = json.loads(item.get("HistoryData") or "{}")
            except json.JSONDecodeError:
                continue
            state = ((data.get("newState") or {}).get("stateValue")) or ""
            moment = item["Timestamp"]
            if isinstance(moment, str):
                moment = _parse_time(moment)
            if moment is not None:
                yield AlarmEvent(item["AlarmName"], moment.astimezone(UTC), state)


def champion_candidate(source: Any, target: Any, model: str, source_env: str) -> Candidate | None:
    served = source.served(model)
    champion = source.registry.get_version(model, served[0]) if served is not None else None
    if served is None or champion is None or champion.get("status") != "Approved":
        return None
    version = int(champion["version"])
    live_since = _parse_time(str(served[1] or ""))  # when its endpoint started serving it
    already = models_command.promoted_version(target.registry, model, source_env, version)
    return Candidate(model, version, live_since, already)


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def promote_decided(
    source: Any,
    target: Any,
    decision: Decision,
    *,
    status: ModelStatus,
    soak: timedelta,
    now: datetime,
) -> dict[str, Any]:
    """Copy the version into the target env and record the promotion in both registries."""
    model, version = decision.model, decision.version
    record = models_command.version_record(source.registry, model, version)
    who = f"auto-promotion ({models_command._who()})"
    promotion = {
        "mode": "auto",
        "soak_hours": soak.total_seconds() / 3600,
        "reason": decision.reason,
        "decided_at": utc_now(),
    }
    new_version = models_command.copy_version(
        source,
        target,
        record,
        status=status,
        promoted_by=who,
        decided_by=f"policy:automatic after a {_hours(promotion)} soak in {source.name}",
        promotion=promotion,
    )
    promotions = dict(record.get("promotions") or {})
    promotions[target.name] = {
        "version": new_version,
        "status": status,
        "at": promotion["decided_at"],
        "by": who,
        "reason": decision.reason,
    }
    source.registry.set_version_fields(model, version, {"promotions": promotions})
    return {"target_version": new_version, "target_status": status}


def _hours(promotion: Mapping[str, Any]) -> str:
    return f"{float(promotion['soak_hours']):g}h"
