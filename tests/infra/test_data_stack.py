"""Security properties of every stateful resource, per environment."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aws_cdk.assertions import Match

from tests.infra.conftest import SynthesizedEnv

pytestmark = pytest.mark.infra

BUCKETS = ("DatasetsBucket9EEDBE5A", "ArtifactsBucket88671897")
TABLES = (
    "RegistryDatasetsTableF544E464",
    "RegistryRunsTableFF49FFA8",
    "RegistryModelsTableC40210B8",
    "RegistryEndpointsTableF771785D",
)
STATEFUL_LOGICAL_IDS = (
    "DataKey2A0DE9E6",
    "AccessLogsBucketCD784A59",
    *BUCKETS,
    *TABLES,
    "AlertsTopicCF7C81C9",
)


def test_stateful_logical_ids_are_pinned_so_a_refactor_cannot_replace_data(
    each_env: SynthesizedEnv,
) -> None:
    resources = each_env.template_json("Data")["Resources"]
    missing = [logical_id for logical_id in STATEFUL_LOGICAL_IDS if logical_id not in resources]
    assert missing == []


@pytest.mark.parametrize("bucket_id", BUCKETS)
def test_data_buckets_are_versioned_kms_encrypted_private_and_logged(
    each_env: SynthesizedEnv, bucket_id: str
) -> None:
    properties = each_env.resource("Data", bucket_id)["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"] == {
        "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey2A0DE9E6", "Arn"]},
        "SSEAlgorithm": "aws:kms",
    }
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": "AccessLogsBucketCD784A59"
    }


@pytest.mark.parametrize("bucket_id", (*BUCKETS, "AccessLogsBucketCD784A59"))
def test_every_bucket_policy_denies_requests_without_tls(
    each_env: SynthesizedEnv, bucket_id: str
) -> None:
    each_env.template("Data").has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": bucket_id},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_datasets_bucket_sends_events_to_eventbridge(each_env: SynthesizedEnv) -> None:
    each_env.template("Data").has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "BucketName": {"Ref": "DatasetsBucket9EEDBE5A"},
            "NotificationConfiguration": {"EventBridgeConfiguration": {}},
        },
    )


def test_noncurrent_versions_expire_after_the_configured_days(
    synth_env: Callable[[str], SynthesizedEnv],
) -> None:
    expiry = {
        name: synth_env(name).resource("Data", "DatasetsBucket9EEDBE5A")["Properties"][
            "LifecycleConfiguration"
        ]["Rules"][0]["NoncurrentVersionExpiration"]["NoncurrentDays"]
        for name in ("local", "dev", "staging", "prod")
    }
    assert expiry == {"local": 7, "dev": 30, "staging": 90, "prod": 365}


def test_data_key_rotates(each_env: SynthesizedEnv) -> None:
    assert each_env.resource("Data", "DataKey2A0DE9E6")["Properties"]["EnableKeyRotation"] is True


@pytest.mark.parametrize("table_id", TABLES)
def test_registry_tables_have_pitr_and_customer_key_encryption(
    each_env: SynthesizedEnv, table_id: str
) -> None:
    properties = each_env.resource("Data", table_id)["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {
        "KMSMasterKeyId": {"Fn::GetAtt": ["DataKey2A0DE9E6", "Arn"]},
        "SSEEnabled": True,
        "SSEType": "KMS",
    }


def test_alerts_topic_is_encrypted_and_tls_only(each_env: SynthesizedEnv) -> None:
    template = each_env.template("Data")
    template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": ["DataKey2A0DE9E6", "Arn"]}}
    )
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
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


def test_alarm_emails_from_config_become_email_subscriptions(
    synth_env: Callable[[str], SynthesizedEnv],
) -> None:
    synth_env("prod").template("Data").has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": "mlops-oncall@example.com",
            "TopicArn": {"Ref": "AlertsTopicCF7C81C9"},
        },
    )
    synth_env("local").template("Data").resource_count_is("AWS::SNS::Subscription", 0)


@pytest.mark.parametrize(
    ("env_name", "deletion_policy", "protected"),
    [
        ("local", "Delete", False),
        ("dev", "Delete", False),
        ("staging", "Retain", True),
        ("prod", "Retain", True),
    ],
)
def test_stateful_resources_are_retained_and_protected_only_outside_sandboxes(
    synth_env: Callable[[str], SynthesizedEnv], env_name: str, deletion_policy: str, protected: bool
) -> None:
    env = synth_env(env_name)
    policies = {
        env.resource("Data", logical_id).get("DeletionPolicy")
        for logical_id in STATEFUL_LOGICAL_IDS
    }
    assert policies == {deletion_policy}
    assert env.termination_protection("Data") is protected
    assert env.termination_protection("Pipeline") is False


def test_tables_refuse_deletion_where_data_is_retained(
    synth_env: Callable[[str], SynthesizedEnv],
) -> None:
    assert (
        synth_env("prod").resource("Data", TABLES[0])["Properties"]["DeletionProtectionEnabled"]
        is True
    )
    assert synth_env("dev").resource("Data", TABLES[0])["Properties"].get(
        "DeletionProtectionEnabled"
    ) in (
        None,
        False,
    )


def test_outputs_name_what_users_and_tools_need(each_env: SynthesizedEnv) -> None:
    outputs = each_env.template_json("Data")["Outputs"]
    assert {"DatasetsBucketName", "ArtifactsBucketName", "AlertsTopicArn"} <= set(outputs)
    assert "DashboardName" in each_env.template_json("Monitoring")["Outputs"]


def test_local_env_has_no_bootstrap_version_rule_and_a_fixed_account(
    synth_env: Callable[[str], SynthesizedEnv],
) -> None:
    local = synth_env("local")
    assert "CheckBootstrapVersion" not in local.template_json("Data").get("Rules", {})
    assert (
        local.manifest["artifacts"]["Driftline-local-Data"]["environment"]
        == "aws://000000000000/us-east-1"
    )
    assert "CheckBootstrapVersion" in synth_env("prod").template_json("Data")["Rules"]
