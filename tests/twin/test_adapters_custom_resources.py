"""Section 4 of the adapters: CDK custom resources run create, update and delete
synchronously, with CloudFormation's string properties.

On the bare `moto_server` of tests/twin/conftest.py (one per module, no stacks deployed).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.twin.moto_server import MotoServer, inline_function

pytestmark = [pytest.mark.twin]


RECORDING_PROVIDER = """
import json, urllib.request
import boto3

def handler(event, context):
    props = event["ResourceProperties"]
    boto3.client("s3").put_object(
        Bucket=props["Journal"], Key=event["RequestId"],
        Body=json.dumps({"type": event["RequestType"], "props": props,
                         "old": event.get("OldResourceProperties")}),
    )
    status = "FAILED" if props.get("Fail") == "true" else "SUCCESS"
    body = json.dumps({
        "Status": status, "Reason": "provider said no",
        "PhysicalResourceId": "thing-" + props["Size"],
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": {"Kinds": ",".join(type(v).__name__ for v in props.values())},
    }).encode()
    urllib.request.urlopen(urllib.request.Request(event["ResponseURL"], data=body, method="PUT"))
"""


def _provider_template(journal: str, size: int, fail: bool = False) -> dict[str, Any]:
    return {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
            "Provider": inline_function(RECORDING_PROVIDER, {"Fn::GetAtt": ["Role", "Arn"]}),
            "Thing": {
                "Type": "Custom::Thing",
                "Properties": {
                    "ServiceToken": {"Fn::GetAtt": ["Provider", "Arn"]},
                    "Journal": journal,
                    "Size": size,
                    "Enabled": True,
                    "Fail": fail,
                },
            },
            "After": {"Type": "AWS::SNS::Topic", "DependsOn": "Thing"},
        },
        "Outputs": {
            "Thing": {"Value": {"Ref": "Thing"}},
            "Kinds": {"Value": {"Fn::GetAtt": ["Thing", "Kinds"]}},
        },
    }


def test_custom_resource_runs_create_update_delete_with_string_properties(
    moto_server: MotoServer,
) -> None:
    s3, cloudformation = moto_server.client("s3"), moto_server.client("cloudformation")
    journal = f"journal-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=journal)

    outputs = moto_server.deploy(_provider_template(journal, 3))
    assert outputs["Thing"] == "thing-3"  # the provider's PhysicalResourceId, at once
    assert outputs["Kinds"] == "str,str,str,str,str"  # True and 3 arrived as "true" and "3"

    stack = outputs["StackName"]
    cloudformation.update_stack(
        StackName=stack, TemplateBody=json.dumps(_provider_template(journal, 4))
    )
    cloudformation.delete_stack(StackName=stack)

    requests = [
        json.loads(s3.get_object(Bucket=journal, Key=o["Key"])["Body"].read())
        for o in s3.list_objects_v2(Bucket=journal)["Contents"]
    ]
    by_type = {r["type"]: r for r in requests}
    assert sorted(by_type) == ["Create", "Delete", "Update"]
    assert by_type["Create"]["props"]["Enabled"] == "true"
    assert by_type["Update"]["old"]["Size"] == "3" and by_type["Update"]["props"]["Size"] == "4"


def test_failed_custom_resource_fails_the_stack_naming_the_resource(
    moto_server: MotoServer,
) -> None:
    journal = f"journal-{uuid.uuid4().hex[:8]}"
    moto_server.client("s3").create_bucket(Bucket=journal)
    cloudformation = moto_server.client("cloudformation")

    with pytest.raises(
        cloudformation.exceptions.ClientError, match=r"Thing \(Custom::Thing\).*provider said no"
    ):
        cloudformation.create_stack(
            StackName=f"t-{uuid.uuid4().hex[:8]}",
            TemplateBody=json.dumps(_provider_template(journal, 1, fail=True)),
        )
