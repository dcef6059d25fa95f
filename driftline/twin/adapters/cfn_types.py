"""Section 7: resource types moto's CloudFormation lacks (or models without Ref/GetAtt).

Each is a `TwinModel`: its type, its GetAtt attributes, `create` from the template's
Properties and `delete`; `adapt_cloudformation_types` registers them with moto's parsing.
Also here: moto's AWS::KMS::Key fixed for tagged keys and updates.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from moto.core.common_models import CloudFormationModel

from driftline.twin.adapters.alarms import without_metric
from driftline.twin.adapters.base import TwinModel, patch, replace_template_methods
from driftline.twin.adapters.function_urls import (
    forget_function_url,
    serve_function_url,
    split_qualifier,
)


def _lambda_backend(account_id: str, region: str) -> Any:
    from moto.awslambda.utils import get_backend

    return get_backend(account_id, region)


def _cloudwatch_backend(account_id: str, region: str) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[account_id][region]


def _sns_backend(account_id: str, region: str) -> Any:
    from moto.sns.models import sns_backends

    return sns_backends[account_id][region]


def _function_name(arn_or_name: str) -> str:
    """The bare function name of a FunctionName property (name, ARN or qualified ARN)."""
    return arn_or_name.rsplit(":function:", 1)[-1].split(":")[0]


# -- CloudWatch alarms (evaluated by the `alarms` adapter once created) --


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _integer(value: Any) -> int | None:
    return None if value is None else int(value)


def _alarm_metric_queries(metrics: list[dict[str, Any]] | None) -> list[Any] | None:
    from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat

    if not metrics:
        return None
    queries = []
    for query in metrics:
        stat = query.get("MetricStat")
        metric_stat = None
        if stat:
            metric = stat["Metric"]
            metric_stat = MetricStat(
                metric=Metric(
                    metric_name=metric["MetricName"],
                    namespace=metric["Namespace"],
                    dimensions=[
                        Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])
                    ],
                ),
                period=stat["Period"],
                stat=stat["Stat"],
                unit=stat.get("Unit"),
            )
        queries.append(
            MetricDataQuery(
                query_id=query["Id"],
                label=query.get("Label", ""),
                period=query.get("Period", ""),
                return_data=query.get("ReturnData", True),
                expression=query.get("Expression"),
                metric_stat=metric_stat,
            )
        )
    return queries


def _alarm_settings(name: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """`put_metric_alarm` arguments every alarm has: name, description, actions and tags."""
    return {
        "name": props.get("AlarmName", name),
        "description": props.get("AlarmDescription"),
        "alarm_actions": props.get("AlarmActions", []),
        "ok_actions": props.get("OKActions", []),
        "insufficient_data_actions": props.get("InsufficientDataActions", []),
        "actions_enabled": str(props.get("ActionsEnabled", True)).lower() != "false",
        "tags": props.get("Tags"),
    }


@dataclass(eq=False)
class CloudWatchAlarmResource(TwinModel):
    """AWS::CloudWatch::Alarm — Ref is the alarm name, GetAtt Arn its ARN."""

    TYPE = "AWS::CloudWatch::Alarm"
    NAME_PROPERTY = "AlarmName"
    ATTRIBUTES: ClassVar[Mapping[str, str]] = {"Arn": "arn"}

    physical_id: str
    arn: str

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        alarm = _cloudwatch_backend(account_id, region).put_metric_alarm(
            **_alarm_settings(name, props),
            namespace=props.get("Namespace"),
            metric_name=props.get("MetricName"),
            metric_data_queries=_alarm_metric_queries(props.get("Metrics")),
            comparison_operator=props.get("ComparisonOperator"),
            evaluation_periods=_integer(props.get("EvaluationPeriods")),
            datapoints_to_alarm=_integer(props.get("DatapointsToAlarm")),
            period=_integer(props.get("Period")),
            threshold=_number(props.get("Threshold")),
            statistic=props.get("Statistic"),
            extended_statistic=props.get("ExtendedStatistic"),
            dimensions=props.get("Dimensions", []),
            unit=props.get("Unit"),
            treat_missing_data=props.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=props.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=props.get("ThresholdMetricId"),
        )
        return cls(alarm.name, alarm.alarm_arn)

    @classmethod
    def update(
        cls, original: Self, name: str, props: Mapping[str, Any], account_id: str, region: str
    ) -> Self:
        """Same name: update in place (state kept). New name: replace."""
        alarm_name = props.get("AlarmName", original.physical_id)
        if alarm_name != original.physical_id:
            original.delete(account_id, region)
        return cls.create(alarm_name, props, account_id, region)

    def delete(self, account_id: str, region_name: str) -> None:
        _cloudwatch_backend(account_id, region_name).delete_alarms([self.physical_id])


@dataclass(eq=False)
class CloudWatchCompositeAlarmResource(CloudWatchAlarmResource):
    """AWS::CloudWatch::CompositeAlarm — Ref is the alarm name, GetAtt Arn its ARN."""

    TYPE = "AWS::CloudWatch::CompositeAlarm"

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        alarm = _cloudwatch_backend(account_id, region).put_metric_alarm(
            **_alarm_settings(name, props),
            **without_metric(),
            rule=props["AlarmRule"],
        )
        return cls(alarm.name, alarm.alarm_arn)


# -- Lambda versions, aliases, URLs and asynchronous invoke configs --


@dataclass(eq=False)
class LambdaVersionResource(TwinModel):
    """AWS::Lambda::Version — Ref is the version ARN; GetAtt Version and FunctionArn.

    moto has this type, but its model has neither a Ref value nor GetAtt Version, so an
    alias pointing at `!GetAtt Version.Version` gets nothing.
    """

    TYPE = "AWS::Lambda::Version"
    ATTRIBUTES: ClassVar[Mapping[str, str]] = {"Version": "version", "FunctionArn": "physical_id"}

    physical_id: str
    version: str
    function_name: str

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        version = _lambda_backend(account_id, region).publish_version(
            props["FunctionName"], props.get("Description", "")
        )
        return cls(version.function_arn, str(version.version), version.function_name)

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(Exception):  # already gone with its function
            _lambda_backend(account_id, region_name).delete_function(
                self.function_name, self.version
            )


def _alias_routing(props: Mapping[str, Any]) -> dict[str, Any] | None:
    weights = props.get("RoutingConfig", {}).get("AdditionalVersionWeights", [])
    if not weights:
        return None
    return {
        "AdditionalVersionWeights": {
            str(w["FunctionVersion"]): float(w["FunctionWeight"]) for w in weights
        }
    }


def _alias_settings(props: Mapping[str, Any]) -> dict[str, Any]:
    """`create_alias`/`update_alias` arguments from an alias's Properties."""
    return {
        "name": props["Name"],
        "function_name": _function_name(str(props["FunctionName"])),
        "function_version": str(props["FunctionVersion"]),
        "description": props.get("Description", ""),
        "routing_config": _alias_routing(props),
    }


