"""EventBridge "Object Created" → one training execution per dataset object version."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared.settings import start_run_settings
from pipelines.uploads import DatasetUpload, IgnoredUpload, parse_upload

logger = Logger(service="driftline")


@cache
def stepfunctions() -> Any:
    return boto3.client("stepfunctions")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    upload = parse_upload(event)
    if isinstance(upload, IgnoredUpload):
        logger.info("upload ignored", extra={"key": upload.key, "reason": upload.reason})
        return {"started": False, "reason": upload.reason}
    return start(upload, trigger="upload")


def start(upload: DatasetUpload, *, trigger: str) -> dict[str, Any]:
    requested_at = datetime.now(UTC).isoformat()
    client = stepfunctions()
    try:
        response = client.start_execution(
            stateMachineArn=start_run_settings().state_machine_arn,
            name=upload.execution_name,
            input=json.dumps(upload.to_input(trigger=trigger, requested_at=requested_at)),
        )
    except client.exceptions.ExecutionAlreadyExists:
        logger.info(
            "duplicate delivery: run already started",
            extra={"execution": upload.execution_name, "version_id": upload.version_id},
        )
        return {"started": False, "reason": "duplicate", "execution_name": upload.execution_name}
    logger.info("run started", extra={"execution_arn": response["executionArn"]})
    return {"started": True, "execution_arn": response["executionArn"]}
