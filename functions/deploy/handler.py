"""Deploy a registered model version to its endpoint: the pipeline's `Deploy` step.

Input is the execution state (`$.registered.model`/`.version`, `$.run.execution_arn`) or, from
the CLI, `{"registered": {"model", "version"}, "requested_by": "cli:<user>"}`. Steps:

1. refuse anything but an Approved version (`DeploymentRefused`, which the state machine
   treats as "registered, awaiting approval" rather than a failed run);
2. load the archive once through skops' allowlist and store the serving bundle
   (`pipelines/serving_bundle.py`);
3. write the model version, archive key and bundle key + digest into the inference function's
   environment, wait for the update, and publish a version (guarded by the RevisionId, so a
   concurrent change cannot slip into it);
4. move the `live` alias: through CodeDeploy with the environment's deployment config (canary
   or linear in staging/prod, rolled back automatically on the endpoint's error and latency
   alarms), or directly when `DRIFTLINE_ALIAS_SHIFT=direct` (the local twin: moto has no
   CodeDeploy resources in CloudFormation) or when the strategy is AllAtOnce and CodeDeploy is
   unavailable;
5. record the deployment in the Endpoints table (current + history).

A CodeDeploy deployment that fails or is stopped (its alarms fired) leaves `live` where it was;
that outcome is recorded as `RolledBack` and raised as `DeploymentFailed`. Two deploys (or a
deploy and a rollback) racing on one endpoint cannot both win: a direct move of `live` is
conditional on the Lambda version read at the start (and the alias' RevisionId), CodeDeploy
checks the alias' current version itself, and `current` is replaced only if it still names the
Lambda version read at the start. The loser records `Superseded` (or `Conflict`, when only the
record had changed) in the history and fails with `DeploymentFailed`; nothing is overwritten.

A model with no dedicated endpoint (any model uploaded with its config, none shipped in
`models/`) goes to the shared endpoint instead, with no stack change: steps 1-2 as above, then
the model's Endpoints-table route is replaced (conditionally on the version it replaces). Under
a canary or linear strategy the new version first takes a share of that model's traffic for
each interval of the strategy, and the step watches the version's `ModelErrors` metric: any
error removes the canary (`RolledBack`, `DeploymentFailed`), none promotes it. The first
version of a model has nothing to protect and goes live at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, field_validator

from functions.shared import storage
from functions.shared.clients import client
from functions.shared.endpoints import (
    MODEL_ENV,
    POLL_SECONDS,
    SHARED_ENDPOINT,
    UNCONFIRMED,
    CodeDeployUnavailable,
    EndpointChanged,
    EndpointRegistry,
    EndpointTarget,
    alias_version,
    iso_now,
    model_error_count,
    parse_endpoint_targets,
    point_alias,
    publish_model_version,
    start_alias_deployment,
    version_model,
    wait_for_deployment,
)
from functions.shared.registry import ModelRegistry
from functions.shared.settings import FunctionSettings, load_settings

logger = Logger()

Strategy = Literal["AllAtOnce", "Canary10Percent5Minutes", "Linear10PercentEvery1Minute"]
CODEDEPLOY_CONFIGS: Mapping[str, str] = {
    "AllAtOnce": "CodeDeployDefault.LambdaAllAtOnce",
    "Canary10Percent5Minutes": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
    "Linear10PercentEvery1Minute": "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
}
# The shared endpoint's canary, per strategy: (share of the model's traffic, seconds watched).
SHARED_CANARY_STEPS: Mapping[str, tuple[tuple[float, int], ...]] = {
    "AllAtOnce": (),
    "Canary10Percent5Minutes": ((0.1, 300),),
    "Linear10PercentEvery1Minute": tuple((step / 10, 60) for step in range(1, 10)),
}
# Leave time to record the outcome before the function's own timeout.
SAFETY_MARGIN_MS = 30_000


class DeploymentRefused(RuntimeError):
    """This version may not be deployed (not Approved, unknown, or no endpoint for it)."""


class DeploymentFailed(RuntimeError):
    """The alias did not move to the new version (CodeDeploy failed, stopped or rolled back)."""


class DeployInputError(ValueError):
    """The event does not name a model version."""


class DeploySettings(FunctionSettings):
    artifacts_bucket: str = Field(min_length=3)
    models_table: str = Field(min_length=1)
    endpoints_table: str = Field(min_length=1)
    # DRIFTLINE_ENDPOINTS: JSON model -> its dedicated endpoint (see parse_endpoint_targets).
    endpoints: dict[str, EndpointTarget] = Field(default_factory=dict)
    shared_endpoint: str | None = None
    deployment_strategy: Strategy
    alias_shift: Literal["codedeploy", "direct"] = "codedeploy"

    @field_validator("endpoints", mode="before")
    @classmethod
    def _endpoint_targets(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_endpoint_targets(value, source="the value")
        return value

    @field_validator("alias_shift")
    @classmethod
    def _direct_only_all_at_once(cls, value: str, info: Any) -> str:
        strategy = info.data.get("deployment_strategy")
        if value == "direct" and strategy not in (None, "AllAtOnce"):
            raise ValueError(
                f"direct alias shifts skip the {strategy} canary; use them with AllAtOnce only"
            )
        return value


@cache
def get_settings() -> DeploySettings:
    return load_settings(DeploySettings)


@dataclass(frozen=True)
class DeployRequest:
    model: str
    version: int
    by: str

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> DeployRequest:
        registered = event.get("registered")
        if not isinstance(registered, Mapping):
            raise DeployInputError("state field $.registered is missing")
        model, version = registered.get("model"), registered.get("version")
        if not isinstance(model, str) or not model:
            raise DeployInputError("state field $.registered.model is missing")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise DeployInputError(
                f"state field $.registered.version is not a version: {version!r}"
            )
        run = event.get("run")
        by = (
            (run.get("execution_arn") if isinstance(run, Mapping) else None)
            or event.get("requested_by")
            or "unknown"
        )
        return cls(model=model, version=version, by=str(by))


@dataclass(frozen=True)
class Clients:
    lambda_: Any
    codedeploy: Any
    dynamodb: Any
    cloudwatch: Any = None

    @classmethod
    def default(cls) -> Clients:
        return cls(client("lambda"), client("codedeploy"), client("dynamodb"), client("cloudwatch"))


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = DeployRequest.from_event(event)
    logger.append_keys(model=request.model, model_version=request.version)
    deadline = time.monotonic() + (context.get_remaining_time_in_millis() - SAFETY_MARGIN_MS) / 1000
    return deploy(request, get_settings(), Clients.default(), deadline=deadline)


def deploy(
    request: DeployRequest,
    settings: DeploySettings,
    clients: Clients,
    *,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    target = settings.endpoints.get(request.model)
    if target is None:
        if settings.shared_endpoint is None:
            known = ", ".join(sorted(settings.endpoints)) or "none"
            raise DeploymentRefused(
                f"model {request.model} has no endpoint in env {settings.env} "
                f"(endpoints: {known}) and the env has no shared endpoint"
            )
        return deploy_shared(request, settings, clients, deadline=deadline, sleep=sleep)
    record = _approved_version(settings, clients, request)
    model_key = str(record["model_key"])
    serving_key, digest = _store_bundle(settings.artifacts_bucket, request, model_key)

    registry = EndpointRegistry(clients.dynamodb, settings.endpoints_table)
    recorded = registry.current(request.model) or {}
    previous = alias_version(clients.lambda_, target)
    previous_model = version_model(clients.lambda_, target.function_name, previous)
    new_version = publish_model_version(
        clients.lambda_,
        target,
        {
            MODEL_ENV["version"]: str(request.version),
            MODEL_ENV["key"]: model_key,
            MODEL_ENV["serving_key"]: serving_key,
            MODEL_ENV["serving_sha256"]: digest,
        },
        description=f"{request.model} model v{request.version}",
    )
    result: dict[str, Any] = {
        "model": request.model,
        "model_version": request.version,
        "lambda_version": new_version,
        "previous_version": previous,
        "function_name": target.function_name,
        "alias": target.alias,
        "strategy": settings.deployment_strategy,
    }
    if new_version == previous:
        logger.info("already live", extra={"lambda_version": new_version})
        return result | {"status": "AlreadyLive", "shift": "none", "deployment_id": None}

    try:
        shift, deployment_id, status = _shift(
            settings, clients, target, previous, new_version, deadline, sleep
        )
        conflict = None
    except EndpointChanged as error:
        shift, deployment_id, status, conflict = "direct", None, "Superseded", str(error)
    recorded_status = {
        "Succeeded": "Succeeded",
        UNCONFIRMED: UNCONFIRMED,
        "Superseded": "Superseded",
    }.get(status, "RolledBack")
    entry = {
        "env": settings.env,
        "model": request.model,
        "action": "deploy",
        "status": recorded_status,
        "shift": shift,
        "strategy": settings.deployment_strategy,
        "deployment_id": deployment_id,
        "model_version": request.version,
        "model_key": model_key,
        "serving_key": serving_key,
        "lambda_version": new_version,
        "previous_version": previous,
        "previous_model_version": previous_model["model_version"],
        "function_name": target.function_name,
        "alias": target.alias,
        "deployed_at": iso_now(),
        "deployed_by": request.by,
        "recorded_at": iso_now(),
    }
    if conflict is not None:
        registry.record(entry | {"reason": conflict}, becomes_current=False)
        raise DeploymentFailed(
            f"{request.model} model v{request.version} was not deployed: {conflict}"
        )
    if status == "Succeeded" and not registry.replace_current(
        request.model,
        entry,
        expected_version=recorded.get("lambda_version"),
        field="lambda_version",
    ):
        registry.record(entry | {"status": "Conflict"}, becomes_current=False)
        raise DeploymentFailed(
            f"live of {request.model} now points at Lambda version {new_version} (model "
            f"v{request.version}), but another deployment or rollback changed the endpoint's "
            "record meanwhile; nothing was overwritten: see `driftline endpoints show`"
        )
    registry.record(entry, becomes_current=False)
    if status == UNCONFIRMED:
        raise DeploymentFailed(
            f"CodeDeploy deployment {deployment_id} of {request.model} model v{request.version} "
            "was still running when this step had to end; it continues in CodeDeploy, and "
            "`driftline endpoints show` tells where live points"
        )
    if status != "Succeeded":
        raise DeploymentFailed(
            f"CodeDeploy deployment {deployment_id} of {request.model} model v{request.version} "
            f"(Lambda version {new_version}) ended {status}; live stays on version {previous}"
        )
    logger.info("deployed", extra={"lambda_version": new_version, "shift": shift})
    return result | {"status": "Succeeded", "shift": shift, "deployment_id": deployment_id}


def deploy_shared(
    request: DeployRequest,
    settings: DeploySettings,
    clients: Clients,
    *,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Route `request.model`'s traffic on the shared endpoint to the new version."""
    assert settings.shared_endpoint is not None
    record = _approved_version(settings, clients, request)
    model_key = str(record["model_key"])
    serving_key, digest = _store_bundle(settings.artifacts_bucket, request, model_key)
    registry = EndpointRegistry(clients.dynamodb, settings.endpoints_table)
    current = registry.current(request.model) or {}
    previous = current.get("model_version") if current.get("endpoint") == SHARED_ENDPOINT else None
    previous_version = int(previous) if previous is not None else None
    result: dict[str, Any] = {
        "model": request.model,
        "model_version": request.version,
        "endpoint": SHARED_ENDPOINT,
        "function_name": settings.shared_endpoint,
        "previous_model_version": previous_version,
        "strategy": settings.deployment_strategy,
        "deployment_id": None,
    }
    if previous_version == request.version and current.get("serving_sha256") == digest:
        return result | {"status": "AlreadyLive", "shift": "none"}
    new = {"model_version": request.version, "serving_key": serving_key, "serving_sha256": digest}
    entry = {
        "env": settings.env,
        "model": request.model,
        "endpoint": SHARED_ENDPOINT,
        "action": "deploy",
        "shift": "registry",
        "strategy": settings.deployment_strategy,
        "model_key": model_key,
        **new,
        "previous_model_version": previous_version,
        "previous_serving_key": current.get("serving_key") if previous_version else None,
        "previous_serving_sha256": current.get("serving_sha256") if previous_version else None,
        "function_name": settings.shared_endpoint,
        "deployed_at": iso_now(),
        "deployed_by": request.by,
    }
    steps = SHARED_CANARY_STEPS[settings.deployment_strategy] if previous_version else ()
    for weight, seconds in steps:
        failure = _watch_canary(
            request,
            settings,
            clients,
            registry,
            new,
            weight,
            seconds,
            previous_version,
            deadline,
            sleep,
        )
        if failure is not None:
            registry.clear_canary(request.model)
            registry.record(
                entry | {"status": "RolledBack", "reason": failure}, becomes_current=False
            )
            raise DeploymentFailed(
                f"canary of {request.model} model v{request.version} on the shared endpoint "
                f"rolled back: {failure}; v{previous_version} keeps serving"
            )
    if not registry.replace_current(
        request.model, entry | {"status": "Succeeded"}, expected_version=previous_version
    ):
        raise DeploymentFailed(
            f"{request.model}: another deployment changed the shared endpoint's route while "
            f"v{request.version} was deploying; nothing was overwritten (re-run the deploy)"
        )
    registry.record(entry | {"status": "Succeeded"}, becomes_current=False)
    logger.info("deployed to the shared endpoint", extra={"previous": previous_version})
    return result | {"status": "Succeeded", "shift": "registry"}


