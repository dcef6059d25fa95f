"""Fixtures shared by the unit tests: one way to open an emulated AWS account (moto).

`moto_account(patch, variables)` is the account a test module or test works in: fake
credentials and the function's `DRIFTLINE_*` variables set, AWS_ENDPOINT_URL/AWS_PROFILE unset,
the functions' cached clients and settings forgotten on the way in and out. `registry_tables`
and `buckets` create what the constructs create (pk/sk tables, versioned buckets) in it.
`emulated_aws` is such an account for a whole module, with nothing in it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest


@dataclass(frozen=True)
class FakeLambdaContext:
    """The fields Powertools' `inject_lambda_context` reads from the runtime's context object."""

    function_name: str = "driftline-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:driftline-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


# Duck-typed like the runtime's context object, which the handlers are annotated with.
LAMBDA_CONTEXT: Any = FakeLambdaContext()

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def pipeline_variables(
    *,
    datasets: str,
    artifacts: str,
    datasets_table: str,
    runs_table: str,
    models_table: str = "driftline-models",
    git_sha: str = "0123abc",
    **more: str,
) -> dict[str, str]:
    """The training pipeline functions' environment as the construct sets it (`more` adds
    variables: DRIFTLINE_<NAME> for each name=value)."""
    return {
        "DRIFTLINE_ENV": "local",
        "DRIFTLINE_GIT_SHA": git_sha,
        "DRIFTLINE_APPROVAL_POLICY": "automatic",
        "DRIFTLINE_DATASETS_BUCKET": datasets,
        "DRIFTLINE_ARTIFACTS_BUCKET": artifacts,
        "DRIFTLINE_DATASETS_TABLE": datasets_table,
        "DRIFTLINE_RUNS_TABLE": runs_table,
        "DRIFTLINE_MODELS_TABLE": models_table,
        "DRIFTLINE_ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
        "POWERTOOLS_SERVICE_NAME": "driftline",
        **{f"DRIFTLINE_{name.upper()}": value for name, value in more.items()},
    }


def _forget_cached_clients_and_settings(*, clients_too: bool = True) -> None:
    from functions.shared import clients, settings

    if clients_too:
        clients.reset()
    for cached in (
        settings.get_settings,
        settings.start_run_settings,
        settings.drift_monitor_settings,
        settings.notifier_settings,
        settings.feedback_settings,
        settings.retrain_settings,
    ):
        cached.cache_clear()


@contextmanager
def moto_account(
    patch: pytest.MonkeyPatch,
    variables: Mapping[str, str] | None = None,
    *,
    execute_state_machines: bool = False,
    keep_clients: bool = False,
) -> Iterator[None]:
    """An emulated account reached through the default credential chain (see the module doc);
    `execute_state_machines` runs Step Functions definitions with moto's ASL interpreter;
    `keep_clients` keeps the functions' cached clients (moto intercepts any client while a mock
    runs, so a module whose tests each open an account may reuse them: creating them is slow)."""
    from moto import mock_aws

    for name, value in {**FAKE_CREDENTIALS, **(variables or {})}.items():
        patch.setenv(name, value)
    patch.delenv("AWS_ENDPOINT_URL", raising=False)
    patch.delenv("AWS_PROFILE", raising=False)
    _forget_cached_clients_and_settings(clients_too=not keep_clients)
    config = {"stepfunctions": {"execute_state_machine": True}} if execute_state_machines else None
    try:
        with mock_aws(config=config):  # type: ignore[arg-type]
            yield
    finally:
        _forget_cached_clients_and_settings(clients_too=not keep_clients)


REGISTRY_TABLE: dict[str, Any] = {
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
"""How the registry tables are keyed (pk, sk strings; on demand)."""


def registry_tables(*names: str) -> None:
    """Tables keyed like the registry tables, created through the API."""
    dynamodb = boto3.client("dynamodb")
    for name in names:
        dynamodb.create_table(TableName=name, **REGISTRY_TABLE)


def registry_table_resource(name: str) -> dict[str, Any]:
    """An AWS::DynamoDB::Table keyed like the registry tables, for a stack the CLI reads."""
    return {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": name, **REGISTRY_TABLE}}


def emptied(bucket_names: tuple[str, ...] = (), table_names: tuple[str, ...] = ()) -> None:
    """Delete every object version of the buckets and every item of the tables."""
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    for bucket in bucket_names:
        listing = s3.list_object_versions(Bucket=bucket)
        for version in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
    for table in table_names:
        for item in dynamodb.scan(TableName=table)["Items"]:
            dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})


def buckets(*names: str, versioned: bool = True) -> None:
    """Buckets like the Data stack's (versioned unless told otherwise)."""
    s3 = boto3.client("s3")
    for name in names:
        s3.create_bucket(Bucket=name)
        if versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