@dataclass(eq=False)
class LambdaAliasResource(TwinModel):
    """AWS::Lambda::Alias — Ref is the alias ARN; GetAtt AliasArn. Weights are recorded only."""

    TYPE = "AWS::Lambda::Alias"
    ATTRIBUTES: ClassVar[Mapping[str, str]] = {"AliasArn": "physical_id"}

    physical_id: str
    name: str
    function_name: str

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        wanted = _alias_settings(props)
        alias = _lambda_backend(account_id, region).create_alias(**wanted)
        return cls(alias.arn, alias.name, wanted["function_name"])

    @classmethod
    def update(
        cls, original: Self, name: str, props: Mapping[str, Any], account_id: str, region: str
    ) -> Self:
        """Same function and name: move the alias (how a deploy shifts traffic). Else replace."""
        wanted = _alias_settings(props)
        if wanted["name"] != original.name or wanted["function_name"] != original.function_name:
            return super().update(original, name, props, account_id, region)
        alias = _lambda_backend(account_id, region).update_alias(**wanted)
        return cls(alias.arn, alias.name, wanted["function_name"])

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(Exception):
            _lambda_backend(account_id, region_name).delete_alias(self.name, self.function_name)


@dataclass(eq=False)
class LambdaUrlResource(TwinModel):
    """AWS::Lambda::Url — served by the twin (`function_urls`) on the alias or version it
    targets; GetAtt FunctionUrl is the twin's address for it."""

    TYPE = "AWS::Lambda::Url"
    ATTRIBUTES: ClassVar[Mapping[str, str]] = {"FunctionUrl": "url", "FunctionArn": "physical_id"}

    physical_id: str
    url: str
    target: str

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        # moto takes no qualifier: the URL is recorded on the function, and the twin's URL
        # server remembers the alias or version (ARN ending ":live") to invoke.
        target, qualifier = split_qualifier(str(props["TargetFunctionArn"]))
        config = {key: props[key] for key in ("AuthType", "Cors", "InvokeMode") if key in props}
        url = _lambda_backend(account_id, region).create_function_url_config(target, config)
        serve_function_url(url, qualifier)
        return cls(url.function.function_arn, url.url, target)

    def delete(self, account_id: str, region_name: str) -> None:
        forget_function_url(self.url)
        with contextlib.suppress(Exception):
            _lambda_backend(account_id, region_name).delete_function_url_config(self.target)


