"""Section 3 of the adapters: EventBridge delivers to Step Functions targets, input
transformed like EventBridge does it.

On the bare `moto_server` of tests/twin/conftest.py (one per module, no stacks deployed).
"""

from __future__ import annotations

import json

import pytest

from driftline.twin.adapters import (
    render_input_template,
)
from tests.twin.moto_server import MotoServer, eventually, inline_function

pytestmark = [pytest.mark.twin]


NOTIFICATIONS_HANDLER = """
import json, urllib.request
import boto3

def handler(event, context):
    props = event["ResourceProperties"]
    status, reason = "SUCCESS", ""
    try:
        managed = props.get("Managed", "true").lower() == "true"  # CDK's handler does this
        config = props["NotificationConfiguration"] if event["RequestType"] != "Delete" else {}
        boto3.client("s3").put_bucket_notification_configuration(
            Bucket=props["BucketName"], NotificationConfiguration=config
        )
    except Exception as error:
        status, reason = "FAILED", str(error)
    body = json.dumps({
        "Status": status, "Reason": reason,
        "PhysicalResourceId": event["LogicalResourceId"],
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"], "Data": {"Managed": str(managed)},
    }).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT")
    urllib.request.urlopen(request).read()
"""


def test_s3_upload_starts_the_rules_state_machine_with_transformed_input(
    moto_server: MotoServer,
) -> None:
    role = {"Fn::GetAtt": ["Role", "Arn"]}
    outputs = moto_server.deploy(
        {
            "Resources": {
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
                "Datasets": {
                    "Type": "AWS::S3::Bucket",
                    "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
                },
                "NotificationsHandler": inline_function(NOTIFICATIONS_HANDLER, role),
                "Notifications": {
                    "Type": "Custom::S3BucketNotifications",
                    "Properties": {
                        "ServiceToken": {"Fn::GetAtt": ["NotificationsHandler", "Arn"]},
                        "BucketName": {"Ref": "Datasets"},
                        "NotificationConfiguration": {"EventBridgeConfiguration": {}},
                        "Managed": True,
                    },
                },
                "Training": {
                    "Type": "AWS::StepFunctions::StateMachine",
                    "Properties": {
                        "RoleArn": role,
                        "DefinitionString": json.dumps(
                            {"StartAt": "Got", "States": {"Got": {"Type": "Pass", "End": True}}}
                        ),
                    },
                },
                "OnUpload": {
                    "Type": "AWS::Events::Rule",
                    "DependsOn": "Notifications",
                    "Properties": {
                        "EventPattern": {
                            "source": ["aws.s3"],
                            "detail-type": ["Object Created"],
                            "detail": {"bucket": {"name": [{"Ref": "Datasets"}]}},
                        },
                        "Targets": [
                            {
                                "Id": "train",
                                "Arn": {"Ref": "Training"},
                                "RoleArn": role,
                                "InputTransformer": {
                                    "InputPathsMap": {
                                        "bucket": "$.detail.bucket.name",
                                        "key": "$.detail.object.key",
                                        "version": "$.detail.object.version-id",
                                    },
                                    "InputTemplate": '{"dataset": {"bucket": <bucket>, '
                                    '"key": <key>, "version": <version>}, '
                                    '"note": "new <key> (<aws.events.rule-name>)"}',
                                },
                            }
                        ],
                    },
                },
            },
            "Outputs": {
                "Bucket": {"Value": {"Ref": "Datasets"}},
                "Machine": {"Value": {"Ref": "Training"}},
                "Managed": {"Value": {"Fn::GetAtt": ["Notifications", "Managed"]}},
            },
        }
    )
    assert outputs["Managed"] == "True"  # the handler saw "true", the string CloudFormation sends

    put = moto_server.client("s3").put_object(
        Bucket=outputs["Bucket"], Key="in/day 1.csv", Body=b"x"
    )

    sfn = moto_server.client("stepfunctions")
    executions = eventually(
        lambda: sfn.list_executions(stateMachineArn=outputs["Machine"])["executions"]
    )
    execution = moto_server.finished(executions[0]["executionArn"])
    document = json.loads(execution["input"])
    assert document["dataset"] == {
        "bucket": outputs["Bucket"],
        "key": "in/day 1.csv",
        "version": put["VersionId"],
    }
    assert document["note"].startswith("new in/day 1.csv (")


def test_input_template_quotes_values_like_eventbridge() -> None:
    values = {"key": 'a "quoted" name', "size": 3, "tags": ["x"], "gone": None}

    as_json = render_input_template(
        '{"k": <key>, "s": <size>, "t": <tags>, "g": <gone>, "msg": "<key> is <size>"}', values
    )
    as_text = render_input_template("<key> has <size> bytes", values)

    assert json.loads(as_json) == {
        "k": 'a "quoted" name',
        "s": 3,
        "t": ["x"],
        "g": None,
        "msg": 'a "quoted" name is 3',
    }
    assert as_text == 'a "quoted" name has 3 bytes'
