"""The endpoint registry (Endpoints table) and the `live` alias moves it records.

Endpoints table, per model (model name = dataset name = endpoint name):
  pk=endpoint#<model>   sk=current                       what `live` serves now
  pk=endpoint#<model>   sk=deployment#<iso time>         one item per deploy, rollback or
                                                         rolled-back canary; never overwritten

Each record names the env, the model version, the Lambda version `live` points at, the Lambda
version (and model version) it replaced, when, by whom (an execution ARN or `cli:<user>`), the
action (`deploy` or `rollback`), how traffic moved (`codedeploy` or `direct`) and the outcome.
For a dedicated endpoint the Lambda alias is the source of truth for what serves and the
registry is its audited history. Both are written conditionally, so two deploys (or a deploy
and a rollback) racing cannot leave the last writer's alias next to the other's record: the
alias moves only from the Lambda version the writer read (`point_alias`: version check plus
the alias' RevisionId, which Lambda enforces), and `current` is replaced only if it still
names the Lambda version the writer read (`replace_current(..., field="lambda_version")`).
The loser gets `EndpointChanged` and changes nothing.

A model without a dedicated endpoint is served by the shared endpoint (`endpoint: "shared"`,
`shift: "registry"`): there the `current` item *is* the routing, so it is only ever written
conditionally on the version it replaces (two racing deploys cannot both win), and during a
canary it also carries `canary_model_version`, `canary_serving_key`, `canary_serving_sha256`
and `canary_weight` (see `functions/inference/routing.py`).

The deploy handler and the CLI (`driftline endpoints ...`) both use this module, each with its
own clients; the table comes from the stack outputs / the function's environment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from functions.shared.errors import TransientError, error_code, transient_aws_errors
from functions.shared.registry import ModelRegistry, RegistryError, _Table, to_attributes
from pipelines.metric_names import (
    MODEL_DIMENSION,
    MODEL_ERRORS,
    MODEL_VERSION_DIMENSION,
    NAMESPACE,
)

logger = Logger(child=True)

LIVE_ALIAS = "live"
SHARED_ENDPOINT = "shared"
CURRENT_SK = "current"
HISTORY_PREFIX = "deployment#"
MODEL_ENV = {
    "version": "DRIFTLINE_MODEL_VERSION",
    "key": "DRIFTLINE_MODEL_KEY",
    "serving_key": "DRIFTLINE_SERVING_KEY",
    "serving_sha256": "DRIFTLINE_SERVING_SHA256",
}
_MISSING_FUNCTION = frozenset({"ResourceNotFoundException"})


class EndpointChanged(RegistryError):
    """Another deployment or rollback changed the endpoint meanwhile; nothing was overwritten."""


def endpoint_pk(model: str) -> str:
    return f"endpoint#{model}"


def iso_now() -> str:
    """Microsecond UTC timestamps: sortable as text and distinct for back-to-back records."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class EndpointTarget:
    """One model's serving resources, as the Serving stack wires them into the deploy step."""

    model: str
    function_name: str
    alias: str = LIVE_ALIAS
    deployment_application: str | None = None
    deployment_group: str | None = None
    url: str = ""  # its Function URL, where it has one

    @property
    def has_deployment_group(self) -> bool:
        return bool(self.deployment_application and self.deployment_group)