@dataclass(eq=False)
class LambdaEventInvokeConfigResource(TwinModel):
    """AWS::Lambda::EventInvokeConfig — stored on the function (GetFunctionEventInvokeConfig
    returns it); a failed asynchronous invoke is sent to its on-failure SQS destination after
    the one attempt the twin makes (retries and event age are recorded, not applied)."""

    TYPE = "AWS::Lambda::EventInvokeConfig"

    physical_id: str
    account_id: str
    region: str
    function: str

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        from moto.awslambda.models import EventInvokeConfig

        fn = _lambda_backend(account_id, region).get_function(str(props["FunctionName"]))
        config: dict[str, Any] = {
            key: int(props[key])
            for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds")
            if key in props
        }
        if "DestinationConfig" in props:
            config["DestinationConfig"] = props["DestinationConfig"]
        fn.event_invoke_config = [EventInvokeConfig(fn.function_arn, fn.last_modified, config)]
        return cls(name, account_id, region, fn.function_name)

    def delete(self, account_id: str, region_name: str) -> None:
        try:
            fn = _lambda_backend(self.account_id, self.region).get_function(self.function)
        except Exception:  # the function went first
            return
        fn.event_invoke_config = []


# -- SNS, SQS and S3 --


@dataclass(eq=False)
class SnsSubscriptionResource(TwinModel):
    """AWS::SNS::Subscription — a real moto subscription (SQS delivery, Lambda via the runner)."""

    TYPE = "AWS::SNS::Subscription"
    ATTRIBUTES: ClassVar[Mapping[str, str]] = {"Arn": "physical_id"}

    physical_id: str
    region_name: str

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        topic_arn = str(props["TopicArn"])
        topic_region = topic_arn.split(":")[3]
        backend = _sns_backend(account_id, topic_region)
        subscription = backend.subscribe(topic_arn, str(props["Endpoint"]), str(props["Protocol"]))
        if "FilterPolicyScope" in props:
            backend.set_subscription_attributes(
                subscription.arn, "FilterPolicyScope", props["FilterPolicyScope"]
            )
        for attribute in ("FilterPolicy", "RedrivePolicy", "DeliveryPolicy"):
            if attribute in props:
                value = props[attribute]
                text = value if isinstance(value, str) else json.dumps(value)
                backend.set_subscription_attributes(subscription.arn, attribute, text)
        if str(props.get("RawMessageDelivery", "false")).lower() == "true":
            # moto tests the attribute's truthiness, so only ever set it when on.
            backend.set_subscription_attributes(subscription.arn, "RawMessageDelivery", "true")
        return cls(subscription.arn, topic_region)

    def delete(self, account_id: str, region_name: str) -> None:
        _sns_backend(account_id, self.region_name).unsubscribe(self.physical_id)


@dataclass(eq=False)
class _StoredPolicy(TwinModel):
    """A resource policy: stored where reads return it, not enforced (no twin policy is).

    Ref is the logical name, as CloudFormation gives these types; `store` puts the policy
    document on each resource the template names.
    """

    physical_id: str

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        cls.store(json.dumps(props["PolicyDocument"]), props, account_id, region)
        return cls(name)

    @classmethod
    def store(cls, policy: str, props: Mapping[str, Any], account_id: str, region: str) -> None:
        raise NotImplementedError


