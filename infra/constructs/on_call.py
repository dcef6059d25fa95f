"""The dashboard rows on-call reads first: pipeline steps, run outcomes, errors, where to look.

- each pipeline step's Lambda errors and longest duration (a slow Train is the usual first sign
  of a data set outgrowing its function);
- run outcomes counted from the state machine's execution log (Logs Insights): succeeded,
  `DatasetRejected` (the upload was quarantined), `GateRejected`, `PipelineFailed`;
- the latest ERROR lines of the pipeline functions (Logs Insights over their log groups);
- where each model's latest drift report is, and the runbook (docs/runbook.md: one section per
  alarm with what it means, what to check and which command).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from pipelines.keys import latest_report_key

RUNBOOK = "docs/runbook.md"
STEP_PERIOD = Duration.minutes(5)

# Every execution ends in exactly one of these (ExecutionSucceeded has no error: "Succeeded").
RUN_OUTCOMES_QUERY = (
    "filter type in ['ExecutionSucceeded', 'ExecutionFailed', 'ExecutionTimedOut', "
    "'ExecutionAborted']",
    "stats count(*) as runs by coalesce(details.error, type) as outcome",
    "sort runs desc",
)
FUNCTION_ERRORS_QUERY = (
    "fields @timestamp, @log, coalesce(message, @message) as line, run_id",
    "filter level = 'ERROR' or @message like /Task timed out|Runtime\\.|Traceback/",
    "sort @timestamp desc",
    "limit 50",
)


def on_call_rows(
    scope: Construct,
    *,
    env_name: str,
    pipeline_functions: Mapping[str, lambda_.IFunction],
    execution_logs: logs.ILogGroup,
    artifacts_bucket: s3.IBucket,
    models: Sequence[str],
) -> list[list[cloudwatch.IWidget]]:
    steps = sorted(pipeline_functions.items())
    region = Stack.of(scope).region
    bucket = artifacts_bucket.bucket_name
    reports = "\n".join(
        f"* **{model}**: `s3://{bucket}/{latest_report_key(model)}` "
        f"([open](https://{region}.console.aws.amazon.com/s3/object/{bucket}"
        f"?region={region}&prefix={latest_report_key(model)})), or "
        f"`driftline drift status --model {model} --env {env_name}`"
        for model in models
    )
    markdown = (
        "## Where to look\n"
        f"**Runbook**: `{RUNBOOK}` in the Driftline repository, one section per alarm on this "
        "dashboard (what it means, what to check, which `driftline` command).\n\n"
        "**Latest drift report** (JSON; the HTML report sits beside it, its `html_uri`):\n"
        f"{reports or '* no model has its own drift alarms yet'}\n"
        f"* any other model: `s3://{bucket}/reports/drift/<model>/latest.json`\n\n"
        f"Runs: `driftline runs list --env {env_name}`; one run: `driftline runs show RUN`, "
        "its logs: `driftline runs logs RUN`."
    )
    log_groups = [
        function.log_group.log_group_name
        for _, function in steps
        if isinstance(function, lambda_.Function)
    ]
    return [
        [
            cloudwatch.GraphWidget(
                title="Pipeline step errors",
                left=[
                    function.metric_errors(period=STEP_PERIOD, statistic="Sum", label=name)
                    for name, function in steps
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Pipeline step duration (longest, ms)",
                left=[
                    function.metric_duration(period=STEP_PERIOD, statistic="Maximum", label=name)
                    for name, function in steps
                ],
                width=12,
            ),
        ],
        [
            cloudwatch.LogQueryWidget(
                title="Run outcomes (DatasetRejected = quarantined upload, GateRejected)",
                log_group_names=[execution_logs.log_group_name],
                query_lines=list(RUN_OUTCOMES_QUERY),
                view=cloudwatch.LogQueryVisualizationType.BAR,
                width=8,
                height=6,
            ),
            cloudwatch.LogQueryWidget(
                title="Pipeline function errors (latest 50)",
                log_group_names=log_groups,
                query_lines=list(FUNCTION_ERRORS_QUERY),
                view=cloudwatch.LogQueryVisualizationType.TABLE,
                width=10,
                height=6,
            ),
            cloudwatch.TextWidget(markdown=markdown, width=6, height=6),
        ],
    ]
