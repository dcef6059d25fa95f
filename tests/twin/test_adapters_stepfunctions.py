"""Sections 2 and 5 of the adapters: CloudFormation's state machines execute, and aws-sdk
task outputs with datetimes are described as JSON.

On the bare `moto_server` of tests/twin/conftest.py (one per module, no stacks deployed).
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.twin.moto_server import MotoServer, inline_function

pytestmark = [pytest.mark.twin]


WORKER_HANDLER = """
def handler(event, context):
    if event.get("mode") == "raise":
        raise RuntimeError("asked to fail")
    return {"n": event.get("n", 0) + 1}
"""


def test_state_machine_created_by_cloudformation_executes_every_state_kind(
    moto_server: MotoServer,
) -> None:
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "Inc",
                        "States": {
                            "Inc": {
                                "Type": "Task",
                                "Resource": "arn:aws:states:::lambda:invoke",
                                "Parameters": {"FunctionName": "${Fn}", "Payload": {"n": 1}},
                                "OutputPath": "$.Payload",
                                "End": True,
                            }
                        },
                    },
                    {
                        "StartAt": "Const",
                        "States": {"Const": {"Type": "Pass", "Result": "constant", "End": True}},
                    },
                ],
                "ResultPath": "$.parallel",
                "Next": "Each",
            },
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Item",
                    "States": {"Item": {"Type": "Task", "Resource": "${FnArn}", "End": True}},
                },
                "ResultPath": "$.mapped",
                "Next": "Tag",
            },
            "Tag": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:s3:putObjectTagging",
                "Parameters": {
                    "Bucket": "${Bucket}",
                    "Key": "data.csv",
                    "Tagging": {"TagSet": [{"Key": "validated", "Value": "true"}]},
                },
                "ResultPath": None,
                "Next": "Record",
            },
            "Record": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {"TableName": "${Table}", "Item": {"pk": {"S.$": "$.id"}}},
                "ResultPath": None,
                "Next": "Notify",
            },
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": "${Topic}", "Message.$": "$.id"},
                "ResultPath": "$.published",
                "Next": "Flaky",
            },
            "Flaky": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "${Fn}", "Payload": {"mode": "raise"}},
                "Retry": [
                    {"ErrorEquals": ["RuntimeError"], "MaxAttempts": 1, "IntervalSeconds": 1}
                ],
                "Catch": [
                    {
                        "ErrorEquals": ["States.TaskFailed"],
                        "ResultPath": "$.caught",
                        "Next": "Which",
                    }
                ],
                "Next": "Unreachable",
            },
            "Which": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.caught.Error", "StringEquals": "RuntimeError", "Next": "Done"}
                ],
                "Default": "Unreachable",
            },
            "Unreachable": {"Type": "Fail", "Error": "WrongPath"},
            "Done": {"Type": "Succeed"},
        },
    }
    role = {"Fn::GetAtt": ["Role", "Arn"]}
    outputs = moto_server.deploy(
        {
            "Resources": {
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
                "Data": {"Type": "AWS::S3::Bucket"},
                "Runs": {
                    "Type": "AWS::DynamoDB::Table",
                    "Properties": {
                        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                        "BillingMode": "PAY_PER_REQUEST",
                    },
                },
                "Events": {"Type": "AWS::SNS::Topic"},
                "Fn": inline_function(WORKER_HANDLER, role),
                "Machine": {
                    "Type": "AWS::StepFunctions::StateMachine",
                    "Properties": {
                        "RoleArn": role,
                        "DefinitionString": json.dumps(definition),
                        "DefinitionSubstitutions": {
                            "Fn": {"Ref": "Fn"},
                            "FnArn": {"Fn::GetAtt": ["Fn", "Arn"]},
                            "Bucket": {"Ref": "Data"},
                            "Table": {"Ref": "Runs"},
                            "Topic": {"Ref": "Events"},
                        },
                    },
                },
            },
            "Outputs": {
                "Machine": {"Value": {"Ref": "Machine"}},
                "Bucket": {"Value": {"Ref": "Data"}},
                "Table": {"Value": {"Ref": "Runs"}},
            },
        }
    )
    moto_server.client("s3").put_object(
        Bucket=outputs["Bucket"], Key="data.csv", Body=b"a,b\n1,2\n"
    )

    execution = moto_server.run(outputs["Machine"], {"id": "run-1", "items": [{"n": 1}, {"n": 5}]})

    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["parallel"] == [{"n": 2}, "constant"]
    assert output["mapped"] == [{"n": 2}, {"n": 6}]
    assert output["caught"]["Error"] == "RuntimeError"
    assert "MessageId" in output["published"]
    tags = moto_server.client("s3").get_object_tagging(Bucket=outputs["Bucket"], Key="data.csv")
    assert tags["TagSet"] == [{"Key": "validated", "Value": "true"}]
    item = moto_server.client("dynamodb").get_item(
        TableName=outputs["Table"], Key={"pk": {"S": "run-1"}}
    )
    assert "Item" in item
    failures = [
        e for e in moto_server.history(execution["executionArn"]) if e["type"] == "TaskFailed"
    ]
    assert len(failures) == 2  # the first attempt and the one retry


def test_executions_started_without_a_name_each_get_their_own(moto_server: MotoServer) -> None:
    arn = moto_server.state_machine(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    )
    sfn = moto_server.client("stepfunctions")

    first = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    second = sfn.start_execution(stateMachineArn=arn)["executionArn"]

    assert first != second and not first.endswith(":None")


def test_aws_sdk_task_output_with_datetimes_is_described_as_iso_strings(
    moto_server: MotoServer,
) -> None:
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    moto_server.client("s3").put_object(Bucket=bucket, Key="k", Body=b"x")
    arn = moto_server.state_machine(
        {
            "StartAt": "Head",
            "States": {
                "Head": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:s3:headObject",
                    "Parameters": {"Bucket": bucket, "Key": "k"},
                    "End": True,
                }
            },
        },
    )

    execution = moto_server.run(arn, {})

    assert execution["status"] == "SUCCEEDED"
    modified = json.loads(execution["output"])["LastModified"]
    assert modified.endswith("Z") and modified[:4].isdigit() and "T" in modified