@pytest.fixture
def atomic_items(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's item writes atomic, as DynamoDB's are.

    moto applies an UpdateItem as read-modify-write in Python, so two threads can both read
    counter 0; the real service applies each item write atomically. One lock per write call
    restores that guarantee and nothing more: code that read a value and wrote it back in two
    calls would still race and fail these tests.
    """
    from moto.dynamodb.responses import DynamoHandler

    # The lock spans the whole request, response included: moto builds ReturnValues from the
    # live item after the backend call, so locking only the backend still lets a second writer
    # change the item before the first response is serialized.
    lock = threading.Lock()
    for name in ("update_item", "put_item"):
        original = getattr(DynamoHandler, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoHandler, name, locked)


@pytest.fixture(scope="module")
def emulated_aws() -> Iterator[None]:
    """One in-process moto account for a test module, reached through the default chain.

    Step Functions executions run their definitions (moto's ASL interpreter), so a test can
    start an execution of a small state machine and read a real history. Nothing points at a
    real account: credentials are fake and AWS_ENDPOINT_URL/AWS_PROFILE are unset meanwhile.
    """
    with pytest.MonkeyPatch.context() as patch, moto_account(patch, execute_state_machines=True):
        yield


DATASETS, ARTIFACTS = "driftline-datasets", "driftline-artifacts"
RUNS, MODELS, ENDPOINTS = "driftline-runs", "driftline-models", "driftline-endpoints"
GIT_SHA = "0123abc"


@pytest.fixture
def pipeline_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The training pipeline's account: its buckets, registry tables and functions' variables,
    with scikit-learn's OpenMP threads capped at one. Shared by the tests that run its steps."""
    import sklearn.ensemble  # noqa: F401  (loads OpenMP now, so threadpool_limits can cap it)
    from threadpoolctl import threadpool_limits

    variables = pipeline_variables(
        datasets=DATASETS,
        artifacts=ARTIFACTS,
        datasets_table="driftline-datasets",
        runs_table=RUNS,
        models_table=MODELS,
        git_sha=GIT_SHA,
        endpoints_table=ENDPOINTS,
    )
    with moto_account(monkeypatch, variables), threadpool_limits(limits=1):
        buckets(DATASETS, ARTIFACTS)
        registry_tables(RUNS, MODELS, ENDPOINTS)
        yield


MODEL_PACKAGE_GROUP = "driftline-test-breast-cancer"
MODEL_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/driftline:latest"


def use_model_package_group(patch: pytest.MonkeyPatch, dataset: str) -> None:
    """From now on, Register also records `dataset`'s versions as SageMaker model packages
    (what a deployed env does; the twin registers in DynamoDB only)."""
    from functions.shared.settings import get_settings

    patch.setenv("DRIFTLINE_MODEL_PACKAGE_GROUPS", json.dumps({dataset: MODEL_PACKAGE_GROUP}))
    patch.setenv("DRIFTLINE_MODEL_IMAGE_URI", MODEL_IMAGE)
    get_settings.cache_clear()
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=MODEL_PACKAGE_GROUP)
