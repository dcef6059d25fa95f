"""`driftline outputs` reads CloudFormation stack outputs through the standard boto3 chain."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from driftline.cli import main
from tests.unit.conftest import moto_account

pytestmark = pytest.mark.unit

TEMPLATE = {
    "Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}},
    "Outputs": {"DatasetsBucketName": {"Value": {"Ref": "Bucket"}}},
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with moto_account(monkeypatch):
        yield


def test_outputs_json_is_one_object_of_name_to_value(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("cloudformation").create_stack(
        StackName="Driftline-dev-Data", TemplateBody=json.dumps(TEMPLATE)
    )

    code = main(["outputs", "--env", "dev", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(document) == {"DatasetsBucketName"}
    assert document["DatasetsBucketName"] in [
        b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]
    ]


def test_outputs_table_lists_each_output(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("cloudformation").create_stack(
        StackName="Driftline-dev-Data", TemplateBody=json.dumps(TEMPLATE)
    )
    assert main(["outputs", "--env", "dev"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["OUTPUT", "VALUE"]
    assert lines[1].startswith("DatasetsBucketName")


def test_outputs_for_a_missing_stack_is_one_line_and_nonzero(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["outputs", "--env", "staging", "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == (
        "driftline: stack Driftline-staging-Data does not exist: deploy env 'staging' first\n"
    )


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fly"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("driftline: argument COMMAND: invalid choice")