class SnsTopicPolicyResource(_StoredPolicy):
    """AWS::SNS::TopicPolicy — stored on the topics, not enforced."""

    TYPE = "AWS::SNS::TopicPolicy"

    @classmethod
    def store(cls, policy: str, props: Mapping[str, Any], account_id: str, region: str) -> None:
        for arn in (str(arn) for arn in props["Topics"]):
            _sns_backend(account_id, arn.split(":")[3]).get_topic(arn).policy = policy


class SqsQueuePolicyResource(_StoredPolicy):
    """AWS::SQS::QueuePolicy — stored as the queues' Policy attribute, not enforced."""

    TYPE = "AWS::SQS::QueuePolicy"

    @classmethod
    def store(cls, policy: str, props: Mapping[str, Any], account_id: str, region: str) -> None:
        from moto.sqs.models import sqs_backends

        for url in props["Queues"]:
            queue_name = str(url).rstrip("/").rsplit("/", 1)[-1]
            sqs_backends[account_id][region].set_queue_attributes(queue_name, {"Policy": policy})


@dataclass(eq=False)
class S3BucketPolicyResource(TwinModel):
    """AWS::S3::BucketPolicy — stored on the bucket (GetBucketPolicy returns it), not enforced."""

    TYPE = "AWS::S3::BucketPolicy"

    physical_id: str  # the bucket

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        from moto.s3.models import s3_backends

        bucket = str(props["Bucket"])
        policy = json.dumps(props["PolicyDocument"]).encode("utf-8")
        s3_backends[account_id]["aws"].put_bucket_policy(bucket, policy)
        return cls(bucket)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.s3.models import s3_backends

        with contextlib.suppress(Exception):
            s3_backends[account_id]["aws"].delete_bucket_policy(self.physical_id)


# -- EventBridge Scheduler --


@dataclass(eq=False)
class SchedulerScheduleResource(TwinModel):
    """AWS::Scheduler::Schedule — created in moto's scheduler backend; not fired.

    Ref is the schedule name, GetAtt Arn its ARN.
    """

    TYPE = "AWS::Scheduler::Schedule"
    NAME_PROPERTY = "Name"
    ATTRIBUTES: ClassVar[Mapping[str, str]] = {"Arn": "arn"}

    physical_id: str
    arn: str
    group_name: str

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        from moto.scheduler.models import scheduler_backends

        backend: Any = scheduler_backends[account_id][region]
        schedule = backend.create_schedule(
            description=props.get("Description"),
            end_date=props.get("EndDate"),
            flexible_time_window=props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
            group_name=props.get("GroupName"),
            kms_key_arn=props.get("KmsKeyArn"),
            name=props.get("Name", name),
            schedule_expression=props["ScheduleExpression"],
            schedule_expression_timezone=props.get("ScheduleExpressionTimezone"),
            start_date=props.get("StartDate"),
            state=props.get("State"),
            target=copy.deepcopy(props["Target"]),
            action_after_completion=props.get("ActionAfterCompletion"),
        )
        return cls(schedule.name, schedule.arn, schedule.group_name)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.scheduler.models import scheduler_backends

        with contextlib.suppress(Exception):
            scheduler_backends[account_id][region_name].delete_schedule(
                self.group_name, self.physical_id
            )


# -- KMS keys (moto has the type; its create fails on tags and it has no update) --


def _kms_key_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    policy = properties.get("KeyPolicy")
    return {
        "policy": policy if policy is None or isinstance(policy, str) else json.dumps(policy),
        "description": properties.get("Description"),
        "tags": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in properties.get("Tags", [])],
    }


