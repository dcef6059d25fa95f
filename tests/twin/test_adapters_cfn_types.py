"""Section 7 of the adapters: the resource types moto's CloudFormation lacks are created
from templates.

On the bare `moto_server` of tests/twin/conftest.py (one per module, no stacks deployed).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from driftline.twin.adapters import (
    unsupported_resource_types,
)
from tests.twin.moto_server import MotoServer, eventually, inline_function, live_url

pytestmark = [pytest.mark.twin]


SUBSCRIBER_HANDLER = """
import json
import boto3

def handler(event, context):
    record = event["Records"][0]["Sns"]
    key = record.get("Subject") or "direct"
    boto3.client("s3").put_object(Bucket=record["Message"], Key=key, Body=json.dumps(record))
    return {"version": context.invoked_function_arn}
"""


def test_missing_resource_types_are_created_from_templates(moto_server: MotoServer) -> None:
    journal = f"journal-{uuid.uuid4().hex[:8]}"
    role = {"Fn::GetAtt": ["Role", "Arn"]}
    template = {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
            "Journal": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": journal}},
            "DenyAll": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "Journal"},
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Deny",
                                "Principal": {"AWS": "*"},
                                "Action": "s3:*",
                                "Resource": "*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ],
                    },
                },
            },
            "Fn": inline_function(SUBSCRIBER_HANDLER, role),
            **live_url(),
            "Topic": {"Type": "AWS::SNS::Topic"},
            "TopicPolicy": {
                "Type": "AWS::SNS::TopicPolicy",
                "Properties": {
                    "Topics": [{"Ref": "Topic"}],
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "sns:Publish",
                                "Resource": {"Ref": "Topic"},
                            }
                        ],
                    },
                },
            },
            "ToLambda": {
                "Type": "AWS::SNS::Subscription",
                "Properties": {
                    "TopicArn": {"Ref": "Topic"},
                    "Protocol": "lambda",
                    "Endpoint": {"Ref": "Live"},
                },
            },
            "Dlq": {"Type": "AWS::SQS::Queue"},
            "DlqPolicy": {
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {
                    "Queues": [{"Ref": "Dlq"}],
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "sqs:SendMessage",
                                "Resource": {"Fn::GetAtt": ["Dlq", "Arn"]},
                            }
                        ],
                    },
                },
            },
            "Nightly": {
                "Type": "AWS::Scheduler::Schedule",
                "Properties": {
                    "ScheduleExpression": "rate(1 day)",
                    "FlexibleTimeWindow": {"Mode": "OFF"},
                    "Target": {"Arn": {"Ref": "Live"}, "RoleArn": role, "Input": "{}"},
                },
            },
        },
        "Outputs": {
            "Alias": {"Value": {"Ref": "Live"}},
            "Version": {"Value": {"Fn::GetAtt": ["V1", "Version"]}},
            "Url": {"Value": {"Fn::GetAtt": ["Url", "FunctionUrl"]}},
            "Topic": {"Value": {"Ref": "Topic"}},
            "Dlq": {"Value": {"Ref": "Dlq"}},
            "Schedule": {"Value": {"Ref": "Nightly"}},
            "ScheduleArn": {"Value": {"Fn::GetAtt": ["Nightly", "Arn"]}},
        },
    }
    assert unsupported_resource_types(template) == []
    assert unsupported_resource_types(
        {
            "Resources": {
                "A": {"Type": "AWS::CodeDeploy::Application"},
                "B": {"Type": "AWS::CDK::Metadata"},
            }
        }
    ) == ["AWS::CodeDeploy::Application"]

    outputs = moto_server.deploy(template)

    assert outputs["Version"] == "1" and outputs["Alias"].endswith(":live")
    assert outputs["Url"].startswith(f"http://127.0.0.1:{moto_server.port}/_lambda-url/")  # served
    schedule = moto_server.client("scheduler").get_schedule(Name=outputs["Schedule"])
    assert (
        schedule["Arn"] == outputs["ScheduleArn"] and schedule["Target"]["Arn"] == outputs["Alias"]
    )
    s3 = moto_server.client("s3")
    assert "SecureTransport" in s3.get_bucket_policy(Bucket=journal)["Policy"]  # stored...
    sns = moto_server.client("sns")
    policy = sns.get_topic_attributes(TopicArn=outputs["Topic"])["Attributes"]["Policy"]
    assert "events.amazonaws.com" in policy
    queue = moto_server.client("sqs").get_queue_attributes(
        QueueUrl=outputs["Dlq"], AttributeNames=["Policy"]
    )
    assert "sqs:SendMessage" in queue["Attributes"]["Policy"]
    invoked = moto_server.client("lambda").invoke(
        FunctionName=outputs["Alias"],
        Payload=json.dumps({"Records": [{"Sns": {"Message": journal}}]}),
    )
    assert json.loads(invoked["Payload"].read())["version"] == outputs["Alias"]

    sns.publish(TopicArn=outputs["Topic"], Message=journal, Subject="drift")

    def delivered() -> bytes | None:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=journal).get("Contents", [])]
        return (
            s3.get_object(Bucket=journal, Key="drift")["Body"].read() if "drift" in keys else None
        )

    # ...and not enforced: the subscriber could write to the bucket despite its Deny statement.
    body = eventually(delivered)
    record = json.loads(body)
    assert record["TopicArn"] == outputs["Topic"] and record["Subject"] == "drift"


def _key_template(description: str) -> dict[str, Any]:
    return {
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "Description": description,
                    "EnableKeyRotation": True,
                    "KeyPolicy": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": "*"},
                                "Action": "kms:*",
                                "Resource": "*",
                            }
                        ],
                    },
                    "Tags": [{"Key": "driftline:env", "Value": "local"}],
                },
            },
        },
        "Outputs": {"Key": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}}},
    }


def test_tagged_kms_key_is_created_and_updated_in_place(moto_server: MotoServer) -> None:
    outputs = moto_server.deploy(_key_template("first"))
    kms, cloudformation = moto_server.client("kms"), moto_server.client("cloudformation")

    cloudformation.update_stack(
        StackName=outputs["StackName"], TemplateBody=json.dumps(_key_template("second"))
    )

    stack = cloudformation.describe_stacks(StackName=outputs["StackName"])["Stacks"][0]
    assert stack["Outputs"][0]["OutputValue"] == outputs["Key"]  # same key, not dropped
    key = kms.describe_key(KeyId=outputs["Key"])["KeyMetadata"]
    assert key["Description"] == "second"
    assert kms.list_resource_tags(KeyId=outputs["Key"])["Tags"] == [
        {"TagKey": "driftline:env", "TagValue": "local"}
    ]
    assert (
        json.loads(kms.get_key_policy(KeyId=outputs["Key"], PolicyName="default")["Policy"])[
            "Version"
        ]
        == "2012-10-17"
    )
