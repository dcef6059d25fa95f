"""S3 buckets with the protections every Driftline bucket shares."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.checkov import skip_check


class AccessLogBucket(Construct):
    """Target of S3 server access logs. S3 log delivery supports only SSE-S3 on the target."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy,
        retention: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            versioned=True,
            removal_policy=removal_policy,
            auto_delete_objects=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=retention,
                    noncurrent_version_expiration=Duration.days(1),
                )
            ],
        )
        skip_check(
            self.bucket,
            "CKV_AWS_18",
            "This bucket is the target of the other buckets' server access logs; logging it "
            "would log its own log deliveries",
        )


class SecureBucket(Construct):
    """Versioned, KMS-encrypted, TLS-only, private, access-logged; old versions expire."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey,
        access_logs: s3.IBucket,
        access_log_prefix: str,
        removal_policy: RemovalPolicy,
        noncurrent_version_expiry: Duration,
        event_bridge_enabled: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=encryption_key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            event_bridge_enabled=event_bridge_enabled,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=access_log_prefix,
            removal_policy=removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=noncurrent_version_expiry,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )
