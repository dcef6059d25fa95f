"""Nothing an asynchronously invoked function fails on is lost, and its failures page on-call.

The functions are found from the templates, not listed: any function that EventBridge, S3 or
SNS may invoke (a Lambda permission for that service) runs asynchronously. Each must send what
it fails on, after Lambda's retries, to a KMS-encrypted TLS-only queue of its own stack (the
same queue its rules dead-letter into), and have an Errors alarm on the alerts topic.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import SynthesizedEnv

pytestmark = pytest.mark.infra

ASYNC_PRINCIPALS = {"events.amazonaws.com", "s3.amazonaws.com", "sns.amazonaws.com"}
STACKS = ("Data", "Pipeline", "Serving", "Monitoring")


def of_type(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == type_name}


def logical_id(reference: Any) -> str | None:
    """The resource a `Ref` or `Fn::GetAtt` points at, in the same template."""
    if isinstance(reference, dict):
        if "Ref" in reference:
            return str(reference["Ref"])
        if "Fn::GetAtt" in reference:
            return str(reference["Fn::GetAtt"][0])
    return None


def asynchronously_invoked(template: dict[str, Any]) -> set[str]:
    return {
        function
        for props in of_type(template, "AWS::Lambda::Permission").values()
        if props.get("Principal") in ASYNC_PRINCIPALS
        and (function := logical_id(props["FunctionName"])) is not None
    }


@pytest.mark.parametrize("part", STACKS)
def test_every_asynchronously_invoked_function_keeps_what_it_fails_on(
    each_env: SynthesizedEnv, part: str
) -> None:
    template = each_env.template_json(part)
    functions = asynchronously_invoked(template)
    expected = {"Pipeline": 1, "Monitoring": 4}.get(part, 0)  # StartRun; monitor, notifier,
    assert len(functions) == expected  # feedback and retrain. Serving and Data have none.
    configs = {
        logical_id(props["FunctionName"]): props
        for props in of_type(template, "AWS::Lambda::EventInvokeConfig").values()
    }
    queues = of_type(template, "AWS::SQS::Queue")
    for function in functions:
        config = configs[function]
        assert config["Qualifier"] == "$LATEST"
        assert config["MaximumRetryAttempts"] == 2
        queue = logical_id(config["DestinationConfig"]["OnFailure"]["Destination"])
        assert queue in queues, (function, queue)


@pytest.mark.parametrize("part", ["Pipeline", "Monitoring"])
def test_the_queue_is_encrypted_with_the_data_key_tls_only_and_its_rules_dead_letter_there(
    each_env: SynthesizedEnv, part: str
) -> None:
    template = each_env.template_json(part)
    (queue_id, queue), *others = of_type(template, "AWS::SQS::Queue").items()
    assert others == []  # one queue per stack: rules and destinations alike
    assert "DataKey" in queue["KmsMasterKeyId"]["Fn::ImportValue"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    (policy,) = [
        p
        for p in of_type(template, "AWS::SQS::QueuePolicy").values()
        if logical_id(p["Queues"][0]) == queue_id
    ]
    assert {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
    } in policy["PolicyDocument"]["Statement"]
    lambda_targets = [
        target
        for rule in of_type(template, "AWS::Events::Rule").values()
        for target in rule.get("Targets", [])
        if logical_id(target["Arn"]) in asynchronously_invoked(template)
    ]
    assert lambda_targets
    for target in lambda_targets:
        assert logical_id(target["DeadLetterConfig"]["Arn"]) == queue_id


@pytest.mark.parametrize("part", ["Pipeline", "Monitoring"])
def test_errors_and_waiting_events_page_the_alerts_topic(
    each_env: SynthesizedEnv, part: str
) -> None:
    template = each_env.template_json(part)
    alarms = of_type(template, "AWS::CloudWatch::Alarm").values()
    errors = {
        logical_id(alarm["Dimensions"][0]["Value"]): alarm
        for alarm in alarms
        if alarm.get("MetricName") == "Errors"
    }
    (queue_id,) = of_type(template, "AWS::SQS::Queue")
    (waiting,) = [
        alarm
        for alarm in alarms
        if alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and logical_id(alarm["Dimensions"][0]["Value"]) == queue_id
    ]
    for function in asynchronously_invoked(template):
        alarm = errors[function]
        assert (alarm["Namespace"], alarm["Statistic"]) == ("AWS/Lambda", "Sum")
        assert alarm["Dimensions"][0]["Name"] == "FunctionName"
    for alarm in [waiting, *errors.values()]:
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        (action,) = alarm["AlarmActions"]
        assert "AlertsTopic" in action["Fn::ImportValue"]
