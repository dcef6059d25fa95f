"""Drift monitoring and the closed loop: monitor, alarms per model, notifier, feedback, retrain.

    schedule (rate N min) ─┐
    capture object lands ──┴─► drift monitor ─► reports/drift/<model>/ + EMF metrics
                                                   │ MaxFeaturePSI, DriftedShare, PredictionPSI
                                                   ▼
    labels in feedback/ ─► feedback ─► Live<Metric>    per-model alarms ─► composite drift alarm
                                           │                                  │ (SNS action)
                                           ▼                                  ▼
                                 concept-drift alarm ──► EventBridge ──► retrain (cooldown) ─►
                                                                   └──► drift notifier ─► SNS
                                                                        (features + report)

Models shipped in `models/` get the alarm set above, wired at synth. Every other model (a
dataset uploaded with its config, served by the shared endpoint) is watched by one fleet drift
alarm instead, so a new model needs no stack change: a CloudWatch Metrics Insights alarm over
`SELECT MAX(DriftScore) ... GROUP BY Model` (the monitor's largest drift statistic as a multiple
of its threshold), where every model is a contributor judged on its own. Each contributor that
goes to ALARM emits its own "CloudWatch Alarm Contributor State Change" event naming the model,
even while another model keeps the alarm in ALARM, and those events drive the same notifier
and retrain functions. (Metric math over `SEARCH` cannot back an alarm, and an alarm per model
made from the registry at deploy time would need a redeploy for every new model.)

Alarm periods follow the drift check schedule; a drift alarm fires when one of the last two
periods breaches (a check landing just after a period boundary must not make it flap) and
treats missing data (no check, or too few rows to publish) as not breaching.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import Schedules
from infra.constructs.artifact_access import MONITORING_ACCESS
from infra.constructs.functions import DriftlineFunction
from infra.constructs.training_pipeline import PipelineResources
from infra.constructs.undelivered import UndeliveredEvents
from pipelines.drift_thresholds import DriftThresholdConfig
from pipelines.keys import CAPTURE_PREFIX, FEEDBACK_PREFIX, MODEL_CONFIGS_PREFIX, latest_report_key
from pipelines.metric_names import (
    DRIFT_SCORE,
    DRIFTED_SHARE,
    MAX_FEATURE_PSI,
    NAMESPACE,
    PREDICTION_PSI,
)
from pipelines.model_config import ModelConfigError, load_model_config
from pipelines.monitoring import LiveMetricAlarm, live_metric_alarm

DRIFT_WINDOW_MINUTES = 60
CAPTURE_CHECK_INTERVAL_SECONDS = 60
FEEDBACK_MIN_SAMPLES = 30
FEEDBACK_LOOKBACK_DAYS = 7
LIVE_METRIC_PERIOD = Duration.hours(1)
MAX_EVALUATION_SECONDS = 24 * 60 * 60
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
CONTRIBUTOR_STATE_CHANGE = "CloudWatch Alarm Contributor State Change"


@dataclass(frozen=True)
class MonitoredModel:
    """A model the loop watches; `live_alarm` is None when its config gates on nothing."""

    name: str
    live_alarm: LiveMetricAlarm | None


def monitored_models(names: Sequence[str], models_dir: Path) -> tuple[MonitoredModel, ...]:
    """The shipped model configs of `names` (read at synth, like the endpoint list).

    A name without a config still gets drift alarms (they need no config); the concept-drift
    alarm needs the gate threshold of the config's primary metric.
    """
    found = []
    for name in sorted(set(names)):
        path = models_dir / f"{name}.yaml"
        alarm = None
        if path.is_file():
            try:
                alarm = live_metric_alarm(load_model_config(path))
            except ModelConfigError as error:
                raise ValueError(f"cannot monitor model {name}: {error}") from None
        found.append(MonitoredModel(name=name, live_alarm=alarm))
    return tuple(found)


def construct_name(model: str) -> str:
    """`breast_cancer` → `BreastCancer`: construct ids per model."""
    parts = "".join(ch if ch.isalnum() else " " for ch in model).split()
    return "".join(part[:1].upper() + part[1:] for part in parts)


@dataclass(frozen=True)
class MonitoringResources(PipelineResources):
    """What monitoring needs from the Data and Pipeline stacks: the pipeline's, and the pipeline."""

    state_machine: sfn.IStateMachine

    @classmethod
    def of(
        cls, data: PipelineResources, *, state_machine: sfn.IStateMachine
    ) -> MonitoringResources:
        return cls(**vars(data), state_machine=state_machine)


