"""Section 5: aws-sdk task outputs as JSON (datetimes as ISO-8601 strings)."""

from __future__ import annotations

import importlib
from datetime import date, datetime
from typing import Any

from driftline.twin.adapters.base import iso, patch


def json_ready(value: Any) -> Any:
    """A boto3 response as Step Functions' JSON sees it: timestamps and bodies become strings."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if hasattr(value, "read") and callable(value.read):
        data = value.read()
        return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
    return value


def adapt_sfn_sdk_datetimes() -> None:
    """aws-sdk task results keep boto3's datetimes, so `describe_execution` answers HTTP 500.

    (`json.dumps` of the execution output fails.) Wraps the aws-sdk task's
    `_eval_service_task` so its result is JSON-ready before later states see it, as on AWS.
    """
    module = importlib.import_module(
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
        "state_task_service_aws_sdk"
    )
    task_class = module.StateTaskServiceAwsSdk
    evaluate = task_class._eval_service_task

    def eval_json_ready(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        evaluate(self, env, *args, **kwargs)
        env.stack.append(json_ready(env.stack.pop()))

    patch(task_class, "_eval_service_task", eval_json_ready)

    # The context object's `$$.Execution.StartTime` is an ISO-8601 string on AWS; moto passes
    # its datetime through, so a Pass state that copies it breaks `describe_execution` too.
    execution_module = importlib.import_module("moto.stepfunctions.parser.backend.execution")
    execution_class = execution_module.Execution
    start_details = execution_class.get_start_execution_details

    def iso_start_details(self: Any) -> Any:
        details = start_details(self)
        if isinstance(details.start_time, datetime):
            details.start_time = json_ready(details.start_time)
        return details

    patch(execution_class, "get_start_execution_details", iso_start_details)
