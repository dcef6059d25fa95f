"""Alarms on the machinery itself, and the dashboard that shows the whole loop.

Pipeline failures and endpoint throttles each page the alerts topic. Events no function
handled (dead-letter queues) and failing asynchronously invoked functions are alarmed by
`UndeliveredEvents` in the stack that owns them; the endpoints' error and p99 latency alarms
belong to the serving stack (CodeDeploy rolls back on them). Those are shown here, not repeated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.constructs.drift_monitoring import DriftMonitoring, construct_name
from infra.constructs.undelivered import at_least_one
from pipelines.metric_names import (
    CORRUPT_CAPTURES,
    DRIFT_SAMPLES,
    DRIFT_SCORE,
    DRIFTED_SHARE,
    FEATURE_PSI,
    FEEDBACK_SAMPLES,
    MAX_FEATURE_PSI,
    MODEL_ERRORS,
    NAMESPACE,
    PREDICTION_PSI,
)

OPERATIONS_PERIOD = Duration.minutes(5)


@dataclass(frozen=True)
class MonitoredEndpoint:
    """One model's serving function (its `live` alias) and the alarms the serving stack owns."""

    model: str
    function: lambda_.IFunction
    alarms: Sequence[cloudwatch.IAlarm]


class OperationalAlarms(Construct):
    """Failures of the pipeline and throttled endpoints."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.IStateMachine,
        endpoints: Sequence[MonitoredEndpoint],
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.pipeline_failures = at_least_one(
            self,
            "PipelineFailures",
            state_machine.metric_failed(period=OPERATIONS_PERIOD, statistic="Sum"),
            "Training pipeline: at least one execution failed (5 minutes)",
        )
        self.endpoint_throttles = {
            endpoint.model: at_least_one(
                self,
                f"{construct_name(endpoint.model)}Throttles",
                endpoint.function.metric_throttles(period=OPERATIONS_PERIOD, statistic="Sum"),
                f"{endpoint.model} endpoint: requests throttled (live alias, 5 minutes)",
            )
            for endpoint in endpoints
        }
        for alarm in self.all():
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))

    def all(self) -> list[cloudwatch.Alarm]:
        return [
            self.pipeline_failures,
            *self.endpoint_throttles.values(),
        ]


def dashboard_rows(
    *,
    state_machine: sfn.IStateMachine,
    dead_letter_queues: Mapping[str, sqs.IQueue],
    drift: DriftMonitoring,
    endpoints: Sequence[MonitoredEndpoint],
    alarms: Sequence[cloudwatch.IAlarm],
) -> list[list[cloudwatch.IWidget]]:
    """Pipeline runs, drift per model and feature, endpoint latency and errors, alarm states."""
    period = OPERATIONS_PERIOD
    rows: list[list[cloudwatch.IWidget]] = [
        [
            cloudwatch.GraphWidget(
                title="Pipeline runs",
                left=[
                    state_machine.metric_started(period=period, statistic="Sum"),
                    state_machine.metric_succeeded(period=period, statistic="Sum"),
                    state_machine.metric_failed(period=period, statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues",
                left=[
                    queue.metric_approximate_number_of_messages_visible(
                        period=period, statistic="Maximum", label=name
                    )
                    for name, queue in dead_letter_queues.items()
                ],
                width=12,
            ),
        ]
    ]
    thresholds = drift.thresholds
    check = drift.check_period
    for model, model_alarms in drift.model_alarms.items():
        search = (
            f'SEARCH(\'{{{NAMESPACE},Feature,Model}} MetricName="{FEATURE_PSI}" '
            f"Model=\"{model}\"', 'Maximum', {int(check.to_seconds())})"
        )
        live_metrics: list[cloudwatch.IMetric] = []
        live_thresholds: list[cloudwatch.HorizontalAnnotation] = []
        if model_alarms.concept is not None:
            live_metrics.append(model_alarms.concept.metric)
            live_thresholds.append(model_alarms.concept.to_annotation())
        rows.append(
            [
                cloudwatch.GraphWidget(
                    title=f"Drift: {model}",
                    left=[
                        drift.drift_metric(model, MAX_FEATURE_PSI),
                        drift.drift_metric(model, PREDICTION_PSI),
                    ],
                    right=[drift.drift_metric(model, DRIFTED_SHARE)],
                    left_annotations=[
                        cloudwatch.HorizontalAnnotation(value=thresholds.psi, label="PSI threshold")
                    ],
                    right_annotations=[
                        cloudwatch.HorizontalAnnotation(
                            value=thresholds.drifted_share,
                            label="drifted share threshold",
                            color=cloudwatch.Color.RED,
                        )
                    ],
                    right_y_axis=cloudwatch.YAxisProps(min=0, max=1, label="drifted share"),
                    width=8,
                ),
                cloudwatch.GraphWidget(
                    title=f"Feature PSI: {model}",
                    left=[
                        cloudwatch.MathExpression(
                            expression=search, using_metrics={}, label="", period=check
                        )
                    ],
                    left_annotations=[
                        cloudwatch.HorizontalAnnotation(value=thresholds.psi, label="PSI threshold")
                    ],
                    width=8,
                ),
                cloudwatch.GraphWidget(
                    title=f"Samples and live metrics: {model}",
                    left=[
                        drift.drift_metric(model, DRIFT_SAMPLES),
                        cloudwatch.Metric(
                            namespace=NAMESPACE,
                            metric_name=FEEDBACK_SAMPLES,
                            dimensions_map={"Model": model},
                            statistic="Sum",
                            period=check,
                        ),
                        # Capture lines the drift monitor could not read (skipped, counted).
                        cloudwatch.Metric(
                            namespace=NAMESPACE,
                            metric_name=CORRUPT_CAPTURES,
                            dimensions_map={"Model": model},
                            statistic="Sum",
                            period=check,
                        ),
                    ],
                    right=live_metrics,
                    right_annotations=live_thresholds,
                    width=8,
                ),
            ]
        )
    rows.append(
        [
            cloudwatch.GraphWidget(
                title="Drift score per model (fleet drift alarm; 1 = threshold)",
                left=[
                    cloudwatch.MathExpression(
                        expression=(
                            f"SEARCH('{{{NAMESPACE},Model}} MetricName=\"{DRIFT_SCORE}\"', "
                            f"'Maximum', {int(check.to_seconds())})"
                        ),
                        using_metrics={},
                        label="",
                        period=check,
                    )
                ],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=1.0, label="threshold")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Model errors per model version (shared endpoint)",
                left=[
                    cloudwatch.MathExpression(
                        expression=(
                            f"SEARCH('{{{NAMESPACE},Model,ModelVersion}} "
                            f"MetricName=\"{MODEL_ERRORS}\"', 'Sum', 60)"
                        ),
                        using_metrics={},
                        label="",
                        period=Duration.minutes(1),
                    )
                ],
                width=12,
            ),
        ]
    )
    for endpoint in endpoints:
        fn = endpoint.function
        rows.append(
            [
                cloudwatch.GraphWidget(
                    title=f"Endpoint latency: {endpoint.model}",
                    left=[
                        fn.metric_duration(period=Duration.minutes(1), statistic="p50"),
                        fn.metric_duration(period=Duration.minutes(1), statistic="p99"),
                    ],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title=f"Endpoint invocations and errors: {endpoint.model}",
                    left=[fn.metric_invocations(period=Duration.minutes(1), statistic="Sum")],
                    right=[
                        fn.metric_errors(period=Duration.minutes(1), statistic="Sum"),
                        fn.metric_throttles(period=Duration.minutes(1), statistic="Sum"),
                    ],
                    width=12,
                ),
            ]
        )
    rows.append(
        [
            cloudwatch.AlarmStatusWidget(
                title="Alarm states",
                alarms=list(alarms),
                width=24,
                height=max(3, 2 + len(alarms) // 4),
            )
        ]
    )
    return rows
