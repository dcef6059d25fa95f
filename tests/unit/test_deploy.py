"""The deploy step and the endpoint registry, against moto's Lambda, S3 and DynamoDB.

The inference function is a real moto function with a bootstrap version behind `live`, as the
Serving stack creates it; deployments publish real versions and move the real alias. CodeDeploy
runs canaries on AWS only, so its path is driven by a scripted client that answers the way
CodeDeploy does (and by moto's CodeDeploy, which has no deployment group: "unavailable").
"""

from __future__ import annotations

import io
import json
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

import pandas as pd
import pytest
import sklearn.ensemble  # noqa: F401  (loads OpenMP now, so threadpool_limits can cap it)
from botocore.exceptions import ClientError
from threadpoolctl import threadpool_limits

from functions.deploy import handler as deploy_step
from functions.deploy.handler import (
    Clients,
    DeployInputError,
    DeploymentFailed,
    DeploymentRefused,
    DeployRequest,
    DeploySettings,
)
from functions.shared import clients, storage
from functions.shared.endpoints import (
    EndpointChanged,
    EndpointRegistry,
    EndpointTarget,
    alias_state,
    alias_version,
    parse_endpoint_targets,
    point_alias,
    rollback,
)
from functions.shared.registry import ModelRegistry, RegistryError
from functions.shared.settings import SettingsError, load_settings
from pipelines import serving_bundle as bundle_module
from pipelines.model_config import parse_model_config
from pipelines.model_io import dump_model, metadata_for_run
from pipelines.serving_bundle import build_bundle, load_bundle
from pipelines.training import run_training
from tests.unit.conftest import buckets, moto_account, registry_tables

pytestmark = pytest.mark.unit

ARTIFACTS, MODELS, ENDPOINTS = "driftline-artifacts", "driftline-models", "driftline-endpoints"
MODEL = "breast_cancer"
FUNCTION = "driftline-local-inference-breast-cancer"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:Training:breast_cancer-v1"


@pytest.fixture(scope="module")
def archive() -> bytes:
    from sklearn.datasets import load_breast_cancer

    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    frame.columns = [name.lower().replace(" ", "_") for name in frame.columns]
    contract = {name: ("int" if name == "target" else "float") for name in frame.columns}
    config = parse_model_config(
        "task: classification\ntarget: target\nestimator: {params: {max_iter: 20}}\n",
        source="models/breast_cancer.yaml",
    )
    with threadpool_limits(limits=1):
        run = run_training(frame, config, contract)
    return dump_model(run.model, metadata_for_run(run, created_at="2026-11-29T21:00:00.000Z"))


def _code_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as code:
        code.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


@dataclass
class World:
    settings: DeploySettings
    clients: Clients
    lambda_: Any
    target: EndpointTarget

    def registry(self) -> EndpointRegistry:
        return EndpointRegistry(self.clients.dynamodb, ENDPOINTS)

    def live(self) -> str:
        return alias_version(self.lambda_, self.target)

    def version_env(self, version: str) -> dict[str, str]:
        config = self.lambda_.get_function_configuration(FunctionName=FUNCTION, Qualifier=version)
        variables: dict[str, str] = config["Environment"]["Variables"]
        return variables

    def deploy(self, version: int, **options: Any) -> dict[str, Any]:
        settings = options.pop("settings", self.settings)
        request = DeployRequest(model=options.pop("model", MODEL), version=version, by=EXECUTION)
        return deploy_step.deploy(
            request,
            settings,
            options.pop("clients", self.clients),
            deadline=options.pop("deadline", 1e12),
            sleep=lambda _: None,
        )


def endpoints_json(**extra: str) -> str:
    return json.dumps({MODEL: {"function_name": FUNCTION, "alias": "live", **extra}})


@dataclass(frozen=True)
class Account:
    role: str


