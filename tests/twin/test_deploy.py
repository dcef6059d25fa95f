"""The `local` env's templates, unmodified, deploy onto the twin and their outputs work."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driftline.aws import STACK_PARTS, stack_name
from driftline.twin.assets import ImageFolders, all_assets
from driftline.twin.deployer import DeployError, deploy, plan_stacks
from tests.twin.conftest import RunningTwin

pytestmark = [pytest.mark.twin, pytest.mark.slow]

WriteAssembly = Callable[[dict[str, dict[str, Any]]], Path]


def _template_of(twin: RunningTwin, part: str) -> dict[str, Any]:
    template: dict[str, Any] = json.loads(
        (twin.cdk_out / f"{stack_name('local', part)}.template.json").read_text()
    )
    return template


@pytest.mark.parametrize("part", STACK_PARTS)
def test_every_local_stack_reaches_create_complete(twin: RunningTwin, part: str) -> None:
    name = stack_name("local", part)
    if not _template_of(twin, part).get("Resources"):
        pytest.skip(
            f"{name} has no resources yet; cdk deploy skips empty stacks and so does the twin"
        )

    stack = twin.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]

    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_data_stack_deploys_before_the_stacks_that_import_its_exports(twin: RunningTwin) -> None:
    order = [plan.name for plan in plan_stacks(twin.cdk_out)]

    for plan in plan_stacks(twin.cdk_out):
        for dependency in plan.depends_on:
            assert order.index(dependency) < order.index(plan.name)
    assert order[0] == stack_name("local", "Data")


def test_outputs_name_the_resources_people_use(twin: RunningTwin) -> None:
    for key in ("DatasetsBucketName", "ArtifactsBucketName", "AlertsTopicArn", "DashboardName"):
        assert twin.outputs.get(key), f"output {key} missing from {sorted(twin.outputs)}"


def test_datasets_bucket_from_the_outputs_stores_an_upload(twin: RunningTwin) -> None:
    s3 = twin.client("s3")
    bucket = twin.outputs["DatasetsBucketName"]

    s3.put_object(Bucket=bucket, Key="smoke/rows.csv", Body=b"a,b\n1,2\n")

    assert s3.get_object(Bucket=bucket, Key="smoke/rows.csv")["Body"].read() == b"a,b\n1,2\n"


def test_registry_tables_from_the_outputs_exist(twin: RunningTwin) -> None:
    table_outputs = ("DatasetsTableName", "RunsTableName", "ModelsTableName", "EndpointsTableName")
    missing = [key for key in table_outputs if key not in twin.outputs]
    assert not missing, f"outputs {missing} missing: their tables were not created on the twin"

    tables = twin.client("dynamodb").list_tables()["TableNames"]

    assert {twin.outputs[key] for key in table_outputs} <= set(tables)


def test_alerts_topic_and_dashboard_from_the_outputs_answer(twin: RunningTwin) -> None:
    published = twin.client("sns").publish(TopicArn=twin.outputs["AlertsTopicArn"], Message="smoke")
    dashboard = twin.client("cloudwatch").get_dashboard(DashboardName=twin.outputs["DashboardName"])

    assert published["MessageId"]
    assert dashboard["DashboardName"] == twin.outputs["DashboardName"]


def test_image_assets_are_pushed_and_map_back_to_their_staged_folder(twin: RunningTwin) -> None:
    _, images = all_assets(twin.cdk_out)
    if not images:
        pytest.skip("the local assembly has no container-image assets yet")
    ecr = twin.client("ecr")
    folders = ImageFolders(twin.cdk_out)

    for image in images:
        found = ecr.describe_images(
            repositoryName=image.repository, imageIds=[{"imageTag": image.tag}]
        )
        assert found["imageDetails"], image.uri
        assert folders(image.uri) == image.directory


def test_redeploying_the_same_assembly_changes_nothing(twin: RunningTwin) -> None:
    result = deploy(twin.cdk_out, endpoint=twin.endpoint)

    assert {stack.action for stack in result.stacks} <= {"unchanged", "skipped"}
    assert not result.assets.uploaded_files and not result.assets.pushed_images


def test_resource_the_twin_cannot_create_fails_the_deploy_naming_it(
    twin: RunningTwin, assembly: WriteAssembly
) -> None:
    broken = assembly(
        {
            "TwinTestBroken": {
                "Resources": {
                    "Fine": {"Type": "AWS::SQS::Queue"},
                    "Broken": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": "soon"}},
                }
            }
        }
    )

    with pytest.raises(DeployError) as failure:
        deploy(broken, endpoint=twin.endpoint, timeout=30)

    message = str(failure.value)
    assert "TwinTestBroken CREATE_FAILED" in message
    assert "Broken (AWS::SQS::Queue)" in message
    assert "soon" in message
    assert "\n" not in message


def test_custom_resource_that_never_answers_ends_the_deploy_naming_it(
    twin: RunningTwin, assembly: WriteAssembly
) -> None:
    silent = assembly(
        {
            "TwinTestSilent": {
                "Resources": {
                    "Role": {
                        "Type": "AWS::IAM::Role",
                        "Properties": {
                            "AssumeRolePolicyDocument": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Principal": {"Service": "lambda.amazonaws.com"},
                                        "Action": "sts:AssumeRole",
                                    }
                                ],
                            }
                        },
                    },
                    "Handler": {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Code": {"ZipFile": "def handler(event, context):\n    return None\n"},
                            "Handler": "index.handler",
                            "Runtime": "python3.11",
                            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                        },
                    },
                    "Silent": {
                        "Type": "Custom::Silent",
                        "Properties": {"ServiceToken": {"Fn::GetAtt": ["Handler", "Arn"]}},
                    },
                }
            }
        }
    )
    started = time.monotonic()

    with pytest.raises(DeployError, match=r"Silent \(Custom::Silent\)"):
        deploy(silent, endpoint=twin.endpoint, timeout=3)

    assert time.monotonic() - started < 30


def test_unsupported_resource_types_are_reported_not_hidden(
    twin: RunningTwin, assembly: WriteAssembly
) -> None:
    stack = assembly(
        {
            "TwinTestUnsupported": {
                "Resources": {
                    "Queue": {"Type": "AWS::SQS::Queue"},
                    "Fleet": {"Type": "AWS::GameLift::Fleet", "Properties": {"Name": "f"}},
                }
            }
        }
    )

    result = deploy(stack, endpoint=twin.endpoint)

    assert result.stacks[0].status == "CREATE_COMPLETE"
    assert result.unsupported == {"AWS::GameLift::Fleet": ["TwinTestUnsupported/Fleet"]}


def test_update_that_adds_an_export_lets_a_new_stack_import_it(
    twin: RunningTwin, assembly: WriteAssembly
) -> None:
    first = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    deploy(assembly({"TwinTestExporter": first}), endpoint=twin.endpoint)
    exporting = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}, "Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "QueueArn": {
                "Value": {"Fn::GetAtt": ["Queue", "Arn"]},
                "Export": {"Name": "TwinTestQueueArn"},
            }
        },
    }
    importing = {
        "Resources": {"Other": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"Imported": {"Value": {"Fn::ImportValue": "TwinTestQueueArn"}}},
    }

    result = deploy(
        assembly({"TwinTestExporter": exporting, "TwinTestImporter": importing}),
        endpoint=twin.endpoint,
    )

    assert [(stack.action, stack.status) for stack in result.stacks] == [
        ("updated", "UPDATE_COMPLETE"),
        ("created", "CREATE_COMPLETE"),
    ]
    assert result.stacks[1].outputs["Imported"] == result.stacks[0].outputs["QueueArn"]
