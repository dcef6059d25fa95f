"""The delivery pipeline's settings: `context.driftline.delivery` in cdk.json, parsed once.

The pipeline lives in one account (the "delivery" or tooling account) and deploys each stage's
env (dev → staging → prod) to that env's own account and region. A stage takes its account and
region from its own entry, else from `driftline.envs.<env>`; a stage that ends up without
either cannot be deployed and is refused on one line naming the key to set. `local` is the twin
and never a stage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from infra.config import CONTEXT_KEY, ENV_NAMES, ConfigError, EnvConfig, load_env_config

DELIVERY_ENV = "delivery"
DELIVERY_KEY = "delivery"
DELIVERY_STACK = "Driftline-Delivery"
STAGE_ENVS: tuple[str, ...] = ("dev", "staging", "prod")

_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:"
    r"connection/[A-Za-z0-9-]+$"
)
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _RawStage(_Strict):
    env: str
    account: str | None = None
    region: str | None = None

    @field_validator("env")
    @classmethod
    def _deployable_env(cls, value: str) -> str:
        if value == "local":
            raise ValueError("env 'local' is the twin and cannot be a delivery stage")
        if value not in STAGE_ENVS:
            raise ValueError(f"unknown env {value!r}: stages are {', '.join(STAGE_ENVS)}")
        return value

    @field_validator("account")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is not None and not _ACCOUNT.match(value):
            raise ValueError("must be a 12-digit AWS account id")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name")
        return value


class ModelPromotion(_Strict):
    """`driftline models promote --auto --from <from> --to <to>`, run every `every_hours`."""

    source: str = Field(default="staging", alias="from")
    target: str = Field(default="prod", alias="to")
    soak_hours: float = Field(default=24, ge=0, le=24 * 30)
    every_hours: int = Field(default=6, ge=1, le=24)


class _RawDelivery(_Strict):
    account: str
    region: str
    connection_arn: str
    repository: str
    branch: str = "main"
    stages: tuple[_RawStage, ...] = Field(min_length=1)
    model_promotion: ModelPromotion | None = None

    @field_validator("account")
    @classmethod
    def _account(cls, value: str) -> str:
        if not _ACCOUNT.match(value):
            raise ValueError("must be a 12-digit AWS account id")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name")
        return value

    @field_validator("connection_arn")
    @classmethod
    def _connection(cls, value: str) -> str:
        if not _CONNECTION_ARN.match(value):
            raise ValueError(
                f"{value!r} is not a CodeConnections connection ARN "
                "(arn:aws:codeconnections:<region>:<account>:connection/<id>)"
            )
        return value

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not _REPOSITORY.match(value):
            raise ValueError(f"{value!r} is not an 'owner/name' repository")
        return value

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if not _BRANCH.match(value):
            raise ValueError(f"{value!r} is not a branch name")
        return value


class DeliveryStage(BaseModel):
    """One env the pipeline deploys, with the account and region it deploys to."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    env: EnvConfig
    manual_approval: bool

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def account(self) -> str:
        assert self.env.account is not None  # guaranteed by load_delivery_config
        return self.env.account

    @property
    def region(self) -> str:
        return self.env.region

    @property
    def smoke_role_name(self) -> str:
        """Fixed, because the pipeline account must name it in its own policy at synth time
        (the same reason the bootstrap's `cdk-hnb659fds-*` roles have fixed names)."""
        return f"driftline-{self.name}-smoke-test"

    @property
    def smoke_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.smoke_role_name}"

    @property
    def promotion_role_name(self) -> str:
        return f"driftline-{self.name}-model-promotion"

    @property
    def promotion_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.promotion_role_name}"


class DeliveryConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    account: str
    region: str
    connection_arn: str
    repository: str
    branch: str
    stages: tuple[DeliveryStage, ...]
    model_promotion: ModelPromotion | None = None
    git_sha: str = "unknown"

    def stage(self, env: str) -> DeliveryStage:
        return next(stage for stage in self.stages if stage.name == env)


def load_delivery_config(context: Mapping[str, Any], *, git_sha: str = "unknown") -> DeliveryConfig:
    """Parse `driftline.delivery` and each stage's env, or raise a one-line ConfigError."""
    block = context.get(CONTEXT_KEY)
    raw = block.get(DELIVERY_KEY) if isinstance(block, Mapping) else None
    key = f"{CONTEXT_KEY}.{DELIVERY_KEY}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"context key '{key}' is missing from cdk.json or not an object")
    try:
        parsed = _RawDelivery.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_one_line(error, key)) from None

    order = [stage.env for stage in parsed.stages]
    for index, name in enumerate(order):
        if name in order[:index]:
            raise ConfigError(f"invalid context value '{key}.stages.{index}.env': {name!r} twice")
    if order != sorted(order, key=ENV_NAMES.index):
        raise ConfigError(
            f"invalid context value '{key}.stages': stages must run in the order "
            f"{' → '.join(STAGE_ENVS)}, got {' → '.join(order)}"
        )

    stages = []
    for index, stage in enumerate(parsed.stages):
        env = load_env_config(context, stage.env, git_sha=git_sha)
        account = stage.account or env.account
        region = stage.region or env.region
        for field, value in (("account", account), ("region", region)):
            if not value:
                raise ConfigError(
                    f"invalid context value '{key}.stages.{index}.{field}': stage {stage.env!r} "
                    f"has no {field} (set it here or in '{CONTEXT_KEY}.envs.{stage.env}.{field}')"
                )
        stages.append(
            DeliveryStage(
                env=env.model_copy(update={"account": account, "region": region}),
                manual_approval=stage.env == "prod",
            )
        )
    promotion = parsed.model_promotion
    if promotion is not None:
        for field, name in (("from", promotion.source), ("to", promotion.target)):
            if name not in order:
                raise ConfigError(
                    f"invalid context value '{key}.model_promotion.{field}': {name!r} is not a "
                    f"stage ({', '.join(order)})"
                )
        if order.index(promotion.source) >= order.index(promotion.target):
            raise ConfigError(
                f"invalid context value '{key}.model_promotion': models move forward, "
                f"{promotion.source!r} → {promotion.target!r} does not"
            )
    return DeliveryConfig(
        model_promotion=promotion,
        account=parsed.account,
        region=parsed.region,
        connection_arn=parsed.connection_arn,
        repository=parsed.repository,
        branch=parsed.branch,
        stages=tuple(stages),
        git_sha=git_sha,
    )


def _one_line(error: ValidationError, key: str) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    where = f"{key}.{location}" if location else key
    return f"invalid context value '{where}': {message}{suffix}"