@pytest.fixture(scope="module")
def account(archive: bytes) -> Iterator[Account]:
    """One emulated account per module (its clients are the slow part): the artifacts bucket,
    the Models table with versions 1-4, and a role for functions. Each test then gets its own
    inference function and Endpoints table."""
    with (
        pytest.MonkeyPatch.context() as patch,
        moto_account(patch, {"POWERTOOLS_SERVICE_NAME": "driftline"}),
        threadpool_limits(limits=1),
    ):
        buckets(ARTIFACTS, versioned=False)
        registry_tables(MODELS)
        dynamodb = clients.client("dynamodb")
        models = ModelRegistry(dynamodb, MODELS)
        for version, status in enumerate(
            ("Approved", "Approved", "PendingApproval", "Rejected"), start=1
        ):
            key = f"models/{MODEL}/v{version}/model.zip"
            storage.put_bytes(ARTIFACTS, key, archive, "application/zip")
            models.put_version(
                {"model": MODEL, "version": version, "status": status, "model_key": key}
            )
        role = clients.client("iam").create_role(
            RoleName="inference",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        yield Account(role=role)


@pytest.fixture
def world(account: Account, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    # The bundle of one archive is the same every time: build it once per module, not per deploy.
    monkeypatch.setattr(bundle_module, "build_bundle", _cached_bundle)
    lambda_ = clients.client("lambda")
    lambda_.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.11",
        Role=account.role,
        Handler="handler.handler",
        Code={"ZipFile": _code_zip()},
        Environment={"Variables": {"DRIFTLINE_MODEL_NAME": MODEL, "DRIFTLINE_ENV": "local"}},
    )
    bootstrap = lambda_.publish_version(FunctionName=FUNCTION)["Version"]
    lambda_.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=bootstrap)
    dynamodb = clients.client("dynamodb")
    registry_tables(ENDPOINTS)
    settings = load_settings(
        DeploySettings,
        {
            "DRIFTLINE_ENV": "local",
            "DRIFTLINE_ARTIFACTS_BUCKET": ARTIFACTS,
            "DRIFTLINE_MODELS_TABLE": MODELS,
            "DRIFTLINE_ENDPOINTS_TABLE": ENDPOINTS,
            "DRIFTLINE_ENDPOINTS": endpoints_json(),
            "DRIFTLINE_DEPLOYMENT_STRATEGY": "AllAtOnce",
            "DRIFTLINE_ALIAS_SHIFT": "direct",
        },
    )
    yield World(settings, Clients.default(), lambda_, settings.endpoints[MODEL])
    lambda_.delete_function(FunctionName=FUNCTION)
    dynamodb.delete_table(TableName=ENDPOINTS)


@cache
def _cached_bundle(archive: bytes) -> tuple[bytes, str]:
    return build_bundle(archive)


def codedeploy_settings(world: World, strategy: str = "Canary10Percent5Minutes") -> DeploySettings:
    return world.settings.model_copy(
        update={
            "deployment_strategy": strategy,
            "alias_shift": "codedeploy",
            "endpoints": parse_endpoint_targets(
                endpoints_json(deployment_application="Serving", deployment_group="BreastCancer"),
                source="test",
            ),
        }
    )