def _watch_canary(
    request: DeployRequest,
    settings: DeploySettings,
    clients: Clients,
    registry: EndpointRegistry,
    new: Mapping[str, Any],
    weight: float,
    seconds: int,
    previous_version: int | None,
    deadline: float,
    sleep: Callable[[float], None],
) -> str | None:
    """Serve `weight` of the traffic from the new version for `seconds`; why it failed, or None."""
    assert previous_version is not None
    if time.monotonic() + seconds > deadline:
        return f"the {settings.deployment_strategy} canary does not fit in this step's time"
    if not registry.set_canary(request.model, new, weight, expected_version=previous_version):
        return "another deployment changed the route meanwhile"
    started = datetime.now(UTC)
    waited = 0.0
    while waited < seconds:
        pause = min(POLL_SECONDS, seconds - waited)
        sleep(pause)
        waited += pause
        errors = model_error_count(clients.cloudwatch, request.model, request.version, started)
        if errors > 0:
            return f"{errors:g} ModelErrors at {weight:.0%} of the traffic"
    return None


def _approved_version(
    settings: DeploySettings, clients: Clients, request: DeployRequest
) -> dict[str, Any]:
    """The registry's record of the version; anything but Approved is refused."""
    models = ModelRegistry(clients.dynamodb, settings.models_table)
    record = models.get_version(request.model, request.version)
    if record is None:
        raise DeploymentRefused(f"model {request.model} has no version {request.version}")
    status = record.get("status")
    if status != "Approved":
        hint = (
            f"; approve it with `driftline models approve {request.model} "
            f"--version {request.version}`"
            if status == "PendingApproval"
            else ""
        )
        raise DeploymentRefused(
            f"model {request.model} version {request.version} is {status}, not Approved{hint}"
        )
    return record


