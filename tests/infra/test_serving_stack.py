"""The Serving stack: endpoints per shipped model, alarms, CodeDeploy, the deploy step's wiring,
and the SageMaker Serverless backend (synthesized with a context override; no env uses it)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.app_builder import build_environment, new_app, shipped_model_names
from infra.config import load_env_config
from infra.stacks.serving_stack import construct_name
from tests.infra.conftest import (
    REPO,
    SynthesizedEnv,
    cdk_context,
    cfn_text,
    resources_in,
    synthesize,
)
from tests.infra.test_compliance import cfn_lint_errors

pytestmark = pytest.mark.infra

MODEL = "breast_cancer"


def _serving_functions(template: dict[str, Any]) -> dict[str, Any]:
    return {
        key: fn
        for key, fn in resources_in(template, "AWS::Lambda::Function").items()
        if fn["Properties"]["ImageConfig"]["Command"] == ["functions.inference.handler.handler"]
    }


def inference_functions(template: dict[str, Any]) -> dict[str, Any]:
    """The dedicated endpoints: one function per shipped model."""
    return {
        key: fn
        for key, fn in _serving_functions(template).items()
        if "DRIFTLINE_MODEL_NAME" in fn["Properties"]["Environment"]["Variables"]
    }


def shared_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = (
        (key, fn)
        for key, fn in _serving_functions(template).items()
        if "DRIFTLINE_MODEL_NAME" not in fn["Properties"]["Environment"]["Variables"]
    )
    return found


def statements(template: dict[str, Any], policy_prefix: str) -> list[dict[str, Any]]:
    (policy,) = (
        p
        for k, p in resources_in(template, "AWS::IAM::Policy").items()
        if k.startswith(policy_prefix)
    )
    found: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return found


# --- endpoints ----------------------------------------------------------------------------


def test_every_shipped_model_config_gets_an_endpoint(local: SynthesizedEnv) -> None:
    shipped = {path.stem for path in (REPO / "models").glob("*.yaml")}
    assert MODEL in shipped
    template = local.template_json("Serving")
    names = {
        fn["Properties"]["Environment"]["Variables"]["DRIFTLINE_MODEL_NAME"]
        for fn in inference_functions(template).values()
    }
    assert names == shipped
    outputs = template["Outputs"]
    for model in shipped:
        assert f"EndpointUrl{construct_name(model)}" in outputs
        assert f"EndpointFunction{construct_name(model)}" in outputs


def test_the_inference_function_serves_from_the_shared_image_with_its_limits(
    local: SynthesizedEnv,
) -> None:
    Template.from_json(local.template_json("Serving")).has_resource_properties(
        "AWS::Lambda::Function",
        {
            "PackageType": "Image",
            "ImageConfig": {"Command": ["functions.inference.handler.handler"]},
            "MemorySize": 2048,
            "TracingConfig": {"Mode": "Active"},
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "DRIFTLINE_MODEL_NAME": MODEL,
                        "DRIFTLINE_CAPTURE_SAMPLE_RATE": "1",
                        "DRIFTLINE_EXTRA_FEATURES": "ignore",
                        "DRIFTLINE_MAX_ROWS": "1000",
                        "DRIFTLINE_MAX_PAYLOAD_BYTES": "1000000",
                    }
                )
            },
        },
    )
    (function,) = inference_functions(local.template_json("Serving")).values()
    variables = function["Properties"]["Environment"]["Variables"]
    assert "DRIFTLINE_MODEL_VERSION" not in variables  # only the deploy step sets a model


@pytest.mark.parametrize("env_name", ["local", "prod"])
def test_every_inference_function_reserves_the_envs_concurrency(
    synth_env: Callable[[str], SynthesizedEnv], env_name: str
) -> None:
    """Dedicated and shared endpoints alike: capped, so a flood cannot starve the pipeline."""
    expected = load_env_config(cdk_context(), env_name).inference_reserved_concurrency
    assert expected is not None
    template = synth_env(env_name).template_json("Serving")
    functions = [*inference_functions(template).values(), shared_function(template)[1]]
    assert len(functions) >= 2
    for function in functions:
        assert function["Properties"]["ReservedConcurrentExecutions"] == expected
    deployer = [
        fn
        for fn in _serving_functions(template).values()
        if fn not in functions and "ReservedConcurrentExecutions" in fn["Properties"]
    ]
    assert deployer == []  # only the endpoints reserve


def test_reserved_concurrency_can_be_switched_off_per_env(tmp_path: Path) -> None:
    context = cdk_context()
    context["driftline"]["envs"]["dev"]["inference_reserved_concurrency"] = None
    dev = synthesize("dev", tmp_path, {"driftline": context["driftline"]})
    template = dev.template_json("Serving")
    for function in _serving_functions(template).values():
        assert "ReservedConcurrentExecutions" not in function["Properties"]


def test_live_alias_starts_on_a_bootstrap_version_behind_an_iam_function_url(
    local: SynthesizedEnv,
) -> None:
    template = local.template_json("Serving")
    (function_id,) = inference_functions(template)
    (alias,) = (
        a
        for a in resources_in(template, "AWS::Lambda::Alias").values()
        if a["Properties"]["FunctionName"] == {"Ref": function_id}
    )
    (version_id,) = (
        key
        for key, v in resources_in(template, "AWS::Lambda::Version").items()
        if v["Properties"]["FunctionName"] == {"Ref": function_id}
    )
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    urls = resources_in(template, "AWS::Lambda::Url").values()
    assert {(u["Properties"]["AuthType"], u["Properties"]["Qualifier"]) for u in urls} == {
        ("AWS_IAM", "live")
    }
    assert resources_in(template, "AWS::Lambda::Permission") == {}  # no public invoke


def test_the_shared_endpoint_serves_any_model_with_least_privilege(
    local: SynthesizedEnv,
) -> None:
    """Given no model of its own, the shared function routes through the Endpoints table,
    reads only serving bundles, writes only captures, and its alias follows its code."""
    template = local.template_json("Serving")
    function_id, function = shared_function(template)
    variables = function["Properties"]["Environment"]["Variables"]
    assert "DRIFTLINE_ENDPOINTS_TABLE" in variables
    assert "DRIFTLINE_MODEL_VERSION" not in variables
    resources_ = {
        json.dumps(resource)
        for statement in statements(template, "SharedEndpointInferenceRoleDefaultPolicy")
        for resource in (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        if "s3:" in json.dumps(statement["Action"])
    }
    assert any("/models/*/serving/*" in r for r in resources_)
    assert any("/captures/*" in r for r in resources_)
    assert not any(
        r.endswith('/*"]]}') and "serving" not in r and "captures" not in r for r in resources_
    )
    (alias,) = (
        a
        for a in resources_in(template, "AWS::Lambda::Alias").values()
        if a["Properties"]["FunctionName"] == {"Ref": function_id}
    )
    version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert version.startswith("SharedEndpointInferenceFunctionCurrentVersion")
    outputs = template["Outputs"]
    assert {"SharedEndpointFunction", "SharedEndpointUrl"} <= set(outputs)


def test_endpoints_output_maps_models_to_function_alias_and_url(local: SynthesizedEnv) -> None:
    value = local.template_json("Serving")["Outputs"]["Endpoints"]["Value"]
    document = json.loads(cfn_text(value))
    assert document == {MODEL: {"function_name": "TOKEN", "alias": "live", "url": "TOKEN"}}


def test_the_endpoint_may_read_only_its_model_and_write_only_its_captures(
    local: SynthesizedEnv,
) -> None:
    s3_resources = {
        cfn_text(resource)
        for statement in statements(local.template_json("Serving"), MODEL.title().replace("_", ""))
        if any(str(action).startswith("s3:") for action in statement["Action"])
        for resource in (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
    }
    assert s3_resources == {"TOKEN", f"TOKEN/models/{MODEL}/*", f"TOKEN/captures/{MODEL}/*"}


def test_error_and_p99_latency_alarms_watch_the_live_alias(local: SynthesizedEnv) -> None:
    template = Template.from_json(local.template_json("Serving"))
    dimensions = Match.array_with(
        [{"Name": "Resource", "Value": {"Fn::Join": ["", [Match.any_value(), ":live"]]}}]
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "Errors",
            "Statistic": "Sum",
            "Period": 60,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 2,
            "DatapointsToAlarm": 2,
            "TreatMissingData": "notBreaching",
            "Dimensions": dimensions,
            "AlarmActions": Match.any_value(),
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "Duration",
            "ExtendedStatistic": "p99",
            "Period": 60,
            "Threshold": 1000,
            "EvaluationPeriods": 2,
            "Dimensions": dimensions,
        },
    )


@pytest.mark.parametrize(
    ("env_name", "config_name"),
    [
        ("dev", "CodeDeployDefault.LambdaAllAtOnce"),
        ("staging", "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"),
        ("prod", "CodeDeployDefault.LambdaCanary10Percent5Minutes"),
    ],
)
def test_codedeploy_shifts_live_with_the_envs_strategy_and_rolls_back_on_the_alarms(
    synth_env: Callable[[str], SynthesizedEnv], env_name: str, config_name: str
) -> None:
    template = synth_env(env_name).template_json("Serving")
    groups = resources_in(template, "AWS::CodeDeploy::DeploymentGroup").values()
    assert len(groups) == 2  # the dedicated endpoint's and the shared endpoint's
    watched: set[str] = set()
    for group in groups:
        properties = group["Properties"]
        assert properties["DeploymentConfigName"] == config_name
        alarms = {alarm["Name"]["Ref"] for alarm in properties["AlarmConfiguration"]["Alarms"]}
        assert len(alarms) == 2  # errors and p99 latency of that endpoint
        watched |= alarms
        assert set(properties["AutoRollbackConfiguration"]["Events"]) == {
            "DEPLOYMENT_FAILURE",
            "DEPLOYMENT_STOP_ON_REQUEST",
            "DEPLOYMENT_STOP_ON_ALARM",
        }
    model_errors = {
        key
        for key, alarm in resources_in(template, "AWS::CloudWatch::Alarm").items()
        if "ModelErrors" in json.dumps(alarm["Properties"].get("Metrics", []))
    }
    assert len(model_errors) == 1  # per model on the shared endpoint: not a code rollback
    assert watched == set(resources_in(template, "AWS::CloudWatch::Alarm")) - model_errors
    for alias in resources_in(template, "AWS::Lambda::Alias").values():
        assert "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]


def test_the_twin_moves_aliases_directly_and_has_no_codedeploy_resources(
    local: SynthesizedEnv, prod: SynthesizedEnv
) -> None:
    local_template = local.template_json("Serving")
    assert not any(
        resource["Type"].startswith("AWS::CodeDeploy::")
        for resource in local_template["Resources"].values()
    )

    def deployer_variables(template: dict[str, Any]) -> dict[str, Any]:
        (fn,) = (
            fn
            for fn in resources_in(template, "AWS::Lambda::Function").values()
            if fn["Properties"]["ImageConfig"]["Command"] == ["functions.deploy.handler.handler"]
        )
        variables: dict[str, Any] = fn["Properties"]["Environment"]["Variables"]
        return variables

    local_env = deployer_variables(local_template)
    assert (local_env["DRIFTLINE_ALIAS_SHIFT"], local_env["DRIFTLINE_DEPLOYMENT_STRATEGY"]) == (
        "direct",
        "AllAtOnce",
    )
    assert json.loads(cfn_text(local_env["DRIFTLINE_ENDPOINTS"])) == {
        MODEL: {"function_name": "TOKEN", "alias": "live"}
    }
    prod_env = deployer_variables(prod.template_json("Serving"))
    assert prod_env["DRIFTLINE_ALIAS_SHIFT"] == "codedeploy"
    assert json.loads(cfn_text(prod_env["DRIFTLINE_ENDPOINTS"]))[MODEL] == {
        "function_name": "TOKEN",
        "alias": "live",
        "deployment_application": "TOKEN",
        "deployment_group": "TOKEN",
    }


def test_the_deploy_step_may_change_only_the_endpoint_functions_and_their_groups(
    prod: SynthesizedEnv,
) -> None:
    template = prod.template_json("Serving")
    (function_id,) = inference_functions(template)
    by_action = {
        action: statement["Resource"]
        for statement in statements(template, "DeployerDeployRole")
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    function_arn = {"Fn::GetAtt": [function_id, "Arn"]}
    for action in (
        "lambda:UpdateFunctionConfiguration",
        "lambda:PublishVersion",
        "lambda:UpdateAlias",
    ):
        assert by_action[action] == [
            function_arn,
            {"Fn::Join": ["", [function_arn, ":*"]]},
        ]
    assert ":deploymentgroup:" in cfn_text(by_action["codedeploy:CreateDeployment"])
    (deployer,) = (
        fn
        for fn in resources_in(template, "AWS::Lambda::Function").values()
        if fn["Properties"]["ImageConfig"]["Command"] == ["functions.deploy.handler.handler"]
    )
    assert deployer["Properties"]["Timeout"] == 900
    assert "DeployFunctionName" in template["Outputs"]


def test_every_handler_the_serving_template_names_exists(local: SynthesizedEnv) -> None:
    for fn in resources_in(local.template_json("Serving"), "AWS::Lambda::Function").values():
        module, _, attribute = fn["Properties"]["ImageConfig"]["Command"][0].rpartition(".")
        path = REPO / Path(*module.split(".")).with_suffix(".py")
        assert path.is_file(), path
        assert f"def {attribute}(" in path.read_text(), path


# --- the pipeline's Deploy step -----------------------------------------------------------


def test_the_pipeline_deploy_step_invokes_the_serving_deployer(local: SynthesizedEnv) -> None:
    (machine,) = resources_in(
        local.template_json("Pipeline"), "AWS::StepFunctions::StateMachine"
    ).values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else json.dumps(part) for part in parts)
    assert "ExportsOutputFnGetAttDeployerDeployFunction" in text
    states = json.loads(cfn_text(machine["Properties"]["DefinitionString"]))["States"]
    deploy = states["Deploy"]
    assert deploy["Type"] == "Task"
    assert deploy["ResultPath"] == "$.deployment"
    assert deploy["Next"] == "RecordSuccess"
    assert deploy["Catch"] == [
        {
            "ErrorEquals": ["DeploymentRefused"],
            "ResultPath": "$.deployment",
            "Next": "RecordSuccess",
        },
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"},
    ]
    retried = {error for rule in deploy["Retry"] for error in rule["ErrorEquals"]}
    assert "TransientError" in retried


def test_the_pipeline_stack_deploys_after_the_serving_stack(local: SynthesizedEnv) -> None:
    dependencies = local.manifest["artifacts"]["Driftline-local-Pipeline"]["dependencies"]
    assert "Driftline-local-Serving" in dependencies


# --- model names --------------------------------------------------------------------------


def test_shipped_model_names_are_the_yaml_stems(tmp_path: Path) -> None:
    for name in ("wine-quality.yaml", "iris.yaml", "notes.txt"):
        (tmp_path / name).write_text("task: classification\n")
    assert shipped_model_names(tmp_path) == ("iris", "wine-quality")


def test_model_names_that_collide_as_construct_ids_are_refused() -> None:
    context = {**cdk_context(), "env": "local"}
    app = new_app(context=context)
    with pytest.raises(ValueError, match=r"'wine-quality' and 'wine_quality' would share"):
        build_environment(
            app,
            load_env_config(context, "local"),
            model_names=("wine-quality", "wine_quality"),
        )


# --- SageMaker Serverless backend ---------------------------------------------------------


@pytest.fixture(scope="module")
def sagemaker_serverless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prod with `serving_backend: sagemaker-serverless` and two models; synth runs cdk-nag."""
    context = copy.deepcopy({**cdk_context(), "env": "prod"})
    context["driftline"]["envs"]["prod"]["serving_backend"] = "sagemaker-serverless"
    outdir = tmp_path_factory.mktemp("cdk-prod-sagemaker")
    app = new_app(context=context, outdir=str(outdir))
    build_environment(
        app,
        load_env_config(context, "prod", git_sha="0123abc"),
        model_names=(MODEL, "wine-quality"),
    )
    app.synth()
    return outdir / "Driftline-prod-Serving.template.json"


def test_sagemaker_serverless_serves_each_model_from_its_registered_archive(
    sagemaker_serverless: Path,
) -> None:
    template_json = json.loads(sagemaker_serverless.read_text())
    template = Template.from_json(template_json)
    models = resources_in(template_json, "AWS::SageMaker::Model")
    assert len(models) == 2
    sources = {
        cfn_text(m["Properties"]["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"])
        for m in models.values()
    }
    assert sources == {f"s3://TOKEN/models/{MODEL}/live/", "s3://TOKEN/models/wine-quality/live/"}
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": {
                "Mode": "SingleModel",
                "ModelDataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "CompressionType": "None"}
                },
                "Environment": Match.object_like({"DRIFTLINE_MODEL_NAME": MODEL}),
            }
        },
    )
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like(
                    {"ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 5}}
                )
            ]
        },
    )
    template.resource_count_is("AWS::SageMaker::Endpoint", 2)
    assert inference_functions(template_json) == {}
    assert {"EndpointNameBreastCancer", "EndpointNameWineQuality"} <= set(template_json["Outputs"])


def test_sagemaker_serverless_template_passes_cfn_lint(sagemaker_serverless: Path) -> None:
    assert cfn_lint_errors(sagemaker_serverless) == []