class ScriptedCodeDeploy:
    """Answers create/get like CodeDeploy, walking through the given statuses."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.created: list[dict[str, Any]] = []

    def create_deployment(self, **arguments: Any) -> dict[str, str]:
        self.created.append(arguments)
        return {"deploymentId": "d-ABCDEF123"}

    def get_deployment(self, deploymentId: str) -> dict[str, Any]:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"deploymentInfo": {"deploymentId": deploymentId, "status": status}}


# --- deploying ----------------------------------------------------------------------------


def test_an_approved_version_is_published_with_its_model_and_live_moves_to_it(
    world: World,
) -> None:
    result = world.deploy(1)

    assert result["status"] == "Succeeded"
    assert (result["previous_version"], result["lambda_version"]) == ("1", "2")
    assert world.live() == "2"
    baked = world.version_env("2")
    assert baked["DRIFTLINE_MODEL_VERSION"] == "1"
    assert baked["DRIFTLINE_MODEL_KEY"] == f"models/{MODEL}/v1/model.zip"
    assert baked["DRIFTLINE_MODEL_NAME"] == MODEL  # the stack's settings are kept
    bundle = storage.get_bytes(ARTIFACTS, baked["DRIFTLINE_SERVING_KEY"])
    loaded = load_bundle(bundle, baked["DRIFTLINE_SERVING_SHA256"])
    assert loaded.metadata["task"] == "classification"
    assert "DRIFTLINE_MODEL_VERSION" not in world.version_env("1")

    current = world.registry().current(MODEL)
    assert current is not None
    assert current | {"deployed_at": "", "recorded_at": "", "serving_key": ""} == {
        "env": "local",
        "model": MODEL,
        "action": "deploy",
        "status": "Succeeded",
        "shift": "direct",
        "strategy": "AllAtOnce",
        "deployment_id": None,
        "model_version": 1,
        "model_key": f"models/{MODEL}/v1/model.zip",
        "serving_key": "",
        "lambda_version": "2",
        "previous_version": "1",
        "previous_model_version": None,
        "function_name": FUNCTION,
        "alias": "live",
        "deployed_at": "",
        "deployed_by": EXECUTION,
        "recorded_at": "",
    }


def test_each_deployment_is_kept_in_the_history_newest_first(world: World) -> None:
    world.deploy(1)
    world.deploy(2)

    history = world.registry().history(MODEL)
    assert [(h["model_version"], h["lambda_version"]) for h in history] == [(2, "3"), (1, "2")]
    assert history[0]["previous_version"] == "2"
    assert history[0]["previous_model_version"] == 1
    current = world.registry().current(MODEL)
    assert current is not None and current["lambda_version"] == "3"
    assert world.live() == "3"


def test_deploying_the_live_version_again_changes_nothing(world: World) -> None:
    world.deploy(1)
    again = world.deploy(1)
    assert again["status"] == "AlreadyLive"
    assert world.live() == "2"
    assert len(world.registry().history(MODEL)) == 1


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (3, r"version 3 is PendingApproval, not Approved; approve it with `driftline models"),
        (4, r"version 4 is Rejected, not Approved$"),
        (9, r"model breast_cancer has no version 9"),
    ],
)
def test_anything_but_an_approved_version_is_refused_and_nothing_moves(
    world: World, version: int, message: str
) -> None:
    with pytest.raises(DeploymentRefused, match=message):
        world.deploy(version)
    assert world.live() == "1"
    assert world.registry().history(MODEL) == []
    versions = world.lambda_.list_versions_by_function(FunctionName=FUNCTION)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]


def test_a_model_without_an_endpoint_is_refused_naming_the_known_ones(world: World) -> None:
    with pytest.raises(DeploymentRefused, match=r"model iris has no endpoint in env local"):
        world.deploy(1, model="iris")


def test_codedeploy_moves_live_with_the_envs_strategy_and_the_outcome_is_recorded(
    world: World,
) -> None:
    codedeploy = ScriptedCodeDeploy(["Created", "InProgress", "Succeeded"])
    result = world.deploy(
        1,
        settings=codedeploy_settings(world),
        clients=Clients(world.lambda_, codedeploy, world.clients.dynamodb),
    )

    assert (result["shift"], result["deployment_id"]) == ("codedeploy", "d-ABCDEF123")
    (created,) = codedeploy.created
    assert (created["applicationName"], created["deploymentGroupName"]) == (
        "Serving",
        "BreastCancer",
    )
    appspec = json.loads(created["revision"]["appSpecContent"]["content"])
    (resource,) = appspec["Resources"][0].values()
    assert resource["Properties"] == {
        "Name": FUNCTION,
        "Alias": "live",
        "CurrentVersion": "1",
        "TargetVersion": "2",
    }
    current = world.registry().current(MODEL)
    assert current is not None
    assert (current["status"], current["strategy"]) == ("Succeeded", "Canary10Percent5Minutes")


def test_a_rolled_back_canary_fails_the_step_and_live_stays_recorded_as_before(
    world: World,
) -> None:
    world.deploy(1)
    codedeploy = ScriptedCodeDeploy(["InProgress", "Failed"])
    with pytest.raises(DeploymentFailed, match=r"ended Failed; live stays on version 2"):
        world.deploy(
            2,
            settings=codedeploy_settings(world),
            clients=Clients(world.lambda_, codedeploy, world.clients.dynamodb),
        )
    current = world.registry().current(MODEL)
    assert current is not None and current["lambda_version"] == "2"
    latest = world.registry().history(MODEL)[0]
    assert (latest["status"], latest["lambda_version"]) == ("RolledBack", "3")


def test_a_canary_outliving_the_step_is_recorded_unconfirmed(world: World) -> None:
    codedeploy = ScriptedCodeDeploy(["InProgress"])
    with pytest.raises(DeploymentFailed, match="still running"):
        world.deploy(
            1,
            settings=codedeploy_settings(world),
            clients=Clients(world.lambda_, codedeploy, world.clients.dynamodb),
            deadline=0.0,
        )
    assert world.registry().history(MODEL)[0]["status"] == "Unconfirmed"
    assert world.registry().current(MODEL) is None


def test_all_at_once_falls_back_to_a_direct_shift_when_codedeploy_is_unavailable(
    world: World,
) -> None:
    # moto's CodeDeploy API answers, but no application exists (as on the twin).
    result = world.deploy(1, settings=codedeploy_settings(world, strategy="AllAtOnce"))
    assert (result["status"], result["shift"]) == ("Succeeded", "direct")
    assert world.live() == "2"


def test_a_canary_is_never_skipped_when_codedeploy_is_unavailable(world: World) -> None:
    with pytest.raises(DeploymentFailed, match="Canary10Percent5Minutes needs CodeDeploy"):
        world.deploy(1, settings=codedeploy_settings(world))
    assert world.live() == "1"


def test_direct_shifts_with_a_canary_strategy_are_a_settings_error() -> None:
    with pytest.raises(
        SettingsError,
        match=r"DRIFTLINE_ALIAS_SHIFT: direct alias shifts skip the Canary10Percent5Minutes",
    ):
        load_settings(
            DeploySettings,
            {
                "DRIFTLINE_ENV": "prod",
                "DRIFTLINE_ARTIFACTS_BUCKET": ARTIFACTS,
                "DRIFTLINE_MODELS_TABLE": MODELS,
                "DRIFTLINE_ENDPOINTS_TABLE": ENDPOINTS,
                "DRIFTLINE_ENDPOINTS": endpoints_json(),
                "DRIFTLINE_DEPLOYMENT_STRATEGY": "Canary10Percent5Minutes",
                "DRIFTLINE_ALIAS_SHIFT": "direct",
            },
        )


def test_the_handler_takes_the_execution_state_and_names_a_bad_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    @dataclass
    class Context:
        aws_request_id: str = str(uuid.uuid4())
        function_name: str = "deploy"
        memory_limit_in_mb: int = 1024
        invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:deploy"

        def get_remaining_time_in_millis(self) -> int:
            return 900_000

    monkeypatch.setattr(deploy_step, "get_settings", lambda: world.settings)
    state = {
        "dataset": MODEL,
        "run": {"id": "r1", "execution_arn": EXECUTION, "started_at": "2026-11-29T21:00:00Z"},
        "registered": {
            "model": MODEL,
            "version": 1,
            "status": "Approved",
            "model_key": "models/breast_cancer/v1/model.zip",
        },
    }
    result = deploy_step.handler(state, Context())  # type: ignore[arg-type]
    assert (result["status"], result["lambda_version"]) == ("Succeeded", "2")
    with pytest.raises(DeployInputError, match=r"\$.registered.version is not a version: '1'"):
        deploy_step.handler({"registered": {"model": MODEL, "version": "1"}}, Context())  # type: ignore[arg-type]
    with pytest.raises(DeployInputError, match=r"\$.registered is missing"):
        deploy_step.handler({"run": {}}, Context())  # type: ignore[arg-type]


# --- rollback -----------------------------------------------------------------------------


def roll_back(world: World, to_version: str | None = None) -> dict[str, Any]:
    return rollback(
        world.lambda_,
        world.registry(),
        world.target,
        env="local",
        by="cli:tester",
        to_version=to_version,
    )


def test_rollback_points_live_at_the_previous_version_and_records_it(world: World) -> None:
    world.deploy(1)
    world.deploy(2)
    record = roll_back(world)

    assert world.live() == "2"
    assert (record["action"], record["lambda_version"], record["previous_version"]) == (
        "rollback",
        "2",
        "3",
    )
    assert (record["model_version"], record["previous_model_version"]) == (1, 2)
    assert record["deployed_by"] == "cli:tester"
    history = world.registry().history(MODEL)
    assert [h["action"] for h in history] == ["rollback", "deploy", "deploy"]
    current = world.registry().current(MODEL)
    assert current is not None and current["lambda_version"] == "2"


def test_rollback_to_a_named_version(world: World) -> None:
    world.deploy(1)
    world.deploy(2)
    roll_back(world, to_version="2")
    assert world.live() == "2"


@pytest.mark.parametrize(
    ("to_version", "message"),
    [
        ("1", r"Lambda version 1 of endpoint breast_cancer serves no model"),
        ("99", r"function .+ has no version '99'"),
        ("3", r"endpoint breast_cancer already serves Lambda version 3"),
        ("latest", r"'latest' is not a published Lambda version number"),
    ],
)
def test_rollback_to_an_unusable_version_is_refused(
    world: World, to_version: str, message: str
) -> None:
    world.deploy(1)
    world.deploy(2)
    with pytest.raises(RegistryError, match=message):
        roll_back(world, to_version=to_version)
    assert world.live() == "3"


def test_rollback_without_a_previous_version_says_so(world: World) -> None:
    with pytest.raises(RegistryError, match=r"no previous version to roll back to"):
        roll_back(world)


def test_endpoint_targets_are_parsed_with_one_line_errors() -> None:
    targets = parse_endpoint_targets(endpoints_json(deployment_group="g"), source="X")
    assert targets[MODEL].function_name == FUNCTION
    assert not targets[MODEL].has_deployment_group
    with pytest.raises(ValueError, match="X: endpoint 'm' has no function_name"):
        parse_endpoint_targets('{"m": {}}', source="X")
    with pytest.raises(ValueError, match="X is not valid JSON"):
        parse_endpoint_targets("{", source="X")


def test_listing_endpoints_returns_each_models_current_record(world: World) -> None:
    world.deploy(1)
    (only,) = world.registry().list_current()
    assert (only["model"], only["lambda_version"]) == (MODEL, "2")


# --- the CLI: driftline endpoints ... -------------------------------------------------------


@dataclass
class LambdaContext:
    aws_request_id: str = "cli-test"
    function_name: str = "deploy"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:deploy"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


class InProcessLambda:
    """`invoke` runs the deploy handler here and answers like Lambda (FunctionError on raise)."""

    def invoke(self, FunctionName: str, Payload: str) -> dict[str, Any]:
        try:
            result: Any = deploy_step.handler(json.loads(Payload), LambdaContext())  # type: ignore[arg-type]
            return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result).encode())}
        except Exception as error:
            body = {"errorType": type(error).__name__, "errorMessage": str(error)}
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": io.BytesIO(json.dumps(body).encode()),
            }


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    from driftline import cli as driftline_cli
    from driftline.commands import endpoints as endpoints_command

    outputs = {
        "Endpoints": json.dumps({MODEL: {"function_name": FUNCTION, "alias": "live", "url": "u"}}),
        "EndpointsTableName": ENDPOINTS,
        "ModelsTableName": MODELS,
        "DeployFunctionName": "driftline-local-deploy",
    }
    monkeypatch.setattr(endpoints_command, "stack_outputs", lambda env: outputs)
    monkeypatch.setattr(endpoints_command, "who", lambda: "cli:tester")
    monkeypatch.setattr(deploy_step, "get_settings", lambda: world.settings)
    monkeypatch.setattr(endpoints_command, "deploy_client", InProcessLambda)

    def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        code = driftline_cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_cli_lists_shows_and_rolls_back_an_endpoint(
    world: World, cli: Callable[..., tuple[int, str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    world.deploy(1)
    world.deploy(2)

    code, out, _ = cli("endpoints", "list", "--json", capsys=capsys)
    (listed,) = json.loads(out)
    assert code == 0
    assert (listed["model"], listed["live_version"], listed["model_version"]) == (MODEL, "3", 2)
    assert listed["in_sync"] is True

    code, out, _ = cli("endpoints", "rollback", "--model", MODEL, "--json", capsys=capsys)
    assert code == 0
    assert json.loads(out)["lambda_version"] == "2"
    assert world.live() == "2"

    code, out, _ = cli("endpoints", "show", "--model", MODEL, "--json", capsys=capsys)
    shown = json.loads(out)
    assert (shown["live_version"], shown["current"]["action"]) == ("2", "rollback")

    code, out, _ = cli("endpoints", "history", "--model", MODEL, capsys=capsys)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["AT", "ACTION", "STATUS"]
    assert [row.split()[1] for row in rows] == ["rollback", "deploy", "deploy"]


def test_cli_unknown_endpoint_is_one_line_and_exit_2(
    world: World, cli: Callable[..., tuple[int, str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli("endpoints", "show", "--model", "iris", capsys=capsys)
    assert (code, out) == (2, "")
    assert err == "driftline: unknown endpoint 'iris' in env 'local' (endpoints: breast_cancer)\n"


def test_cli_rollback_to_an_unknown_version_is_one_line_and_exit_2(
    world: World, cli: Callable[..., tuple[int, str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    world.deploy(1)
    code, _, err = cli(
        "endpoints", "rollback", "--model", MODEL, "--to-version", "42", capsys=capsys
    )
    assert code == 2
    assert err == f"driftline: function {FUNCTION} has no version '42'\n"
    assert world.live() == "2"


def test_cli_deploy_refuses_an_unapproved_version_in_one_line(
    world: World, cli: Callable[..., tuple[int, str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli("endpoints", "deploy", "--model", MODEL, "--version", "3", capsys=capsys)
    assert code == 2
    assert err.startswith("driftline: deploy refused: model breast_cancer version 3 is ")
    assert err.count("\n") == 1
    assert world.live() == "1"

    code, out, _ = cli(
        "endpoints", "deploy", "--model", MODEL, "--version", "1", "--json", capsys=capsys
    )
    assert code == 0
    assert json.loads(out)["lambda_version"] == "2"
    current = world.registry().current(MODEL)
    assert current is not None and current["deployed_by"] == "cli:tester"


# --- the shared endpoint: any model, routed through the registry -------------------------------


def shared_settings(world: World, strategy: str = "AllAtOnce") -> DeploySettings:
    """No dedicated endpoint for the model: the deploy step routes it on the shared endpoint."""
    return world.settings.model_copy(
        update={
            "endpoints": {},
            "shared_endpoint": "driftline-local-shared",
            "deployment_strategy": strategy,
        }
    )


def _rows(count: int) -> list[dict[str, float]]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(count)
    frame.columns = [name.lower().replace(" ", "_") for name in frame.columns]
    return list(frame.to_dict(orient="records"))


def _shared_router(world: World) -> Any:
    from functions.inference.routing import Router
    from functions.inference.service import InferenceSettings

    settings = InferenceSettings.from_environ(
        {
            "DRIFTLINE_ENV": "local",
            "DRIFTLINE_ARTIFACTS_BUCKET": ARTIFACTS,
            "DRIFTLINE_ENDPOINTS_TABLE": ENDPOINTS,
            "DRIFTLINE_ROUTE_TTL_SECONDS": "0",
        },
    )
    return Router(
        settings,
        read_record=world.registry().current,
        read_bytes=lambda key: storage.get_bytes(ARTIFACTS, key),
    )


def test_a_model_without_a_dedicated_endpoint_is_served_by_the_shared_endpoint(
    world: World,
) -> None:
    """Given no endpoint of its own, when v1 deploys, then the shared endpoint scores with it."""
    from functions.inference.service import score
    from pipelines.request_schema import Limits, check_rows

    result = world.deploy(1, settings=shared_settings(world))

    assert (result["status"], result["endpoint"], result["shift"]) == (
        "Succeeded",
        "shared",
        "registry",
    )
    current = world.registry().current(MODEL)
    assert current is not None
    assert (current["endpoint"], current["model_version"]) == ("shared", 1)
    assert current["serving_key"].startswith(f"models/{MODEL}/v1/serving/")
    assert world.live() == "1"  # the dedicated function was not touched
    router = _shared_router(world)
    deployed = router.deployed(MODEL, router.route(MODEL).pick())
    checked = check_rows(_rows(3), deployed.schema, Limits(10, 10**6, "ignore"))
    assert (deployed.model, deployed.version, len(score(deployed, checked).predictions)) == (
        MODEL,
        1,
        3,
    )


def test_a_shared_endpoint_canary_without_errors_is_promoted(world: World) -> None:
    world.deploy(1, settings=shared_settings(world))
    seen: list[Any] = []

    def sleep(_: float) -> None:
        seen.append(world.registry().current(MODEL))

    request = DeployRequest(model=MODEL, version=2, by=EXECUTION)
    result = deploy_step.deploy(
        request,
        shared_settings(world, "Canary10Percent5Minutes"),
        world.clients,
        deadline=1e12,
        sleep=sleep,
    )

    assert result["status"] == "Succeeded"
    assert seen and all(
        (item["model_version"], item["canary_model_version"], item["canary_weight"]) == (1, 2, 0.1)
        for item in seen
    )
    current = world.registry().current(MODEL)
    assert current is not None and current["model_version"] == 2
    assert "canary_model_version" not in current
    assert current["previous_model_version"] == 1


def test_a_shared_endpoint_canary_with_model_errors_rolls_back(world: World) -> None:
    """Given v2 fails to score during its canary, then v1 keeps all traffic and the run fails."""
    world.deploy(1, settings=shared_settings(world))
    cloudwatch = clients.client("cloudwatch")

    def failing_requests(_: float) -> None:
        cloudwatch.put_metric_data(
            Namespace="Driftline",
            MetricData=[
                {
                    "MetricName": "ModelErrors",
                    "Dimensions": [
                        {"Name": "Model", "Value": MODEL},
                        {"Name": "ModelVersion", "Value": "2"},
                    ],
                    "Value": 1,
                    "Unit": "Count",
                }
            ],
        )

    request = DeployRequest(model=MODEL, version=2, by=EXECUTION)
    with pytest.raises(DeploymentFailed, match=r"rolled back: 1 ModelErrors at 10%.*v1 keeps"):
        deploy_step.deploy(
            request,
            shared_settings(world, "Canary10Percent5Minutes"),
            world.clients,
            deadline=1e12,
            sleep=failing_requests,
        )

    current = world.registry().current(MODEL)
    assert current is not None and current["model_version"] == 1
    assert "canary_model_version" not in current
    assert world.registry().history(MODEL)[0]["status"] == "RolledBack"


def test_a_shared_route_is_only_replaced_from_the_version_it_replaces(world: World) -> None:
    """Two deploys racing from the same route: the second writer loses instead of overwriting."""
    world.deploy(1, settings=shared_settings(world))
    registry = world.registry()

    assert registry.replace_current(MODEL, {"model_version": 2}, expected_version=1) is True
    assert registry.replace_current(MODEL, {"model_version": 3}, expected_version=1) is False
    current = registry.current(MODEL)
    assert current is not None and current["model_version"] == 2


def test_an_unapproved_version_is_refused_on_the_shared_endpoint_too(world: World) -> None:
    with pytest.raises(DeploymentRefused, match="PendingApproval, not Approved"):
        world.deploy(3, settings=shared_settings(world))
    assert world.registry().current(MODEL) is None


# --- racing writers: one winner on the alias and the record -------------------------------


@pytest.fixture
def alias_revisions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda's UpdateAlias RevisionId check, which moto does not implement.

    On AWS an update carrying a RevisionId other than the alias' current one fails with
    PreconditionFailedException, and every update gives the alias a new RevisionId. The check
    and the update are one step (a lock), as in the service.
    """
    from moto.awslambda.responses import LambdaResponse

    original = LambdaResponse.update_alias
    lock = threading.Lock()

    def update_alias(self: Any) -> Any:
        function_name = unquote(self.path.rsplit("/")[-3])
        alias_name = unquote(self.path.rsplit("/", 2)[-1])
        expected = json.loads(self.body).get("RevisionId")
        with lock:
            alias = self.backend.get_alias(alias_name, function_name)
            if expected is not None and expected != alias.revision_id:
                body = {
                    "__type": "PreconditionFailedException",
                    "message": "The Revision Id provided does not match the latest Revision Id.",
                }
                headers = {"status": 412, "x-amzn-errortype": "PreconditionFailedException"}
                return 412, headers, json.dumps(body)
            answer = original(self)
            alias.revision_id = str(uuid.uuid4())
            return answer

    monkeypatch.setattr(LambdaResponse, "update_alias", update_alias)


