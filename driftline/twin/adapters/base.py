"""What every adapter shares: settings, the moto upgrade guard, helpers, the CFN model base."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import moto
from moto.core.common_models import CloudFormationModel

LOG = logging.getLogger("driftline.twin")

MOTO_VERSION = "5.2.5"
"""The moto release every adapter below was written against and tested on."""


class TwinAdapterError(RuntimeError):
    """moto no longer has something an adapter patches: the twin cannot run on it."""


@dataclass
class Settings:
    port: int
    image_folders: Callable[[str], Path | None]
    work_dir: Path


_SETTINGS: Settings | None = None

# Every moto internal an adapter patches or relies on: (module, attribute path, adapter).
_PATCH_POINTS: tuple[tuple[str, str, str], ...] = (
    ("moto.awslambda.models", "LambdaFunction.invoke", "adapt_lambda_invoke"),
    ("moto.awslambda.models", "LambdaBackend.invoke", "adapt_lambda_invoke"),
    ("moto.awslambda.models", "ImageConfig", "adapt_lambda_template_properties"),
    (
        "moto.awslambda.models",
        "LambdaFunction.create_from_cloudformation_json",
        "adapt_lambda_template_properties",
    ),
    (
        "moto.awslambda.models",
        "LambdaFunction.update_from_cloudformation_json",
        "adapt_lambda_template_properties",
    ),
    ("moto.awslambda.models", "LambdaBackend.create_function", "adapt_lambda_template_properties"),
    ("moto.s3.notifications", "_invoke_awslambda", "adapt_async_lambda_sources"),
    ("moto.sns.models", "Subscription.publish", "adapt_async_lambda_sources"),
    ("moto.core.config", "default_user_config", "adapt_stepfunctions_backend"),
    ("moto.stepfunctions.models", "stepfunctions_backends", "adapt_stepfunctions_backend"),
    (
        "moto.stepfunctions.models",
        "StateMachine.create_from_cloudformation_json",
        "adapt_stepfunctions_backend",
    ),
    (
        "moto.stepfunctions.models",
        "StateMachine.update_from_cloudformation_json",
        "adapt_stepfunctions_backend",
    ),
    (
        "moto.stepfunctions.parser.models",
        "stepfunctions_parser_backends",
        "adapt_stepfunctions_backend",
    ),
    (
        "moto.stepfunctions.parser.models",
        "StepFunctionsParserBackend.start_execution",
        "adapt_stepfunctions_backend",
    ),
    ("moto.events.models", "Rule.send_to_targets", "adapt_eventbridge_targets"),
    (
        "moto.s3.models",
        "FakeBucket.create_from_cloudformation_json",
        "adapt_s3_bucket_template_properties",
    ),
    (
        "moto.s3.models",
        "FakeBucket.update_from_cloudformation_json",
        "adapt_s3_bucket_template_properties",
    ),
    (
        "moto.s3.models",
        "FakeBucket.set_notification_configuration",
        "adapt_s3_bucket_template_properties",
    ),
    (
        "moto.cloudformation.custom_model",
        "CustomModel.create_from_cloudformation_json",
        "adapt_custom_resources",
    ),
    ("moto.cloudformation.models", "Stack.add_custom_resource", "adapt_custom_resources"),
    ("moto.cloudformation.parsing", "ResourceMap.delete", "adapt_stack_delete_order"),
    ("moto.cloudformation.parsing", "ResourceMap._delete_resource", "adapt_stack_delete_order"),
    (
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
        "state_task_service_aws_sdk",
        "StateTaskServiceAwsSdk._eval_service_task",
        "adapt_sfn_sdk_datetimes",
    ),
    (
        "moto.stepfunctions.parser.backend.execution",
        "Execution.get_start_execution_details",
        "adapt_sfn_sdk_datetimes",
    ),
    ("moto.cloudwatch.models", "CloudWatchBackend.put_metric_alarm", "adapt_cloudwatch_alarms"),
    ("moto.cloudwatch.models", "CloudWatchBackend.put_metric_data", "adapt_cloudwatch_alarms"),
    ("moto.cloudwatch.models", "CloudWatchBackend.set_alarm_state", "adapt_cloudwatch_alarms"),
    ("moto.cloudwatch.models", "CloudWatchBackend.delete_alarms", "adapt_cloudwatch_alarms"),
    ("moto.cloudwatch.models", "Alarm.update_state", "adapt_cloudwatch_alarms"),
    ("moto.cloudwatch.responses", "CloudWatchResponse", "adapt_cloudwatch_alarms"),
    ("moto.logs.models", "LogsBackend.put_log_events", "adapt_emf_metrics"),
    ("moto.events.models", "Rule.send_to_targets", "adapt_schedule_rules"),
    ("moto.cloudwatch.models", "cloudwatch_backends", "adapt_emf_metrics"),
    ("moto.cloudformation.parsing", "get_model_map", "adapt_cloudformation_types"),
    ("moto.cloudformation.parsing", "get_model_list", "adapt_cloudformation_types"),
    ("moto.cloudformation.parsing", "NULL_MODELS", "adapt_cloudformation_types"),
    ("moto.s3.models", "FakeBucket.get_permission", "adapt_cloudformation_types"),
    ("moto.kms.models", "Key.create_from_cloudformation_json", "adapt_kms_key_template"),
    ("moto.kms.models", "KmsBackend.create_key", "adapt_kms_key_template"),
    (
        "moto.scheduler.models",
        "EventBridgeSchedulerBackend.create_schedule",
        "adapt_cloudformation_types",
    ),
    ("moto.awslambda.models", "LambdaFunction.create_url_config", "adapt_function_urls"),
    ("moto.awslambda.models", "FunctionUrlConfig", "adapt_function_urls"),
    (
        "moto.moto_server.werkzeug_app",
        "DomainDispatcherApplication.__call__",
        "adapt_function_urls",
    ),
)


def check_moto_internals(points: tuple[tuple[str, str, str], ...] = _PATCH_POINTS) -> None:
    """Raise TwinAdapterError naming every patched moto internal that no longer exists.

    Runs before any patch is applied, so a moto upgrade fails at startup with a message that
    says which adapter to port, not somewhere deep inside a state machine run.
    """
    missing: list[str] = []
    for module_name, attribute_path, adapter in points:
        try:
            target: Any = importlib.import_module(module_name)
            for part in attribute_path.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{attribute_path} (used by {adapter})")
    if missing:
        raise TwinAdapterError(
            f"moto {moto.__version__} lacks what the twin's adapters patch (written against moto "
            f"{MOTO_VERSION}): {'; '.join(missing)}"
        )


def use_settings(new: Settings) -> Settings | None:
    """Make `new` the adapters' settings; return the previous ones (None the first time)."""
    global _SETTINGS
    previous, _SETTINGS = _SETTINGS, new
    return previous