def adapt_kms_key_template() -> None:
    """moto's AWS::KMS::Key fails on tagged keys and is dropped by any stack update.

    It hands CloudFormation's `Key`/`Value` tags to a tagger expecting `TagKey`/`TagValue`
    (KeyError, so every CDK-tagged key fails) and has no update, which moto turns into a
    `None` resource. Replaces `Key.create_from_cloudformation_json` and adds an in-place
    update.
    """
    from moto.kms.models import Key, kms_backends

    def create_from_template(
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        kwargs: dict[str, Any],
    ) -> Any:
        properties = cloudformation_json["Properties"]
        key = kms_backends[account_id][region_name].create_key(
            key_usage=properties.get("KeyUsage", "ENCRYPT_DECRYPT"),
            key_spec=properties.get("KeySpec", "SYMMETRIC_DEFAULT"),
            **_kms_key_properties(properties),
        )
        key.key_rotation_status = str(properties.get("EnableKeyRotation", False)).lower() == "true"
        key.enabled = str(properties.get("Enabled", True)).lower() == "true"
        return key

    def update_in_place(
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        wanted = _kms_key_properties(properties)
        backend = kms_backends[account_id][region_name]
        if wanted["policy"] is not None:
            original_resource.policy = wanted["policy"]
        original_resource.description = wanted["description"] or ""
        tags = {t["Key"]: t["Value"] for t in properties.get("Tags", [])}
        if tags:
            backend.tag_resource(original_resource.arn, tags)
        rotation = str(properties.get("EnableKeyRotation", False)).lower() == "true"
        original_resource.key_rotation_status = rotation
        return original_resource

    replace_template_methods(Key, create=create_from_template, update=update_in_place)


_TWIN_MODELS: tuple[type[Any], ...] = (
    CloudWatchAlarmResource,
    CloudWatchCompositeAlarmResource,
    LambdaVersionResource,
    LambdaAliasResource,
    LambdaUrlResource,
    SnsSubscriptionResource,
    SnsTopicPolicyResource,
    SqsQueuePolicyResource,
    S3BucketPolicyResource,
    SchedulerScheduleResource,
    LambdaEventInvokeConfigResource,
)

# Types moto skips that have no runtime behaviour for the loop to miss.
_INERT_TYPES = frozenset({"AWS::CDK::Metadata"})


def adapt_cloudformation_types() -> None:
    """Register the twin's resource models with moto's CloudFormation parsing.

    `parsing.get_model_map`/`get_model_list` are cached views of CloudFormationModel's
    subclasses; they are replaced by views where the twin's models come first (so its
    AWS::Lambda::Version wins over moto's). S3 bucket policies are stored but, like every IAM
    policy on the twin, not enforced: moto would enforce them ignoring their Conditions, and
    CDK's enforceSSL statement would then deny every request.
    """
    from moto.cloudformation import parsing
    from moto.cloudformation.custom_model import CustomModel
    from moto.s3.models import FakeBucket

    base_list = parsing.get_model_list
    base_map = parsing.get_model_map
    twin_types = {model.cloudformation_type() for model in _TWIN_MODELS}

    def model_list() -> list[type[CloudFormationModel]]:
        others = [m for m in base_list() if m.cloudformation_type() not in twin_types]
        return [*_TWIN_MODELS, *others]

    def model_map() -> dict[str, Any]:
        twin = {m.cloudformation_type(): m for m in _TWIN_MODELS}
        # CDK's CustomResource defaults to the generic type, which moto does not route.
        return {**base_map(), **twin, "AWS::CloudFormation::CustomResource": CustomModel}

    def bucket_policy_not_enforced(self: Any, action: str, resource: str) -> Any:
        from moto.iam.access_control import PermissionResult

        return PermissionResult.NEUTRAL

    patch(parsing, "get_model_list", model_list)
    patch(parsing, "get_model_map", model_map)
    parsing.get_name_type_map.cache_clear()
    patch(FakeBucket, "get_permission", bucket_policy_not_enforced)


def unsupported_resource_types(template: Mapping[str, Any]) -> list[str]:
    """The resource types in `template` that moto's CloudFormation (with the adapters) skips."""
    from moto.cloudformation import parsing

    known = parsing.get_model_map()
    types = {str(resource.get("Type", "")) for resource in template.get("Resources", {}).values()}
    return sorted(
        t
        for t in types
        if t not in known
        and not t.startswith("Custom::")
        and t not in parsing.NULL_MODELS
        and t not in _INERT_TYPES
    )
