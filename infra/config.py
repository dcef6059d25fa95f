"""Per-environment settings, parsed once from `cdk.json` context into a typed, frozen object.

Everything an environment can vary lives here so that constructs receive decisions as
props and never look anything up themselves. Errors are raised as `ConfigError` with a
one-line message naming the offending context key, because a traceback wall from deep
inside pydantic tells an operator nothing about which line of `cdk.json` to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.drift_thresholds import DEFAULT_THRESHOLDS, DriftThresholdConfig

ENV_NAMES: tuple[str, ...] = ("local", "dev", "staging", "prod")
CONTEXT_KEY = "driftline"
LOCAL_ACCOUNT = "000000000000"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
# The values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS: frozenset[int] = frozenset(
    (
        1,
        3,
        5,
        7,
        14,
        30,
        60,
        90,
        120,
        150,
        180,
        365,
        400,
        545,
        731,
        1096,
        1827,
        2192,
        2557,
        2922,
        3288,
        3653,
    )
)


# Per inference function: enough for ~20 concurrent requests of up to a second each, and small
# enough that a runaway client cannot take the account's whole Lambda concurrency (1,000 by
# default, shared with the pipeline) from the training and monitoring functions.
DEFAULT_INFERENCE_RESERVED_CONCURRENCY = 20


class ConfigError(ValueError):
    """A context value that cannot describe a deployable environment."""


class RemovalMode(StrEnum):
    RETAIN = "retain"
    DESTROY = "destroy"


class TrainingBackend(StrEnum):
    LAMBDA = "lambda"
    SAGEMAKER = "sagemaker"


class ServingBackend(StrEnum):
    LAMBDA = "lambda"
    SAGEMAKER_SERVERLESS = "sagemaker-serverless"


class ApprovalPolicy(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


class DeploymentStrategy(StrEnum):
    ALL_AT_ONCE = "AllAtOnce"
    CANARY_10_PERCENT_5_MINUTES = "Canary10Percent5Minutes"
    LINEAR_10_PERCENT_EVERY_1_MINUTE = "Linear10PercentEvery1Minute"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Schedules(_Strict):
    """Rate expressions in minutes/hours; None switches a schedule off."""

    drift_check_minutes: int = Field(default=5, ge=1, le=1440)
    retrain_cooldown_hours: int = Field(default=6, ge=0, le=720)
    scheduled_retrain_days: int | None = Field(default=None, ge=1, le=365)


class EnvConfig(_Strict):
    """One deployable environment. Field names are the keys under `context.driftline.envs.<env>`."""

    name: Literal["local", "dev", "staging", "prod"]
    account: str | None = None
    region: str
    removal_policy: RemovalMode
    alarm_emails: tuple[str, ...] = ()
    log_retention_days: int = Field(gt=0)
    noncurrent_version_expiry_days: int = Field(gt=0)
    training_backend: TrainingBackend = TrainingBackend.LAMBDA
    serving_backend: ServingBackend = ServingBackend.LAMBDA
    approval_policy: ApprovalPolicy = ApprovalPolicy.AUTOMATIC
    deployment_strategy: DeploymentStrategy = DeploymentStrategy.ALL_AT_ONCE
    thresholds: DriftThresholdConfig = DEFAULT_THRESHOLDS
    schedules: Schedules = Schedules()
    # Concurrent executions reserved for (and capping) each inference function, dedicated and
    # shared; None reserves nothing (an account at Lambda's initial quota of 10 cannot reserve).
    inference_reserved_concurrency: int | None = Field(
        default=DEFAULT_INFERENCE_RESERVED_CONCURRENCY, ge=1, le=1000
    )
    git_sha: str = "unknown"

    @field_validator("account")
    @classmethod
    def _account_is_twelve_digits(cls, value: str | None) -> str | None:
        if value is not None and not _ACCOUNT.match(value):
            raise ValueError("must be a 12-digit AWS account id")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention_is_one_cloudwatch_accepts(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            allowed = ", ".join(str(days) for days in sorted(LOG_RETENTION_DAYS))
            raise ValueError(f"{value} is not a CloudWatch Logs retention (one of {allowed})")
        return value

    @field_validator("region")
    @classmethod
    def _region_looks_like_aws(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name")
        return value

    @field_validator("alarm_emails")
    @classmethod
    def _emails_are_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an e-mail address")
        return value

    @model_validator(mode="after")
    def _stateful_data_survives_outside_sandboxes(self) -> EnvConfig:
        if self.name in ("staging", "prod") and self.removal_policy is RemovalMode.DESTROY:
            raise ValueError("removal_policy 'destroy' is allowed only in local and dev")
        if self.name == "local" and self.account not in (None, LOCAL_ACCOUNT):
            raise ValueError(f"account of the local twin is fixed at {LOCAL_ACCOUNT}")
        return self

    @property
    def is_local(self) -> bool:
        return self.name == "local"

    @property
    def protects_stateful_resources(self) -> bool:
        """Termination protection and RETAIN go together: both guard data that cannot be rebuilt."""
        return self.removal_policy is RemovalMode.RETAIN

    @property
    def stack_prefix(self) -> str:
        return f"Driftline-{self.name}"


def load_env_config(
    context: Mapping[str, Any], env_name: str | None, *, git_sha: str = "unknown"
) -> EnvConfig:
    """Parse the `driftline` context block for one environment, or raise a one-line ConfigError."""
    if env_name not in ENV_NAMES:
        raise ConfigError(f"unknown env {env_name!r}: valid envs are {', '.join(ENV_NAMES)}")
    block = context.get(CONTEXT_KEY)
    if not isinstance(block, Mapping) or not isinstance(block.get("envs"), Mapping):
        raise ConfigError(f"context key '{CONTEXT_KEY}.envs' is missing from cdk.json")
    raw = block["envs"].get(env_name)
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"context key '{CONTEXT_KEY}.envs.{env_name}' is missing or not an object"
        )
    values = {**raw, "name": env_name, "git_sha": git_sha}
    if env_name == "local":
        values.setdefault("account", LOCAL_ACCOUNT)
    try:
        return EnvConfig.model_validate(values)
    except ValidationError as error:
        raise ConfigError(_one_line(error, env_name)) from None


def _one_line(error: ValidationError, env_name: str) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    key = (
        f"{CONTEXT_KEY}.envs.{env_name}.{location}"
        if location
        else f"{CONTEXT_KEY}.envs.{env_name}"
    )
    message = first["msg"].removeprefix("Value error, ")
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"invalid context value '{key}': {message}{suffix}"