def settings() -> Settings:
    if _SETTINGS is None:
        raise TwinAdapterError("install_adapters(port=..., image_folders=...) has not been called")
    return _SETTINGS


def patch(owner: Any, name: str, replacement: Any) -> None:
    setattr(owner, name, replacement)


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a `Z`, the timestamp form AWS JSON APIs emit."""
    text = utc(moment).isoformat()
    return text.replace("+00:00", "Z")


class TwinModel(CloudFormationModel):
    """Base of the CloudFormation resource types the twin adds to moto (see `cfn_types`).

    A subclass names its `TYPE`, the property holding its physical name (`NAME_PROPERTY`, if
    any) and its GetAtt `ATTRIBUTES` (attribute -> instance attribute holding it); builds itself
    from the template's Properties in `create`; and removes what it made in `delete` (default:
    nothing, as for a policy that is only stored). Ref is `physical_id`. An update replaces the
    resource (delete, then create) unless the subclass overrides `update`.
    """

    TYPE: ClassVar[str] = ""
    NAME_PROPERTY: ClassVar[str] = ""
    ATTRIBUTES: ClassVar[Mapping[str, str]] = {}

    physical_id: str  # Ref

    @classmethod
    def create(cls, name: str, props: Mapping[str, Any], account_id: str, region: str) -> Self:
        """Build the resource from the template's Properties (`name`: CloudFormation's)."""
        raise NotImplementedError

    @classmethod
    def update(
        cls, original: Self, name: str, props: Mapping[str, Any], account_id: str, region: str
    ) -> Self:
        """Replace: delete the old resource, create the new one (what most updates amount to)."""
        original.delete(account_id, region)
        return cls.create(name, props, account_id, region)

    def delete(self, account_id: str, region_name: str) -> None:
        """Remove the resource from moto (stack delete, replacement); policies leave nothing."""

    # -- moto's CloudFormationModel interface --

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    def is_created(self) -> bool:
        return True

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name not in self.ATTRIBUTES:
            raise UnformattedGetAttTemplateException()
        return getattr(self, self.ATTRIBUTES[attribute_name])

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Self:
        return cls.create(resource_name, cloudformation_json["Properties"], account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Self:
        props = cloudformation_json["Properties"]
        return cls.update(original_resource, new_resource_name, props, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        """Unused: moto calls `delete` on the instance first."""