def test_the_alias_moves_only_from_the_version_and_revision_it_was_read_at(
    world: World, alias_revisions: None
) -> None:
    world.deploy(1)
    live, revision = alias_state(world.lambda_, world.target)
    world.lambda_.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1")

    with pytest.raises(EndpointChanged, match=r"live moved from Lambda version 2 to 1"):
        point_alias(world.lambda_, world.target, "2", expected_version=live)
    assert world.live() == "1"

    stale = {"RevisionId": revision}
    with pytest.raises(ClientError, match="PreconditionFailed"):
        world.lambda_.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="2", **stale)


def test_two_deploys_racing_on_one_endpoint_leave_one_winner_on_alias_and_record(
    world: World, alias_revisions: None, atomic_items: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both read live=1 and no record, publish, then move at once: one wins, one changes nothing."""
    publish = deploy_step.publish_model_version
    publishing = threading.Lock()
    both_published = threading.Barrier(2, timeout=60)

    def publish_then_race(*arguments: Any, **options: Any) -> str:
        with publishing:  # $LATEST's environment is one slot: publish one at a time
            version = publish(*arguments, **options)
        both_published.wait()
        return version

    monkeypatch.setattr(deploy_step, "publish_model_version", publish_then_race)
    outcomes: dict[int, Any] = {}

    def deploy(version: int) -> None:
        try:
            outcomes[version] = world.deploy(version)
        except Exception as error:  # the assertions below say which
            outcomes[version] = error

    threads = [threading.Thread(target=deploy, args=(version,)) for version in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = {v: o for v, o in outcomes.items() if isinstance(o, dict)}
    losers = {v: o for v, o in outcomes.items() if not isinstance(o, dict)}
    assert len(winners) == 1 and len(losers) == 1, outcomes
    ((won, result),) = winners.items()
    ((lost, error),) = losers.items()
    assert isinstance(error, DeploymentFailed) and "meanwhile" in str(error)
    current = world.registry().current(MODEL)
    assert current is not None
    assert world.live() == current["lambda_version"] == result["lambda_version"]
    assert current["model_version"] == won
    assert world.version_env(world.live())["DRIFTLINE_MODEL_VERSION"] == str(won)
    statuses = {h["model_version"]: h["status"] for h in world.registry().history(MODEL)}
    assert statuses == {won: "Succeeded", lost: "Superseded"}


def test_a_record_changed_since_it_was_read_is_not_overwritten(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer's `current` lands between this deploy's read and write: it stays."""
    world.deploy(1)
    registry = world.registry()
    publish = deploy_step.publish_model_version

    def publish_while_another_writer_records(*arguments: Any, **options: Any) -> str:
        version = publish(*arguments, **options)
        other = registry.current(MODEL) or {}
        registry.record(
            other | {"lambda_version": "7", "deployed_by": "other"}, becomes_current=True
        )
        return version

    monkeypatch.setattr(deploy_step, "publish_model_version", publish_while_another_writer_records)

    with pytest.raises(DeploymentFailed, match=r"changed the endpoint's record meanwhile"):
        world.deploy(2)

    current = registry.current(MODEL)
    assert current is not None and (current["lambda_version"], current["deployed_by"]) == (
        "7",
        "other",
    )
    assert registry.history(MODEL)[0]["status"] == "Conflict"


def test_a_rollback_racing_a_deploy_changes_nothing_when_the_deploy_moved_live_first(
    world: World, alias_revisions: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.shared import endpoints

    world.deploy(1)
    world.deploy(2)  # live: Lambda version 3 (model v2); it replaced 2 (model v1)
    read_model = endpoints.version_model
    moved: list[str] = []

    def a_deploy_lands_meanwhile(lambda_client: Any, function_name: str, version: str) -> Any:
        if not moved:  # after the rollback read live (3), before it moves it
            moved.append(version)
            world.lambda_.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1")
        return read_model(lambda_client, function_name, version)

    monkeypatch.setattr(endpoints, "version_model", a_deploy_lands_meanwhile)

    with pytest.raises(EndpointChanged, match=r"live moved from Lambda version 3 to 1"):
        roll_back(world)

    assert world.live() == "1"  # what the other writer put there
    current = world.registry().current(MODEL)
    assert current is not None and current["lambda_version"] == "3"  # not the rollback's
    assert [h["action"] for h in world.registry().history(MODEL)] == ["deploy", "deploy"]


def test_cli_lists_shows_and_rolls_back_a_model_on_the_shared_endpoint(
    world: World,
    cli: Callable[..., tuple[int, str, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given an uploaded model served by the shared endpoint, the endpoints commands treat it
    like any other: listed with its route, shown, and rolled back to the version it replaced."""
    from driftline.commands import endpoints as endpoints_command

    outputs = {
        "Endpoints": json.dumps({}),
        "EndpointsTableName": ENDPOINTS,
        "ModelsTableName": MODELS,
        "DeployFunctionName": "driftline-local-deploy",
        "SharedEndpointFunction": "driftline-local-shared",
        "SharedEndpointUrl": "https://shared.example/",
    }
    monkeypatch.setattr(endpoints_command, "stack_outputs", lambda env: outputs)
    world.deploy(1, settings=shared_settings(world))
    world.deploy(2, settings=shared_settings(world))

    code, out, _ = cli("endpoints", "list", "--json", capsys=capsys)
    (listed,) = json.loads(out)
    assert code == 0
    assert (listed["model"], listed["live_version"], listed["model_version"]) == (
        MODEL,
        "shared",
        2,
    )
    assert listed["url"] == f"https://shared.example/models/{MODEL}"

    code, out, err = cli("endpoints", "rollback", "--model", MODEL, "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["model_version"] == 1
    current = world.registry().current(MODEL)
    assert current is not None and current["model_version"] == 1

    code, out, _ = cli("endpoints", "show", "--model", MODEL, "--json", capsys=capsys)
    assert json.loads(out)["current"]["action"] == "rollback"
    code, _, err = cli(
        "endpoints", "rollback", "--model", MODEL, "--to-version", "3", capsys=capsys
    )
    assert code == 2 and "--to-version names a Lambda version" in err
