"""Monthly cost estimate of one env from its synthesized templates and a usage profile.

Pure: the caller loads the templates (CloudFormation JSON), the usage profile and the price
table (docs/prices.yaml). What the templates hold is counted (functions with their memory,
alarms, dashboards, KMS keys, log groups with retention, tables, buckets, state machines with
their states); the profile says how much they are used. Two totals:

- idle: what the env costs per month with no upload, no prediction and no drift check, i.e.
  what exists (keys, alarms, dashboards, storage kept); compute is $0 when idle by design;
- usage: what the profile's traffic adds (Lambda, Step Functions transitions, requests, logs).

The formulas are in docs/cost.md; every line names its quantity and unit price.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class UsageProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    uploads_per_day: float = Field(default=1, ge=0)
    rows_per_upload: float = Field(default=100_000, ge=0)
    predictions_per_day: float = Field(default=10_000, ge=0)
    drift_checks_per_day: float | None = Field(default=None, ge=0)
    step_seconds: float = Field(default=5, ge=0)
    train_seconds_per_100k_rows: float = Field(default=60, ge=0)
    inference_ms: float = Field(default=50, ge=0)
    drift_check_seconds: float = Field(default=10, ge=0)
    capture_fraction: float = Field(default=1.0, ge=0, le=1)
    registry_writes_per_run: float = Field(default=30, ge=0)
    s3_puts_per_run: float = Field(default=40, ge=0)
    s3_gets_per_prediction: float = Field(default=0, ge=0)
    artifacts_gb: float = Field(default=5, ge=0)
    registry_gb: float = Field(default=0.1, ge=0)
    log_gb_per_month: float = Field(default=1, ge=0)
    image_gb: float = Field(default=1.5, ge=0)
    sagemaker_training_minutes: float = Field(default=10, ge=0)


@dataclass(frozen=True)
class Function:
    stack: str
    logical_id: str
    memory_mb: int
    image: bool

    @property
    def gb(self) -> float:
        return self.memory_mb / 1024

    @property
    def role(self) -> str:
        """train, inference, drift_monitor or step: what the profile's durations apply to."""
        name = self.logical_id
        if "InferenceFunction" in name:
            return "inference"
        if "DriftMonitorFunction" in name:
            return "drift_monitor"
        if re.search(r"(^|Functions)TrainFunction", name):
            return "train"
        return "step" if self.stack.endswith("-Pipeline") else "other"


@dataclass
class Inventory:
    """What the templates of one env hold."""

    functions: list[Function] = field(default_factory=list)
    alarms: int = 0
    composite_alarms: int = 0
    dashboards: int = 0
    kms_keys: int = 0
    log_groups: list[int | None] = field(default_factory=list)  # retention days
    tables: int = 0
    buckets: int = 0
    state_machine_states: list[int] = field(default_factory=list)
    topics: int = 0
    queues: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "functions": len(self.functions),
            "function_memory_mb": sorted(f.memory_mb for f in self.functions),
            "alarms": self.alarms,
            "composite_alarms": self.composite_alarms,
            "dashboards": self.dashboards,
            "kms_keys": self.kms_keys,
            "log_groups": len(self.log_groups),
            "log_retention_days": sorted({d for d in self.log_groups if d is not None}),
            "tables": self.tables,
            "buckets": self.buckets,
            "state_machines": len(self.state_machine_states),
            "states_per_run": sum(self.state_machine_states),
            "topics": self.topics,
            "queues": self.queues,
        }


def inventory(templates: Mapping[str, Mapping[str, Any]]) -> Inventory:
    """Count the resources of `stack name → template`."""
    found = Inventory()
    for stack, template in sorted(templates.items()):
        for logical_id, resource in (template.get("Resources") or {}).items():
            kind = resource.get("Type")
            props = resource.get("Properties") or {}
            if kind == "AWS::Lambda::Function":
                found.functions.append(
                    Function(
                        stack,
                        logical_id,
                        int(props.get("MemorySize", 128)),
                        props.get("PackageType") == "Image",
                    )
                )
            elif kind == "AWS::CloudWatch::Alarm":
                found.alarms += 1
            elif kind == "AWS::CloudWatch::CompositeAlarm":
                found.composite_alarms += 1
            elif kind == "AWS::CloudWatch::Dashboard":
                found.dashboards += 1
            elif kind == "AWS::KMS::Key":
                found.kms_keys += 1
            elif kind == "AWS::Logs::LogGroup":
                days = props.get("RetentionInDays")
                found.log_groups.append(int(days) if days is not None else None)
            elif kind == "AWS::DynamoDB::Table":
                found.tables += 1
            elif kind == "AWS::S3::Bucket":
                found.buckets += 1
            elif kind == "AWS::StepFunctions::StateMachine":
                found.state_machine_states.append(count_states(props.get("DefinitionString")))
            elif kind == "AWS::SNS::Topic":
                found.topics += 1
            elif kind == "AWS::SQS::Queue":
                found.queues += 1
    return found


def count_states(definition: Any) -> int:
    """States in an ASL definition, which CDK writes as a string or an Fn::Join of parts."""
    text = _literal(definition)
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text.count('"Type":"')
    return sum(1 for _ in _states(document))


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        # Tokens (ARNs) stand in as a quoted placeholder so the JSON still parses.
        return str(separator).join(part if isinstance(part, str) else "x" for part in parts)
    return ""