def parse_endpoint_targets(text: str, *, source: str) -> dict[str, EndpointTarget]:
    """`{"<model>": {"function_name": ..., "alias": ..., ...}}` → targets; one-line errors."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{source} must be a JSON object of model name → endpoint")
    targets: dict[str, EndpointTarget] = {}
    for model, entry in document.items():
        if not isinstance(entry, dict) or not entry.get("function_name"):
            raise ValueError(f"{source}: endpoint '{model}' has no function_name")
        targets[str(model)] = EndpointTarget(
            model=str(model),
            function_name=str(entry["function_name"]),
            alias=str(entry.get("alias") or LIVE_ALIAS),
            deployment_application=entry.get("deployment_application") or None,
            deployment_group=entry.get("deployment_group") or None,
            url=str(entry.get("url", "")),
        )
    return targets


class EndpointRegistry(_Table):
    """Current state and full history of each model's endpoint."""

    def current(self, model: str) -> dict[str, Any] | None:
        return self._get({"pk": endpoint_pk(model), "sk": CURRENT_SK})

    def history(self, model: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """Deployments and rollbacks, newest first."""
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_attributes(
                {":pk": endpoint_pk(model), ":prefix": HISTORY_PREFIX}
            ),
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        found = []
        for item in items:
            found.append(item)
            if len(found) >= limit:
                break
        return found

    def list_current(self) -> list[dict[str, Any]]:
        items = self._scan(
            FilterExpression="sk = :sk",
            ExpressionAttributeValues=to_attributes({":sk": CURRENT_SK}),
        )
        return sorted(items, key=lambda item: str(item.get("model", "")))

    def record(self, entry: Mapping[str, Any], *, becomes_current: bool) -> dict[str, Any]:
        """Append `entry` to the history; with `becomes_current`, also make it `current`.

        History items are written with a not-exists condition and a fresh timestamp on a clash,
        so concurrent writers never overwrite each other's record. `becomes_current` writes
        `current` unconditionally (seeding a table); a deploy or a rollback replaces it with
        `replace_current` instead, conditionally on what it read.
        """
        model = str(entry["model"])
        at = str(entry.get("recorded_at") or iso_now())
        for _ in range(5):
            item = {**entry, "recorded_at": at}
            if self._put_new({"pk": endpoint_pk(model), "sk": f"{HISTORY_PREFIX}{at}", **item}):
                break
            moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
            at = (moment + timedelta(microseconds=1)).isoformat().replace("+00:00", "Z")
        else:
            raise RegistryError(f"endpoint {model}: could not append a history record at {at}")
        if becomes_current:
            self._call(
                "put_item",
                Item=to_attributes({"pk": endpoint_pk(model), "sk": CURRENT_SK, **item}),
            )
        return item

    def replace_current(
        self,
        model: str,
        item: Mapping[str, Any],
        *,
        expected_version: int | str | None,
        field: str = "model_version",
    ) -> bool:
        """Make `item` the endpoint's `current` item if its `field` is still `expected_version`
        (None: no such item or field yet). False when another writer won.

        The shared endpoint's routes compare `model_version`; a dedicated endpoint compares
        `lambda_version` (unique per published version, unlike the model version it serves).
        """
        condition, values = _current_is(expected_version, field)
        try:
            self._call(
                "put_item",
                Item=to_attributes({**item, "pk": endpoint_pk(model), "sk": CURRENT_SK}),
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": to_attributes(values)} if values else {}),
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_canary(
        self, model: str, canary: Mapping[str, Any], weight: float, *, expected_version: int
    ) -> bool:
        """Send `weight` of the shared endpoint's traffic for `model` to `canary`."""
        condition, values = _current_is(expected_version)
        try:
            self._call(
                "update_item",
                Key=to_attributes({"pk": endpoint_pk(model), "sk": CURRENT_SK}),
                UpdateExpression=(
                    "SET canary_model_version = :cv, canary_serving_key = :ck, "
                    "canary_serving_sha256 = :cd, canary_weight = :cw"
                ),
                ConditionExpression=condition,
                ExpressionAttributeValues=to_attributes(
                    {
                        **values,
                        ":cv": canary["model_version"],
                        ":ck": canary["serving_key"],
                        ":cd": canary["serving_sha256"],
                        ":cw": weight,
                    }
                ),
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def clear_canary(self, model: str) -> None:
        self._call(
            "update_item",
            Key=to_attributes({"pk": endpoint_pk(model), "sk": CURRENT_SK}),
            UpdateExpression=(
                "REMOVE canary_model_version, canary_serving_key, canary_serving_sha256, "
                "canary_weight"
            ),
            ConditionExpression="attribute_exists(pk)",
        )


def champion(
    models: ModelRegistry, endpoints: EndpointRegistry, model: str
) -> dict[str, Any] | None:
    """The champion: the registry record of the version `model`'s endpoint serves now.

    Read from the Endpoints table's `current` item, which only a deploy that went live or a
    rollback writes, for dedicated and shared endpoints alike: an Approved version whose
    deploy failed, was refused or was rolled back (by CodeDeploy, a canary or `driftline
    endpoints rollback`) never becomes the champion, and new models are gated against the one
    that answers requests. None while nothing serves: a first version is gated on thresholds.
    """
    current = endpoints.current(model)
    version = current.get("model_version") if current is not None else None
    if version is None:
        return None
    return models.get_version(model, int(version))


def _current_is(
    version: int | str | None, field: str = "model_version"
) -> tuple[str, dict[str, Any]]:
    if field not in ("model_version", "lambda_version"):
        raise ValueError(
            f"current items are compared on model_version or lambda_version, not {field}"
        )
    if version is None:
        return f"attribute_not_exists(pk) OR attribute_not_exists({field})", {}
    return f"{field} = :expected", {":expected": version}


# --- the Lambda side: what a version serves, where the alias points -----------------------


def version_model(lambda_client: Any, function_name: str, version: str) -> dict[str, Any]:
    """The model a published Lambda version serves (from its frozen environment)."""
    try:
        with transient_aws_errors(f"reading {function_name}:{version}"):
            config = lambda_client.get_function_configuration(
                FunctionName=function_name, Qualifier=version
            )
    except ClientError as error:
        if error_code(error) in _MISSING_FUNCTION:
            raise RegistryError(f"function {function_name} has no version {version!r}") from None
        raise
    variables = (config.get("Environment") or {}).get("Variables") or {}
    text = variables.get(MODEL_ENV["version"], "")
    return {
        "model_version": int(text) if str(text).isdigit() else None,
        "model_key": variables.get(MODEL_ENV["key"]) or None,
    }


def alias_version(lambda_client: Any, target: EndpointTarget) -> str:
    """The Lambda version the alias sends all traffic to (weights are mid-deploy only)."""
    return alias_state(lambda_client, target)[0]


def alias_state(lambda_client: Any, target: EndpointTarget) -> tuple[str, str | None]:
    """(the Lambda version the alias points at, the alias' RevisionId)."""
    try:
        with transient_aws_errors(f"reading alias {target.function_name}:{target.alias}"):
            alias = lambda_client.get_alias(FunctionName=target.function_name, Name=target.alias)
    except ClientError as error:
        if error_code(error) in _MISSING_FUNCTION:
            raise RegistryError(
                f"endpoint {target.model}: function {target.function_name} has no alias "
                f"'{target.alias}'"
            ) from None
        raise
    return str(alias["FunctionVersion"]), alias.get("RevisionId")


def point_alias(
    lambda_client: Any, target: EndpointTarget, version: str, *, expected_version: str
) -> None:
    """Send all of the alias' traffic to `version` (clearing any canary weights), only if it
    still points at `expected_version`, the version the caller read before deciding.

    The update carries the alias' RevisionId, so Lambda refuses it (PreconditionFailed) when
    anything moved the alias between this read and the update; either way the caller gets
    `EndpointChanged` and the alias keeps what the other writer put there.
    """
    live, revision = alias_state(lambda_client, target)
    moved = (
        f"endpoint {target.model}: live moved from Lambda version {expected_version} to "
        f"{{}} meanwhile (another deployment or rollback); it was left there"
    )
    if live != expected_version:
        raise EndpointChanged(moved.format(live))
    arguments: dict[str, Any] = {
        "FunctionName": target.function_name,
        "Name": target.alias,
        "FunctionVersion": version,
        "RoutingConfig": {"AdditionalVersionWeights": {}},
    }
    if revision:
        arguments["RevisionId"] = revision
    try:
        with transient_aws_errors(f"moving alias {target.function_name}:{target.alias}"):
            lambda_client.update_alias(**arguments)
    except ClientError as error:
        if error_code(error) == "PreconditionFailedException":
            raise EndpointChanged(moved.format("another version")) from None
        raise


def rollback(
    lambda_client: Any,
    registry: EndpointRegistry,
    target: EndpointTarget,
    *,
    env: str,
    by: str,
    to_version: str | None = None,
) -> dict[str, Any]:
    """Point `live` back at the previous Lambda version (or `to_version`) and record it.

    The previous version is the one the current record replaced. Rolling back to a version
    that serves no model (the stack's bootstrap version) is refused: that is an outage, not a
    rollback.
    """
    live = alias_version(lambda_client, target)
    current = registry.current(target.model)
    recorded = current.get("lambda_version") if current is not None else None
    wanted = to_version
    if wanted is None:
        wanted = str(current.get("previous_version") or "") if current else ""
        if not wanted:
            raise RegistryError(
                f"endpoint {target.model} has no previous version to roll back to "
                "(pass --to-version)"
            )
    if not wanted.isdigit():
        raise RegistryError(f"'{wanted}' is not a published Lambda version number")
    if wanted == live:
        raise RegistryError(f"endpoint {target.model} already serves Lambda version {live}")
    serving = version_model(lambda_client, target.function_name, wanted)
    if serving["model_version"] is None:
        raise RegistryError(
            f"Lambda version {wanted} of endpoint {target.model} serves no model; "
            "pick a version from `driftline endpoints history`"
        )
    replaced = version_model(lambda_client, target.function_name, live)
    point_alias(lambda_client, target, wanted, expected_version=live)
    entry = {
        "env": env,
        "model": target.model,
        "action": "rollback",
        "status": "Succeeded",
        "shift": "direct",
        "model_version": serving["model_version"],
        "model_key": serving["model_key"],
        "lambda_version": wanted,
        "previous_version": live,
        "previous_model_version": replaced["model_version"],
        "function_name": target.function_name,
        "alias": target.alias,
        "deployed_at": iso_now(),
        "deployed_by": by,
        "recorded_at": iso_now(),
    }
    if not registry.replace_current(
        target.model, entry, expected_version=recorded, field="lambda_version"
    ):
        registry.record(entry | {"status": "Conflict"}, becomes_current=False)
        raise EndpointChanged(
            f"endpoint {target.model}: live now points at Lambda version {wanted}, but another "
            "deployment or rollback changed its record meanwhile; see `driftline endpoints show`"
        )
    return registry.record(entry, becomes_current=False)


def rollback_shared(registry: EndpointRegistry, model: str, *, env: str, by: str) -> dict[str, Any]:
    """Route a shared-endpoint model back to the version its current route replaced."""
    current = registry.current(model)
    if current is None or current.get("endpoint") != SHARED_ENDPOINT:
        raise RegistryError(f"model {model} is not served by the shared endpoint")
    previous = current.get("previous_model_version")
    key, digest = current.get("previous_serving_key"), current.get("previous_serving_sha256")
    if previous is None or not key or not digest:
        raise RegistryError(f"endpoint {model} has no previous version to roll back to")
    entry = {
        "env": env,
        "model": model,
        "endpoint": SHARED_ENDPOINT,
        "action": "rollback",
        "status": "Succeeded",
        "shift": "registry",
        "model_version": int(previous),
        "serving_key": key,
        "serving_sha256": digest,
        "previous_model_version": current.get("model_version"),
        "previous_serving_key": current.get("serving_key"),
        "previous_serving_sha256": current.get("serving_sha256"),
        "function_name": current.get("function_name"),
        "deployed_at": iso_now(),
        "deployed_by": by,
    }
    if not registry.replace_current(model, entry, expected_version=int(current["model_version"])):
        raise RegistryError(f"endpoint {model} changed while rolling back; nothing was changed")
    return registry.record(entry, becomes_current=False)


# --------------------------------------------------------------------------- deploy step
# The deploy step's Lambda, CodeDeploy and CloudWatch calls, beside `point_alias`.

# CodeDeploy answers these when the application or group is not there (or the API is not):
# with AllAtOnce nothing is lost by moving the alias directly instead.
CODEDEPLOY_UNAVAILABLE = frozenset(
    {
        "ApplicationDoesNotExistException",
        "DeploymentGroupDoesNotExistException",
        "UnknownOperationException",
        "InvalidAction",
        "NotImplemented",
        "501",
        "404",
    }
)
FINISHED = frozenset({"Succeeded", "Failed", "Stopped"})
# The step's own status when its time ran out before CodeDeploy finished.
UNCONFIRMED = "Unconfirmed"
POLL_SECONDS = 10.0


def publish_model_version(
    lambda_client: Any, target: EndpointTarget, model_env: Mapping[str, str], *, description: str
) -> str:
    """Put the model into $LATEST's environment and publish exactly that configuration."""
    name = target.function_name
    with transient_aws_errors(f"updating {name}"):
        config = lambda_client.get_function_configuration(FunctionName=name)
        variables = dict((config.get("Environment") or {}).get("Variables") or {})
        revision = config.get("RevisionId")
        if any(variables.get(key) != value for key, value in model_env.items()):
            variables.update(model_env)
            updated = lambda_client.update_function_configuration(
                FunctionName=name, Environment={"Variables": variables}
            )
            revision = updated.get("RevisionId")
        lambda_client.get_waiter("function_updated_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 150}
        )
        # The waiter's read gives the revision after the update settled.
        revision = lambda_client.get_function_configuration(FunctionName=name).get(
            "RevisionId", revision
        )
    arguments = {"FunctionName": name, "Description": description}
    if revision:
        arguments["RevisionId"] = revision
    try:
        with transient_aws_errors(f"publishing {name}"):
            published = lambda_client.publish_version(**arguments)
    except ClientError as error:
        if error_code(error) in ("PreconditionFailedException", "ResourceConflictException"):
            raise TransientError(
                f"publishing {name}: its configuration changed meanwhile (retryable)"
            ) from error
        raise
    version = str(published["Version"])
    with transient_aws_errors(f"waiting for {name}:{version}"):
        lambda_client.get_waiter("published_version_active").wait(
            FunctionName=name, Qualifier=version, WaiterConfig={"Delay": 2, "MaxAttempts": 150}
        )
    return version


class CodeDeployUnavailable(Exception):
    """No CodeDeploy application or group for the endpoint (or no CodeDeploy at all)."""


def start_alias_deployment(
    codedeploy: Any, target: EndpointTarget, previous: str, new_version: str
) -> str:
    """Start a CodeDeploy deployment moving the alias from `previous` to `new_version`."""
    if not target.has_deployment_group:
        raise CodeDeployUnavailable(f"endpoint {target.model} has no deployment group")
    appspec = {
        "version": 0.0,
        "Resources": [
            {
                target.model.replace("-", "_").replace(".", "_"): {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": target.function_name,
                        "Alias": target.alias,
                        "CurrentVersion": previous,
                        "TargetVersion": new_version,
                    },
                }
            }
        ],
    }
    try:
        with transient_aws_errors(f"starting a CodeDeploy deployment for {target.model}"):
            response = codedeploy.create_deployment(
                applicationName=target.deployment_application,
                deploymentGroupName=target.deployment_group,
                revision={
                    "revisionType": "AppSpecContent",
                    "appSpecContent": {"content": json.dumps(appspec)},
                },
                description=f"{target.model}: Lambda version {previous} -> {new_version}",
            )
    except ClientError as error:
        if error_code(error) in CODEDEPLOY_UNAVAILABLE:
            raise CodeDeployUnavailable(f"{error_code(error)}") from None
        raise
    except BotoCoreError as error:  # no endpoint for the service at all
        raise CodeDeployUnavailable(type(error).__name__) from None
    return str(response["deploymentId"])


def wait_for_deployment(
    codedeploy: Any, deployment_id: str, deadline: float, sleep: Callable[[float], None]
) -> str:
    """The deployment's final status, or UNCONFIRMED when it outlives `deadline`."""
    while True:
        with transient_aws_errors(f"reading CodeDeploy deployment {deployment_id}"):
            info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        status = str(info.get("status"))
        if status in FINISHED:
            if status != "Succeeded":
                logger.warning(
                    "deployment did not succeed",
                    extra={"status": status, "error": info.get("errorInformation")},
                )
            return status
        if time.monotonic() + POLL_SECONDS > deadline:
            logger.warning("deployment outlives this step", extra={"status": status})
            return UNCONFIRMED
        sleep(POLL_SECONDS)


def model_error_count(cloudwatch: Any, model: str, version: int, since: datetime) -> float:
    """The version's ModelErrors since `since`: what a shared-endpoint canary is judged on."""
    with transient_aws_errors(f"reading ModelErrors of {model} v{version}"):
        response = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=MODEL_ERRORS,
            Dimensions=[
                {"Name": MODEL_DIMENSION, "Value": model},
                {"Name": MODEL_VERSION_DIMENSION, "Value": str(version)},
            ],
            StartTime=since - timedelta(minutes=1),
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=60,
            Statistics=["Sum"],
        )
    return float(sum(point.get("Sum", 0.0) for point in response.get("Datapoints", [])))