@dataclass(frozen=True)
class ModelAlarms:
    feature_psi: cloudwatch.Alarm
    drifted_share: cloudwatch.Alarm
    prediction_psi: cloudwatch.Alarm
    drift: cloudwatch.CompositeAlarm
    concept: cloudwatch.Alarm | None

    def all(self) -> list[cloudwatch.IAlarm]:
        alarms: list[cloudwatch.IAlarm] = [
            self.drift,
            self.feature_psi,
            self.drifted_share,
            self.prediction_psi,
        ]
        return alarms + ([self.concept] if self.concept is not None else [])


class DriftMonitoring(Construct):
    """The monitoring functions, the rules that invoke them and the alarms per model."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        resources: MonitoringResources,
        models: Sequence[MonitoredModel],
        thresholds: DriftThresholdConfig,
        schedules: Schedules,
        env_name: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.thresholds = thresholds
        self.schedules = schedules
        self.check_period = Duration.minutes(schedules.drift_check_minutes)
        topic = resources.alerts_topic
        self.functions = self._functions(
            resources, thresholds, schedules, env_name, log_retention, removal_policy
        )
        monitor, notifier, feedback, retrain = (
            self.functions["drift_monitor"],
            self.functions["drift_notifier"],
            self.functions["feedback"],
            self.functions["retrain"],
        )

        # Every function here runs on EventBridge's (asynchronous) invocations: an event that
        # no function handled waits in this queue, and each function's errors page on-call.
        self.undelivered = UndeliveredEvents(
            self,
            "DeadLetters",
            purpose="monitoring events",
            key=resources.key,
            topic=topic,
            rule_retry_attempts=2,
            max_event_age=Duration.hours(1),
        )
        for name, function in self.functions.items():
            self.undelivered.guard(name, function)
        target = self.undelivered.target

        self.schedule_rule = events.Rule(
            self,
            "DriftSchedule",
            description="Check every deployed model for drift",
            schedule=events.Schedule.rate(self.check_period),
            targets=[target(monitor, events.RuleTargetInput.from_object({"trigger": "schedule"}))],
        )
        self.capture_rule = events.Rule(
            self,
            "OnCapture",
            description="Check a model for drift when a capture object lands",
            event_pattern=_object_created(resources.artifacts_bucket, CAPTURE_PREFIX),
            targets=[
                target(
                    monitor,
                    events.RuleTargetInput.from_object(
                        {
                            "trigger": "capture",
                            "key": events.EventField.from_path("$.detail.object.key"),
                        }
                    ),
                )
            ],
        )
        self.feedback_rule = events.Rule(
            self,
            "OnFeedback",
            description="Grade captured predictions when ground-truth labels are uploaded",
            event_pattern=_object_created(resources.datasets_bucket, FEEDBACK_PREFIX),
            targets=[target(feedback)],
        )

        self.model_alarms: dict[str, ModelAlarms] = {}
        self.notify_rules: dict[str, events.Rule] = {}
        self.retrain_rules: dict[str, events.Rule] = {}
        self.scheduled_retrain_rules: dict[str, events.Rule] = {}
        for model in models:
            scope_ = Construct(self, construct_name(model.name))
            alarms = self._alarms(scope_, model, topic)
            self.model_alarms[model.name] = alarms
            self.notify_rules[model.name] = events.Rule(
                scope_,
                "NotifyDrift",
                description=f"Name the drifted features of {model.name} when it drifts",
                event_pattern=_alarm_went_to_alarm([alarms.drift]),
                targets=[
                    target(
                        notifier,
                        _notifier_input(model.name),
                    )
                ],
            )
            watched: list[cloudwatch.IAlarm] = [alarms.drift]
            if alarms.concept is not None:
                watched.append(alarms.concept)
            self.retrain_rules[model.name] = events.Rule(
                scope_,
                "RetrainOnAlarm",
                description=f"Retrain {model.name} when it drifts or its live metric degrades",
                event_pattern=_alarm_went_to_alarm(watched),
                targets=[
                    target(
                        retrain,
                        _retrain_input(model.name),
                    )
                ],
            )
            if schedules.scheduled_retrain_days is not None:
                self.scheduled_retrain_rules[model.name] = events.Rule(
                    scope_,
                    "ScheduledRetrain",
                    description=f"Retrain {model.name} on its env's schedule",
                    schedule=events.Schedule.rate(Duration.days(schedules.scheduled_retrain_days)),
                    targets=[
                        target(
                            retrain,
                            events.RuleTargetInput.from_object(
                                {"model": model.name, "cause": "schedule"}
                            ),
                        )
                    ],
                )

        self.fleet_drift_alarm = self._fleet_alarm([model.name for model in models], topic)
        model_of_contributor = events.EventField.from_path(
            "$.detail.alarmContributor.attributes.Model"
        )
        self.fleet_notify_rule = events.Rule(
            self,
            "NotifyFleetDrift",
            description="Name the drifted features of any model the fleet drift alarm flags",
            event_pattern=_contributor_went_to_alarm(self.fleet_drift_alarm),
            targets=[
                target(
                    notifier,
                    _notifier_input(model_of_contributor),
                )
            ],
        )
        self.fleet_retrain_rule = events.Rule(
            self,
            "RetrainOnFleetDrift",
            description="Retrain any model the fleet drift alarm flags",
            event_pattern=_contributor_went_to_alarm(self.fleet_drift_alarm),
            targets=[
                target(
                    retrain,
                    _retrain_input(model_of_contributor),
                )
            ],
        )

    def _fleet_alarm(self, own_alarms: Sequence[str], topic: sns.ITopic) -> cloudwatch.Alarm:
        """One alarm for every model without alarms of its own, a contributor per model."""
        excluded = "".join(f" AND Model != '{name}'" for name in sorted(own_alarms))
        where = f" WHERE{excluded.removeprefix(' AND')}" if excluded else ""
        period_s = int(self.check_period.to_seconds())
        # Model names are checked in the Serving stack (letters, digits, _.-): no quoting issue.
        statement = f'SELECT MAX({DRIFT_SCORE}) FROM SCHEMA("{NAMESPACE}", Model)'  # noqa: S608
        query = cloudwatch.MathExpression(
            expression=f"{statement}{where} GROUP BY Model",
            period=self.check_period,
            using_metrics={},
            label="drift score per model (1 = threshold)",
        )
        alarm = query.create_alarm(
            self,
            "FleetDriftAlarm",
            alarm_description=(
                "A model without alarms of its own drifted: its largest drift statistic is over "
                "its threshold (DriftScore > 1); see reports/drift/<model>/latest.json"
            ),
            threshold=1.0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2 if 2 * period_s <= MAX_EVALUATION_SECONDS else 1,
            datapoints_to_alarm=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        alarm.add_ok_action(cloudwatch_actions.SnsAction(topic))
        return alarm

    # -- functions ----------------------------------------------------------------------------

    def _functions(
        self,
        resources: MonitoringResources,
        thresholds: DriftThresholdConfig,
        schedules: Schedules,
        env_name: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> dict[str, lambda_.IFunction]:
        tables, topic = resources.tables, resources.alerts_topic
        artifacts, datasets = resources.artifacts_bucket, resources.datasets_bucket
        common = {
            "DRIFTLINE_ENV": env_name,
            "DRIFTLINE_ARTIFACTS_BUCKET": artifacts.bucket_name,
            "DRIFTLINE_ALERTS_TOPIC_ARN": topic.topic_arn,
        }
        functions_scope = Construct(self, "Functions")

        def function(
            name: str,
            description: str,
            environment: Mapping[str, str | int | float],
            *,
            memory_mb: int,
            seconds: int,
        ) -> lambda_.IFunction:
            return DriftlineFunction(
                functions_scope,
                name,
                handler_module="".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip(
                    "_"
                ),
                description=description,
                environment={**common, **environment_of(environment)},
                log_retention=log_retention,
                log_key=resources.key,
                removal_policy=removal_policy,
                memory_mb=memory_mb,
                timeout_seconds=seconds,
            ).function

        monitor = function(
            "DriftMonitor",
            "Compare deployed models' captured traffic with their training baselines",
            {
                "DRIFTLINE_MODELS_TABLE": tables.models.table_name,
                "DRIFTLINE_ENDPOINTS_TABLE": tables.endpoints.table_name,
                "DRIFTLINE_RUNS_TABLE": tables.runs.table_name,
                "DRIFTLINE_DRIFT_WINDOW_MINUTES": DRIFT_WINDOW_MINUTES,
                "DRIFTLINE_CAPTURE_CHECK_INTERVAL_SECONDS": CAPTURE_CHECK_INTERVAL_SECONDS,
                "DRIFTLINE_PSI": thresholds.psi,
                "DRIFTLINE_KS_STATISTIC": thresholds.ks_statistic,
                "DRIFTLINE_DRIFTED_SHARE": thresholds.drifted_share,
                "DRIFTLINE_PREDICTION_PSI": thresholds.prediction_psi,
                "DRIFTLINE_MIN_SAMPLES": thresholds.min_samples,
            },
            memory_mb=3008,
            seconds=600,
        )
        notifier = function(
            "DriftNotifier",
            "Name the drifted features and the report when a model's drift alarm fires",
            {},
            memory_mb=256,
            seconds=30,
        )
        feedback = function(
            "Feedback",
            "Join uploaded labels with captured predictions and publish live metrics",
            {
                "DRIFTLINE_DATASETS_BUCKET": datasets.bucket_name,
                "DRIFTLINE_MODELS_TABLE": tables.models.table_name,
                "DRIFTLINE_ENDPOINTS_TABLE": tables.endpoints.table_name,
                "DRIFTLINE_FEEDBACK_MIN_SAMPLES": FEEDBACK_MIN_SAMPLES,
                "DRIFTLINE_FEEDBACK_LOOKBACK_DAYS": FEEDBACK_LOOKBACK_DAYS,
            },
            memory_mb=2048,
            seconds=300,
        )
        retrain = function(
            "Retrain",
            "Start the training pipeline on the newest accepted dataset, once per cooldown",
            {
                "DRIFTLINE_DATASETS_BUCKET": datasets.bucket_name,
                "DRIFTLINE_DATASETS_TABLE": tables.datasets.table_name,
                "DRIFTLINE_RUNS_TABLE": tables.runs.table_name,
                "DRIFTLINE_STATE_MACHINE_ARN": resources.state_machine.state_machine_arn,
                "DRIFTLINE_RETRAIN_COOLDOWN_HOURS": schedules.retrain_cooldown_hours,
            },
            memory_mb=256,
            seconds=60,
        )

        # Each reads and writes only its own keys of the artifacts bucket; none deletes there
        # (see infra/constructs/artifact_access.py).
        for name, grantee in (
            ("drift_monitor", monitor),
            ("drift_notifier", notifier),
            ("feedback", feedback),
        ):
            MONITORING_ACCESS[name].grant(artifacts, grantee)
        tables.models.grant_read_data(monitor)
        tables.endpoints.grant_read_data(monitor)
        tables.runs.grant_read_write_data(monitor)

        topic.grant_publish(notifier)

        datasets.grant_read(feedback, f"{FEEDBACK_PREFIX}*")
        datasets.grant_read(feedback, f"{MODEL_CONFIGS_PREFIX}*")  # model config overrides
        tables.models.grant_read_data(feedback)
        tables.endpoints.grant_read_data(feedback)
        topic.grant_publish(feedback)

        tables.datasets.grant_read_data(retrain)
        tables.runs.grant_read_write_data(retrain)
        resources.state_machine.grant_start_execution(retrain)
        topic.grant_publish(retrain)

        return {
            "drift_monitor": monitor,
            "drift_notifier": notifier,
            "feedback": feedback,
            "retrain": retrain,
        }

    # -- alarms -------------------------------------------------------------------------------

    def drift_metric(self, model: str, metric_name: str, **dimensions: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=metric_name,
            dimensions_map={"Model": model, **dimensions},
            statistic="Maximum",
            period=self.check_period,
        )

    def _alarms(self, scope: Construct, model: MonitoredModel, topic: sns.ITopic) -> ModelAlarms:
        name = model.name
        period_s = int(self.check_period.to_seconds())
        evaluation = 2 if 2 * period_s <= MAX_EVALUATION_SECONDS else 1

        def drift_alarm(
            construct_id: str, metric_name: str, threshold: float, what: str
        ) -> cloudwatch.Alarm:
            return self.drift_metric(name, metric_name).create_alarm(
                scope,
                construct_id,
                alarm_description=f"{name}: {what} above {threshold:g} (drift monitor)",
                threshold=threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=evaluation,
                datapoints_to_alarm=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )

        feature_psi = drift_alarm(
            "FeaturePsiAlarm", MAX_FEATURE_PSI, self.thresholds.psi, "a feature's PSI"
        )
        drifted_share = drift_alarm(
            "DriftedShareAlarm",
            DRIFTED_SHARE,
            self.thresholds.drifted_share,
            "share of drifted features",
        )
        prediction_psi = drift_alarm(
            "PredictionPsiAlarm",
            PREDICTION_PSI,
            self.thresholds.prediction_psi,
            "the prediction's PSI",
        )
        drift = cloudwatch.CompositeAlarm(
            scope,
            "DriftAlarm",
            alarm_description=(
                f"{name} drifted: a feature's PSI, the drifted share or the prediction's PSI "
                f"is over its threshold; see {latest_report_key(name)}"
            ),
            alarm_rule=cloudwatch.AlarmRule.any_of(feature_psi, drifted_share, prediction_psi),
        )
        concept = None
        if model.live_alarm is not None:
            live = model.live_alarm
            higher = live.higher_is_better
            concept = cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name=live.metric_name,
                dimensions_map={"Model": name},
                statistic="Minimum" if higher else "Maximum",
                period=LIVE_METRIC_PERIOD,
            ).create_alarm(
                scope,
                "ConceptDriftAlarm",
                alarm_description=(
                    f"{name}: live {live.metric} on labelled traffic is "
                    f"{'below' if higher else 'above'} the gate threshold {live.threshold:g}"
                ),
                threshold=live.threshold,
                comparison_operator=(
                    cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
                    if higher
                    else cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
                ),
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        for alarm in (drift, concept):
            if alarm is not None:
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
                alarm.add_ok_action(cloudwatch_actions.SnsAction(topic))
        return ModelAlarms(feature_psi, drifted_share, prediction_psi, drift, concept)


def _object_created(bucket: s3.IBucket, prefix: str) -> events.EventPattern:
    return events.EventPattern(
        source=["aws.s3"],
        detail_type=["Object Created"],
        detail={"bucket": {"name": [bucket.bucket_name]}, "object": {"key": [{"prefix": prefix}]}},
    )


def _alarm_went_to_alarm(alarms: Sequence[cloudwatch.IAlarm]) -> events.EventPattern:
    return events.EventPattern(
        source=["aws.cloudwatch"],
        detail_type=[ALARM_STATE_CHANGE],
        resources=[alarm.alarm_arn for alarm in alarms],
        detail={"state": {"value": ["ALARM"]}},
    )


def _notifier_input(model: str) -> events.RuleTargetInput:
    """The drift notifier's input from an alarm (or alarm-contributor) state change event;
    `model` is the model's name, or the event field holding it."""
    return events.RuleTargetInput.from_object(
        {
            "model": model,
            "alarm": events.EventField.from_path("$.detail.alarmName"),
            "state": events.EventField.from_path("$.detail.state.value"),
            "previous_state": events.EventField.from_path("$.detail.previousState.value"),
            "reason": events.EventField.from_path("$.detail.state.reason"),
            "time": events.EventField.time,
        }
    )


def _retrain_input(model: str) -> events.RuleTargetInput:
    """The retrain function's input from an alarm (or alarm-contributor) state change event."""
    return events.RuleTargetInput.from_object(
        {
            "model": model,
            "cause": "alarm",
            "alarm": events.EventField.from_path("$.detail.alarmName"),
            "reason": events.EventField.from_path("$.detail.state.reason"),
        }
    )


def _contributor_went_to_alarm(alarm: cloudwatch.IAlarm) -> events.EventPattern:
    return events.EventPattern(
        source=["aws.cloudwatch"],
        detail_type=[CONTRIBUTOR_STATE_CHANGE],
        resources=[alarm.alarm_arn],
        detail={"state": {"value": ["ALARM"]}},
    )


def environment_of(mapping: Mapping[str, str | int | float]) -> dict[str, str]:
    """Values as text the functions parse back: ints exactly (never 1e+06), floats shortest."""
    return {key: value if isinstance(value, str) else repr(value) for key, value in mapping.items()}
