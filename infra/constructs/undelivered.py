"""Events no function handled: one queue that keeps them, and the alarms that say so.

Functions started by EventBridge (or S3, SNS) run asynchronously: nobody waits for their answer,
so a failure is lost unless something keeps the event. `UndeliveredEvents` is that something,
used by the Pipeline stack (uploads → StartRun) and the Monitoring stack (drift, feedback,
notifier, retrain). Its one KMS-encrypted (the env's data key), TLS-only SQS queue is both
- the dead-letter queue of the EventBridge rule targets made with `target()` (EventBridge could
  not invoke the function: throttled past the event's age, function deleted, no permission);
- the on-failure destination of every function passed to `guard()` (the function ran and
  failed, and Lambda's asynchronous retries ran out), with the event as `requestPayload`.

Alarms (to the alerts topic): one when any message waits in the queue (an event was given up
on), and per guarded function one on its first `Errors` datapoint, so on-call hears of a
failing function before its retries run out. Messages are kept 14 days (SQS's maximum); the
CLI reads them without consuming them (`driftline runs list` shows uploads that never started).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge

ALARM_PERIOD = Duration.minutes(5)
# Lambda's own default: the first attempt plus two retries, a minute then two minutes later.
ASYNC_RETRY_ATTEMPTS = 2
RETENTION = Duration.days(14)


def at_least_one(
    scope: Construct, construct_id: str, metric: cloudwatch.IMetric, description: str
) -> cloudwatch.Alarm:
    """An alarm on the first datapoint of `metric` (missing data is not breaching)."""
    return cloudwatch.Alarm(
        scope,
        construct_id,
        metric=metric,
        alarm_description=description,
        threshold=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


class UndeliveredEvents(Construct):
    """A dead-letter queue + on-failure destination for asynchronously invoked functions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        purpose: str,
        key: kms.IKey,
        topic: sns.ITopic,
        rule_retry_attempts: int,
        max_event_age: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.purpose = purpose
        self._topic = topic
        self._rule_retry_attempts = rule_retry_attempts
        self._max_event_age = max_event_age
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=RETENTION,
        )
        acknowledge(
            self.queue,
            "AwsSolutions-SQS3",
            f"This queue is itself the dead-letter queue and on-failure destination of {purpose}",
        )
        self.alarm = at_least_one(
            self,
            "WaitingAlarm",
            self.queue.metric_approximate_number_of_messages_visible(
                period=ALARM_PERIOD, statistic="Maximum"
            ),
            f"{purpose}: an event no function handled waits in {self.queue.queue_name}",
        )
        self.alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        self.error_alarms: dict[str, cloudwatch.Alarm] = {}

    def target(
        self, function: lambda_.IFunction, payload: events.RuleTargetInput | None = None
    ) -> targets.LambdaFunction:
        """An EventBridge rule target for `function` that dead-letters into the queue."""
        return targets.LambdaFunction(
            function,
            event=payload,
            dead_letter_queue=self.queue,
            retry_attempts=self._rule_retry_attempts,
            max_event_age=self._max_event_age,
        )

    def guard(self, name: str, function: lambda_.IFunction) -> cloudwatch.Alarm:
        """Failed asynchronous invocations of `function` go to the queue; errors page on-call.

        Call once per function (Lambda has one asynchronous invoke configuration per function).
        """
        if name in self.error_alarms:
            raise ValueError(f"function {name} is already guarded by {self.node.path}")
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.queue),
            retry_attempts=ASYNC_RETRY_ATTEMPTS,
            max_event_age=self._max_event_age,
        )
        label = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
        alarm = at_least_one(
            self,
            f"{label}Errors",
            function.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
            f"{name} failed (5 minutes); an event it still fails on after its retries waits "
            f"in {self.queue.queue_name}",
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self._topic))
        self.error_alarms[name] = alarm
        return alarm

    def all(self) -> list[cloudwatch.Alarm]:
        return [self.alarm, *self.error_alarms.values()]