def _store_bundle(bucket: str, request: DeployRequest, model_key: str) -> tuple[str, str]:
    from pipelines.keys import bundle_key
    from pipelines.serving_bundle import build_bundle

    data, digest = build_bundle(storage.get_bytes(bucket, model_key))
    key = bundle_key(request.model, request.version, digest)
    storage.put_bytes(bucket, key, data, "application/octet-stream")
    return key, digest


def _shift(
    settings: DeploySettings,
    clients: Clients,
    target: EndpointTarget,
    previous: str,
    new_version: str,
    deadline: float,
    sleep: Callable[[float], None],
) -> tuple[str, str | None, str]:
    """(how, CodeDeploy deployment id, final status) of moving the alias to `new_version`."""
    all_at_once = settings.deployment_strategy == "AllAtOnce"
    if settings.alias_shift == "direct":
        point_alias(clients.lambda_, target, new_version, expected_version=previous)
        return "direct", None, "Succeeded"
    try:
        deployment_id = start_alias_deployment(clients.codedeploy, target, previous, new_version)
    except CodeDeployUnavailable as unavailable:
        if not all_at_once:
            raise DeploymentFailed(
                f"{settings.deployment_strategy} needs CodeDeploy, which is unavailable for "
                f"endpoint {target.model}: {unavailable}"
            ) from None
        logger.warning(
            "CodeDeploy unavailable; moving the alias directly", extra={"why": str(unavailable)}
        )
        point_alias(clients.lambda_, target, new_version, expected_version=previous)
        return "direct", None, "Succeeded"
    status = wait_for_deployment(clients.codedeploy, deployment_id, deadline, sleep)
    return "codedeploy", deployment_id, status
