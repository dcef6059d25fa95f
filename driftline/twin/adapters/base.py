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

# Every moto internal an adapter patches or relies on, by adapter and module.
_PATCHED: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "adapt_lambda_invoke": {
        "moto.awslambda.models": (
            "LambdaFunction.invoke",
            "LambdaBackend.invoke",
        ),
    },
    "adapt_lambda_template_properties": {
        "moto.awslambda.models": (
            "ImageConfig",
            "LambdaFunction.create_from_cloudformation_json",
            "LambdaFunction.update_from_cloudformation_json",
            "LambdaBackend.create_function",
        ),
    },
    "adapt_async_lambda_sources": {
        "moto.s3.notifications": ("_invoke_awslambda",),
        "moto.sns.models": ("Subscription.publish",),
    },
    "adapt_stepfunctions_backend": {
        "moto.core.config": ("default_user_config",),
        "moto.stepfunctions.models": (
            "stepfunctions_backends",
            "StateMachine.create_from_cloudformation_json",
            "StateMachine.update_from_cloudformation_json",
        ),
        "moto.stepfunctions.parser.models": (
            "stepfunctions_parser_backends",
            "StepFunctionsParserBackend.start_execution",
        ),
    },
    "adapt_eventbridge_targets": {
        "moto.events.models": ("Rule.send_to_targets",),
    },
    "adapt_s3_bucket_template_properties": {
        "moto.s3.models": (
            "FakeBucket.create_from_cloudformation_json",
            "FakeBucket.update_from_cloudformation_json",
            "FakeBucket.set_notification_configuration",
        ),
    },
    "adapt_custom_resources": {
        "moto.cloudformation.custom_model": ("CustomModel.create_from_cloudformation_json",),
        "moto.cloudformation.models": ("Stack.add_custom_resource",),
    },
    "adapt_stack_delete_order": {
        "moto.cloudformation.parsing": (
            "ResourceMap.delete",
            "ResourceMap._delete_resource",
        ),
    },
    "adapt_sfn_sdk_datetimes": {
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
        "state_task_service_aws_sdk": ("StateTaskServiceAwsSdk._eval_service_task",),
        "moto.stepfunctions.parser.backend.execution": ("Execution.get_start_execution_details",),
    },
    "adapt_cloudwatch_alarms": {
        "moto.cloudwatch.models": (
            "CloudWatchBackend.put_metric_alarm",
            "CloudWatchBackend.put_metric_data",
            "CloudWatchBackend.set_alarm_state",
            "CloudWatchBackend.delete_alarms",
            "Alarm.update_state",
        ),
        "moto.cloudwatch.responses": ("CloudWatchResponse",),
    },
    "adapt_emf_metrics": {
        "moto.logs.models": ("LogsBackend.put_log_events",),
        "moto.cloudwatch.models": ("cloudwatch_backends",),
    },
    "adapt_schedule_rules": {
        "moto.events.models": ("Rule.send_to_targets",),
    },
    "adapt_cloudformation_types": {
        "moto.cloudformation.parsing": (
            "get_model_map",
            "get_model_list",
            "NULL_MODELS",
        ),
        "moto.s3.models": ("FakeBucket.get_permission",),
        "moto.scheduler.models": ("EventBridgeSchedulerBackend.create_schedule",),
    },
    "adapt_kms_key_template": {
        "moto.kms.models": (
            "Key.create_from_cloudformation_json",
            "KmsBackend.create_key",
        ),
    },
    "adapt_function_urls": {
        "moto.awslambda.models": (
            "LambdaFunction.create_url_config",
            "FunctionUrlConfig",
        ),
        "moto.moto_server.werkzeug_app": ("DomainDispatcherApplication.__call__",),
    },
}
_PATCH_POINTS: tuple[tuple[str, str, str], ...] = tuple(
    (module, attribute, adapter)
    for adapter, modules in _PATCHED.items()
    for module, attributes in modules.items()
    for attribute in attributes
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


CreateFromTemplate = Callable[[str, Any, str, str, dict[str, Any]], Any]
"""(resource name, template resource, account, region, moto's keyword arguments) -> resource"""
UpdateFromTemplate = Callable[[Any, str, Any, str, str], Any]
"""(original resource, new name, template resource, account, region) -> resource"""


def replace_template_methods(
    model: Any, *, create: CreateFromTemplate, update: UpdateFromTemplate
) -> None:
    """Make `create`/`update` a moto model's `create/update_from_cloudformation_json`."""

    def create_from_template(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        return create(resource_name, cloudformation_json, account_id, region_name, kwargs)

    def update_from_template(
        cls: Any,
        /,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        return update(
            original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )

    patch(model, "create_from_cloudformation_json", classmethod(create_from_template))
    patch(model, "update_from_cloudformation_json", classmethod(update_from_template))


def wrap_template_methods(
    model: Any,
    *,
    before: Callable[[dict[str, Any]], None] | None = None,
    after: Callable[[Any, Mapping[str, Any]], None] | None = None,
) -> None:
    """Wrap a moto model's create/update from a template: `before(properties)` may rewrite the
    template's Properties first, `after(resource, properties)` fixes up what moto built."""
    create = model.create_from_cloudformation_json
    update = model.update_from_cloudformation_json

    def around(build: Callable[[], Any], cloudformation_json: Any) -> Any:
        properties = cloudformation_json.get("Properties", {})
        if before is not None:
            before(properties)
        resource = build()
        if after is not None:
            after(resource, properties)
        return resource

    replace_template_methods(
        model,
        create=lambda name, template, account, region, kwargs: around(
            lambda: create(name, template, account, region, **kwargs), template
        ),
        update=lambda original, name, template, account, region: around(
            lambda: update(original, name, template, account, region), template
        ),
    )


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
