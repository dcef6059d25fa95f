"""`Driftline-Delivery`: the CDK Pipelines stack that carries a commit from source to prod.

One synth of `-c env=delivery` per module (cdk-nag runs inside it: a finding would fail the
fixture); assertions read the pipeline's template and the stages' nested assemblies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.app_builder import new_app
from infra.config import ConfigError
from infra.delivery_config import DELIVERY_STACK, load_delivery_config
from infra.stacks.delivery_stack import DeliveryStack, build_delivery, synth_commands
from tests.infra.conftest import cdk_context

pytestmark = pytest.mark.infra

STAGES = ("dev", "staging", "prod")
PARTS = ("Data", "Serving", "Pipeline", "Monitoring")  # deploy order (dependencies)
ORDER = ("Data", "Pipeline", "Serving", "Monitoring")  # DriftlineStacks.all()


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> tuple[DeliveryStack, Path]:
    outdir = tmp_path_factory.mktemp("cdk-delivery")
    context = {**cdk_context(), "env": "delivery"}
    app = new_app(context=context, outdir=str(outdir))
    stack = build_delivery(app, load_delivery_config(context, git_sha="0123abc"))
    app.synth()
    return stack, outdir


@pytest.fixture(scope="module")
def template_json(delivery: tuple[DeliveryStack, Path]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (delivery[1] / f"{DELIVERY_STACK}.template.json").read_text()
    )
    return document


@pytest.fixture(scope="module")
def template(template_json: dict[str, Any]) -> Template:
    return Template.from_json(template_json)


def pipeline_stages(template_json: dict[str, Any]) -> list[dict[str, Any]]:
    pipelines = [
        resource
        for resource in template_json["Resources"].values()
        if resource["Type"] == "AWS::CodePipeline::Pipeline"
        and resource["Properties"]["Stages"][1]["Name"] == "Build"
    ]
    assert len(pipelines) == 1  # the delivery pipeline (the other one promotes models)
    stages: list[dict[str, Any]] = pipelines[0]["Properties"]["Stages"]
    return stages


def actions(stage: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [
        (action["Name"], action["ActionTypeId"]["Category"], action["RunOrder"])
        for action in sorted(stage["Actions"], key=lambda a: (a["RunOrder"], a["Name"]))
    ]


def test_stages_run_source_synth_selfmutation_assets_then_dev_staging_prod(
    template_json: dict[str, Any],
) -> None:
    names = [stage["Name"] for stage in pipeline_stages(template_json)]
    assert names == ["Source", "Build", "UpdatePipeline", "Assets", *STAGES]


def test_source_is_the_configured_codeconnections_repository_and_branch(
    template_json: dict[str, Any],
) -> None:
    source = pipeline_stages(template_json)[0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    configuration = source["Configuration"]
    delivery = cdk_context()["driftline"]["delivery"]
    assert configuration["ConnectionArn"] == delivery["connection_arn"]
    assert configuration["FullRepositoryId"] == delivery["repository"]
    assert configuration["BranchName"] == delivery["branch"]
    # A full clone: the synth step records the commit (`git rev-parse HEAD`) with each model.
    assert configuration["OutputArtifactFormat"] == "CODEBUILD_CLONE_REF"


def test_manual_approval_comes_before_anything_is_deployed_to_prod_and_only_there(
    template_json: dict[str, Any],
) -> None:
    stages = {stage["Name"]: actions(stage) for stage in pipeline_stages(template_json)}
    prod = stages["prod"]
    assert prod[0] == ("ApproveProd", "Approval", 1)
    assert all(order > 1 for _, category, order in prod if category != "Approval")
    for name in ("dev", "staging"):
        assert all(category != "Approval" for _, category, _ in stages[name])


def test_each_stage_deploys_its_four_stacks_then_smoke_tests_them(
    template_json: dict[str, Any],
) -> None:
    for stage in pipeline_stages(template_json)[4:]:
        env = stage["Name"]
        steps = actions(stage)
        deployed = [name for name, category, _ in steps if name.endswith(".Deploy")]
        assert deployed == [f"Driftline-{env}-{part}.Deploy" for part in PARTS] + [
            f"Driftline-{env}-Access.Deploy"
        ]
        last_name, last_category, last_order = steps[-1]
        assert (last_name, last_category) == ("SmokeTest", "Build")
        assert last_order == max(order for _, _, order in steps)


def test_each_stage_deploys_into_its_own_account_through_its_bootstrap_role(
    template_json: dict[str, Any],
) -> None:
    accounts = {
        stage["env"]: stage["account"] for stage in cdk_context()["driftline"]["delivery"]["stages"]
    }
    assert len(set(accounts.values())) == 3
    for stage in pipeline_stages(template_json)[4:]:
        account = accounts[stage["Name"]]
        for action in stage["Actions"]:
            if action["ActionTypeId"]["Category"] != "Deploy":
                continue
            role = json.dumps(action["RoleArn"])
            assert f"cdk-hnb659fds-deploy-role-{account}-eu-west-1" in role
            assert f":iam::{account}:role/" in role


def test_artifacts_are_encrypted_with_a_rotating_customer_key_the_stage_accounts_may_use(
    template: Template, template_json: dict[str, Any]
) -> None:
    """`cross_account_keys=True`: the deploy roles of other accounts decrypt the artifacts."""
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    keys = [r for r in template_json["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    policy = json.dumps(keys[0]["Properties"]["KeyPolicy"])
    for stage in cdk_context()["driftline"]["delivery"]["stages"]:
        assert f"cdk-hnb659fds-deploy-role-{stage['account']}" in policy
    for resource in template_json["Resources"].values():
        if resource["Type"] == "AWS::CodePipeline::Pipeline":
            assert resource["Properties"]["ArtifactStore"]["EncryptionKey"]["Type"] == "KMS"


def test_artifacts_bucket_is_tls_only_versioned_access_logged_and_private(
    template: Template,
) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": {"DestinationBucketName": Match.any_value()},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_synth_step_runs_setup_fast_tests_every_env_synth_with_nag_and_checkov(
    template_json: dict[str, Any],
) -> None:
    projects = [
        r["Properties"]
        for r in template_json["Resources"].values()
        if r["Type"] == "AWS::CodeBuild::Project"
        and "make test-fast" in json.dumps(r["Properties"]["Source"].get("BuildSpec", ""))
    ]
    assert len(projects) == 1
    spec = json.loads(projects[0]["Source"]["BuildSpec"])
    assert spec["phases"]["install"]["commands"] == ["make setup"]
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11", "nodejs": "20"}
    assert spec["phases"]["build"]["commands"] == synth_commands()
    assert synth_commands()[:2] == ["make test-fast", "make synth"]
    assert "-c env=delivery" in synth_commands()[2]
    assert synth_commands()[-1] == "make checkov"
    assert spec["artifacts"]["base-directory"] == "cdk.out/delivery"


def test_pipeline_mutates_itself(template_json: dict[str, Any]) -> None:
    stage = next(s for s in pipeline_stages(template_json) if s["Name"] == "UpdatePipeline")
    assert [name for name, _, _ in actions(stage)] == ["SelfMutate"]


def test_smoke_step_assumes_only_its_stage_accounts_smoke_role_and_runs_make_smoke(
    template_json: dict[str, Any],
) -> None:
    resources = template_json["Resources"]
    for stage in cdk_context()["driftline"]["delivery"]["stages"]:
        env, account = stage["env"], stage["account"]
        role_arn = f"arn:aws:iam::{account}:role/driftline-{env}-smoke-test"
        project = next(
            r["Properties"]
            for r in resources.values()
            if r["Type"] == "AWS::CodeBuild::Project"
            and f"make smoke ENV={env}" in r["Properties"]["Source"].get("BuildSpec", "")
        )
        variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
        assert variables["SMOKE_ROLE_ARN"] == role_arn
        assume = [
            statement
            for r in resources.values()
            if r["Type"] == "AWS::IAM::Policy"
            for statement in r["Properties"]["PolicyDocument"]["Statement"]
            if statement["Action"] == "sts:AssumeRole" and statement["Resource"] == role_arn
        ]
        assert len(assume) == 1


def test_the_smoke_role_in_each_account_trusts_only_the_delivery_stacks_roles(
    delivery: tuple[DeliveryStack, Path],
) -> None:
    stack, _ = delivery
    delivery_account = cdk_context()["driftline"]["delivery"]["account"]
    for stage in stack.stages:
        access = Template.from_stack(stage.access)
        access.has_resource_properties(
            "AWS::IAM::Role",
            {
                "RoleName": f"driftline-{stage.env_name}-smoke-test",
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        Match.object_like(
                            {
                                "Condition": {
                                    "ArnLike": {
                                        "aws:PrincipalArn": Match.string_like_regexp(
                                            rf":iam::{delivery_account}:role/{DELIVERY_STACK}-\*$"
                                        )
                                    }
                                }
                            }
                        )
                    ]
                },
            },
        )
        policies = access.find_resources("AWS::IAM::Policy")
        smoke = json.dumps(next(p for name, p in policies.items() if name.startswith("SmokeTest")))
        for action in ("lambda:InvokeFunction", "lambda:GetAlias", "states:DescribeStateMachine"):
            assert action in smoke
        assert "dynamodb:" not in smoke and "s3:" not in smoke


def test_stage_stacks_keep_the_names_the_cli_looks_for(
    delivery: tuple[DeliveryStack, Path],
) -> None:
    stack, _ = delivery
    for stage in stack.stages:
        names = [s.stack_name for s in stage.stacks.all()]
        env = stage.env_name
        assert names == [f"Driftline-{env}-{part}" for part in sorted(PARTS, key=ORDER.index)]


def test_nag_reported_nothing_unacknowledged(delivery: tuple[DeliveryStack, Path]) -> None:
    report = json.loads((delivery[1] / "validation-report.json").read_text())
    assert [r for r in report["pluginReports"] if r["conclusion"] != "success"] == []


def delivery_context(**changes: Any) -> dict[str, Any]:
    context = cdk_context()
    context["driftline"]["delivery"].update(changes)
    return context


def test_a_stage_without_an_account_is_refused_on_one_line() -> None:
    context = delivery_context(stages=[{"env": "dev"}])
    with pytest.raises(ConfigError) as raised:
        load_delivery_config(context)
    message = str(raised.value)
    assert "\n" not in message
    assert message == (
        "invalid context value 'driftline.delivery.stages.0.account': stage 'dev' has no "
        "account (set it here or in 'driftline.envs.dev.account')"
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"stages": [{"env": "local", "account": "123456789012"}]},
            "'driftline.delivery.stages.0.env': env 'local' is the twin and cannot be a "
            "delivery stage",
        ),
        (
            {
                "stages": [
                    {"env": "prod", "account": "123456789012"},
                    {"env": "dev", "account": "123456789013"},
                ]
            },
            "stages must run in the order dev → staging → prod, got prod → dev",
        ),
        ({"connection_arn": "arn:aws:s3:::nope"}, "is not a CodeConnections connection ARN"),
        ({"repository": "no-owner"}, "'driftline.delivery.repository': 'no-owner' is not"),
        ({"account": "12"}, "'driftline.delivery.account': must be a 12-digit AWS account id"),
        ({"stages": []}, "'driftline.delivery.stages'"),
    ],
)
def test_bad_delivery_values_name_the_key(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid context value") as raised:
        load_delivery_config(delivery_context(**changes))
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_a_missing_delivery_section_is_one_line() -> None:
    context = cdk_context()
    del context["driftline"]["delivery"]
    with pytest.raises(ConfigError, match=r"'driftline.delivery' is missing from cdk.json"):
        load_delivery_config(context)


def test_stage_region_defaults_to_the_envs_region_and_prod_alone_needs_approval() -> None:
    config = load_delivery_config(cdk_context())
    assert [(s.name, s.region, s.manual_approval) for s in config.stages] == [
        ("dev", "eu-west-1", False),
        ("staging", "eu-west-1", False),
        ("prod", "eu-west-1", True),
    ]
    assert config.stages[2].env.training_backend.value == "sagemaker"


def test_model_promotion_runs_on_a_schedule_not_on_push_under_the_two_envs_roles(
    template: Template, template_json: dict[str, Any]
) -> None:
    resources = template_json["Resources"]
    template.has_resource_properties(
        "AWS::Events::Rule",
        {"ScheduleExpression": "rate(6 hours)", "State": "ENABLED"},
    )
    promotion = next(
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CodePipeline::Pipeline"
        and [s["Name"] for s in r["Properties"]["Stages"]] == ["Source", "Promote"]
    )
    source = promotion["Stages"][0]["Actions"][0]["Configuration"]
    assert source["DetectChanges"] is False
    spec = json.loads(
        next(
            r["Properties"]["Source"]["BuildSpec"]
            for r in resources.values()
            if r["Type"] == "AWS::CodeBuild::Project"
            and "models promote --auto" in r["Properties"]["Source"].get("BuildSpec", "")
        )
    )
    command = spec["phases"]["build"]["commands"][-1]
    assert "driftline models promote --auto --from staging --to prod --soak-hours 24" in command
    stages = {s["env"]: s["account"] for s in cdk_context()["driftline"]["delivery"]["stages"]}
    roles = [
        statement["Resource"]
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy"
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "sts:AssumeRole" and "model-promotion" in str(statement)
    ]
    assert roles == [
        [
            f"arn:aws:iam::{stages['staging']}:role/driftline-staging-model-promotion",
            f"arn:aws:iam::{stages['prod']}:role/driftline-prod-model-promotion",
        ]
    ]


def test_only_the_promotion_envs_get_a_promotion_role(
    delivery: tuple[DeliveryStack, Path],
) -> None:
    stack, _ = delivery
    with_role = {stage.env_name: stage.access.promotion_role is not None for stage in stack.stages}
    assert with_role == {"dev": False, "staging": True, "prod": True}
    prod = Template.from_stack(stack.stages[2].access)
    prod.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": [
                                    "cloudwatch:DescribeAlarmHistory",
                                    "cloudwatch:DescribeAlarms",
                                ],
                                "Resource": "*",
                            }
                        )
                    ]
                )
            }
        },
    )


def test_promotion_must_move_forward_between_stages() -> None:
    context = delivery_context(model_promotion={"from": "prod", "to": "staging"})
    with pytest.raises(ConfigError, match="models move forward, 'prod' → 'staging' does not"):
        load_delivery_config(context)
    context = delivery_context(model_promotion={"from": "staging", "to": "qa"})
    with pytest.raises(ConfigError, match=r"model_promotion.to': 'qa' is not a stage"):
        load_delivery_config(context)