def _states(document: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return
    for state in (document.get("States") or {}).values():
        if isinstance(state, Mapping):
            yield state
            for branch in state.get("Branches") or []:
                yield from _states(branch)
            for key in ("Iterator", "ItemProcessor"):
                yield from _states(state.get(key))


@dataclass(frozen=True)
class Line:
    item: str
    quantity: float
    unit: str
    unit_price: float
    monthly: float
    idle: bool


def _line(item: str, quantity: float, unit: str, price: float, *, idle: bool) -> Line:
    return Line(item, round(quantity, 6), unit, price, round(quantity * price, 6), idle)


def estimate(
    found: Inventory,
    profile: UsageProfile,
    prices: Mapping[str, float],
    *,
    days: int = 30,
    drift_check_minutes: int = 5,
    log_retention_days: int = 30,
    sagemaker_training: bool = False,
) -> list[Line]:
    """One line per cost item, idle first; `monthly` in USD."""
    lines: list[Line] = []
    idle = [
        ("KMS customer keys", found.kms_keys, "key-month", prices["kms_key_month"]),
        ("CloudWatch alarms", found.alarms, "alarm-month", prices["cloudwatch_alarm_month"]),
        (
            "CloudWatch composite alarms",
            found.composite_alarms,
            "alarm-month",
            prices["cloudwatch_composite_alarm_month"],
        ),
        (
            "CloudWatch dashboards",
            found.dashboards,
            "dashboard-month",
            prices["cloudwatch_dashboard_month"],
        ),
        (
            "CloudWatch Logs storage (kept for the retention)",
            profile.log_gb_per_month * min(log_retention_days, 365) / days,
            "GB-month",
            prices["cloudwatch_logs_storage_gb_month"],
        ),
        (
            "S3 storage (datasets, models, captures)",
            profile.artifacts_gb,
            "GB-month",
            prices["s3_storage_gb_month"],
        ),
        (
            "DynamoDB storage (registries)",
            profile.registry_gb,
            "GB-month",
            prices["dynamodb_storage_gb_month"],
        ),
        (
            "ECR storage (function images)",
            profile.image_gb if any(f.image for f in found.functions) else 0,
            "GB-month",
            prices["ecr_storage_gb_month"],
        ),
    ]
    lines += [_line(item, qty, unit, price, idle=True) for item, qty, unit, price in idle]

    runs = profile.uploads_per_day * days
    predictions = profile.predictions_per_day * days
    checks_per_day = (
        profile.drift_checks_per_day
        if profile.drift_checks_per_day is not None
        else 24 * 60 / drift_check_minutes
    )
    checks = checks_per_day * days
    by_role: dict[str, list[Function]] = {}
    for function in found.functions:
        by_role.setdefault(function.role, []).append(function)
    train_seconds = profile.train_seconds_per_100k_rows * profile.rows_per_upload / 100_000
    # One model's dedicated endpoint serves the traffic; the largest, to stay on the safe side.
    inference = max(by_role.get("inference", []), key=lambda f: f.memory_mb, default=None)
    drift = max(by_role.get("drift_monitor", []), key=lambda f: f.memory_mb, default=None)
    steps = by_role.get("step", [])
    train = [] if sagemaker_training else by_role.get("train", [])

    gb_seconds = runs * (
        sum(f.gb * profile.step_seconds for f in steps) + sum(f.gb * train_seconds for f in train)
    )
    gb_seconds += predictions * (inference.gb if inference else 0) * profile.inference_ms / 1000
    gb_seconds += checks * (drift.gb if drift else 0) * profile.drift_check_seconds
    requests = runs * (len(steps) + len(train))
    requests += predictions if inference else 0
    requests += checks if drift else 0
    transitions = runs * sum(found.state_machine_states)
    lines += [
        _line("Lambda duration", gb_seconds, "GB-second", prices["lambda_gb_second"], idle=False),
        _line(
            "Lambda requests",
            requests / 1e6,
            "million requests",
            prices["lambda_request_per_million"],
            idle=False,
        ),
        _line(
            "Step Functions state transitions",
            transitions / 1000,
            "thousand transitions",
            prices["stepfunctions_transition_per_thousand"],
            idle=False,
        ),
        _line(
            "DynamoDB writes (registries)",
            runs * profile.registry_writes_per_run / 1e6,
            "million write units",
            prices["dynamodb_write_per_million"],
            idle=False,
        ),
        _line(
            "S3 PUT requests (runs, captures)",
            (runs * profile.s3_puts_per_run + predictions * profile.capture_fraction) / 1000,
            "thousand requests",
            prices["s3_put_per_thousand"],
            idle=False,
        ),
        _line(
            "S3 GET requests",
            predictions * profile.s3_gets_per_prediction / 1000,
            "thousand requests",
            prices["s3_get_per_thousand"],
            idle=False,
        ),
        _line(
            "CloudWatch Logs ingestion",
            profile.log_gb_per_month,
            "GB",
            prices["cloudwatch_logs_ingest_gb"],
            idle=False,
        ),
    ]
    if sagemaker_training:
        lines.append(
            _line(
                "SageMaker training (ml.m5.large)",
                runs * profile.sagemaker_training_minutes / 60,
                "instance-hour",
                prices["sagemaker_training_instance_hour"],
                idle=False,
            )
        )
    return lines


def totals(lines: Iterable[Line]) -> dict[str, float]:
    items = list(lines)
    idle = sum(line.monthly for line in items if line.idle)
    usage = sum(line.monthly for line in items if not line.idle)
    return {"idle": round(idle, 2), "usage": round(usage, 2), "total": round(idle + usage, 2)}


def line_dicts(lines: Iterable[Line]) -> list[dict[str, Any]]:
    return [asdict(line) for line in lines]
