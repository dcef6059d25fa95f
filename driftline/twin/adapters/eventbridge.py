"""Section 3: EventBridge delivers to Step Functions (and Lambda) targets.

Also: a bucket's VersioningConfiguration and EventBridge switch from its template, and
schedule-only rules that match no events.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from driftline.twin.adapters.base import LOG, patch, wrap_template_methods
from driftline.twin.adapters.lambdas import runner

_BASE_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"


def _json_path(document: Any, path: str) -> Any:
    from jsonpath_ng.ext.parser import parse

    matches = parse(path).find(document)
    return matches[0].value if matches else None


def _normalised_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """moto's event as EventBridge sends it: ISO time, unique id, S3 details like real S3."""
    normalised = copy.deepcopy(dict(event))
    if normalised.get("id") == _BASE_EVENT_ID:
        # moto's S3 notifications reuse the template's id for every event.
        normalised["id"] = str(uuid.uuid4())
    if normalised.get("source") == "aws.s3":
        obj = normalised.get("detail", {}).get("object")
        if isinstance(obj, dict) and obj.get("version-id") is None:
            # Real S3 sends version-id only for versioned buckets.
            obj.pop("version-id", None)
    return normalised


def _delivered_event(event: Mapping[str, Any]) -> dict[str, Any]:
    delivered = _normalised_event(event)
    delivered.pop("ingestion-time", None)
    moment = delivered.get("time")
    if isinstance(moment, int | float):
        delivered["time"] = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return delivered


def render_input_template(template: str, values: Mapping[str, Any]) -> str:
    """Fill EventBridge InputTemplate `<name>` placeholders the way EventBridge does.

    Outside a JSON string a value goes in as JSON (strings quoted); inside a JSON string it
    goes in as escaped string content; a template that is not JSON (plain text) gets strings
    raw. A missing value is `null` in JSON and empty inside a string.
    """
    json_mode = template.lstrip()[:1] in ("{", "[", '"')
    out: list[str] = []
    in_string = False
    index = 0
    while index < len(template):
        char = template[index]
        if in_string and char == "\\":
            out.append(template[index : index + 2])
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        elif char == "<":
            end = template.find(">", index)
            name = template[index + 1 : end] if end != -1 else ""
            if name in values:
                out.append(_render_value(values[name], json_mode, in_string))
                index = end + 1
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _render_value(value: Any, json_mode: bool, in_string: bool) -> str:
    if not json_mode:
        return value if isinstance(value, str) else json.dumps(value)
    if in_string:
        if value is None:
            return ""
        text = value if isinstance(value, str) else json.dumps(value)
        return json.dumps(text)[1:-1]
    return json.dumps(value)


def target_input(
    target: Mapping[str, Any], event: Mapping[str, Any], rule_name: str, rule_arn: str
) -> str:
    """The JSON text EventBridge sends `target` for `event`: Input/InputPath/InputTransformer."""
    if "Input" in target:
        return str(target["Input"])
    if "InputPath" in target:
        return json.dumps(_json_path(event, str(target["InputPath"])))
    transformer = target.get("InputTransformer")
    if not transformer:
        return json.dumps(event)
    values = {
        name: _json_path(event, str(path))
        for name, path in transformer.get("InputPathsMap", {}).items()
    }
    without_detail = {key: value for key, value in event.items() if key != "detail"}
    values.update(
        {
            "aws.events.rule-arn": rule_arn,
            "aws.events.rule-name": rule_name,
            "aws.events.event.ingestion-time": event.get("time"),
            "aws.events.event": without_detail,
            "aws.events.event.json": event,
        }
    )
    return render_input_template(str(transformer["InputTemplate"]), values)


def _deliver(rule: Any, target: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    from moto.awslambda.utils import get_backend
    from moto.stepfunctions import models as sfn_models
    from moto.utilities.arns import parse_arn

    arn = parse_arn(str(target["Arn"]))
    payload = target_input(target, event, rule.name, rule.arn)
    if arn.service == "states":
        json.loads(payload)  # Step Functions rejects non-JSON input
        backend = sfn_models.stepfunctions_backends[arn.account][arn.region]
        backend.start_execution(str(target["Arn"]), name=str(uuid.uuid4()), execution_input=payload)
    else:
        fn = get_backend(arn.account, arn.region).get_function(str(target["Arn"]))
        runner().invoke_async(fn, payload, str(target["Arn"]))


def adapt_eventbridge_targets() -> None:
    """moto 5.2.5 raises NotImplementedError for Step Functions and Lambda rule targets.

    S3's EventBridge notifications swallow that error, so an upload starts nothing. Wraps
    `Rule.send_to_targets`: state machine targets start an execution and Lambda targets are
    invoked asynchronously, with Input/InputPath/InputTransformer applied; other targets go
    on to moto. Events are normalised on the way (S3's `version-id` only when versioned).
    """
    from moto.events.models import Rule
    from moto.utilities.arns import parse_arn

    send_to_targets: Any = Rule.send_to_targets

    def send_to_all_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if not self.event_pattern.matches_event(original_event):
            return
        ours = [t for t in self.targets if parse_arn(t["Arn"]).service in ("states", "lambda")]
        rest = [t for t in self.targets if t not in ours]
        delivered = _delivered_event(original_event)
        for target in ours:
            try:
                _deliver(self, target, delivered)
            except Exception as error:  # EventBridge delivery is asynchronous: log, never raise
                LOG.warning("rule %s target %s: %s", self.name, target.get("Id"), error)
        if rest:
            others = copy.copy(self)
            others.targets = rest
            send_to_targets(others, _normalised_event(original_event), transform_input)

    patch(Rule, "send_to_targets", send_to_all_targets)


def _apply_bucket_properties(bucket: Any, properties: Mapping[str, Any]) -> None:
    versioning = properties.get("VersioningConfiguration", {}).get("Status")
    if versioning:
        bucket.versioning_status = versioning
    notifications = properties.get("NotificationConfiguration", {})
    if "EventBridgeConfiguration" in notifications and bucket.notification_configuration is None:
        bucket.set_notification_configuration({"EventBridgeConfiguration": {}})


def adapt_s3_bucket_template_properties() -> None:
    """moto's CloudFormation ignores a bucket's VersioningConfiguration and EventBridge switch.

    A versioned datasets bucket must give its uploads version ids (and its "Object Created"
    events a `version-id`), and a bucket may turn EventBridge on in the template itself rather
    than through CDK's notifications custom resource. Wraps `FakeBucket.create/update_from_
    cloudformation_json`.
    """
    from moto.s3.models import FakeBucket

    wrap_template_methods(FakeBucket, after=_apply_bucket_properties)


def adapt_schedule_rules() -> None:
    """moto 5.2.5 hands every event on the bus to a rule that has only a ScheduleExpression.

    Such a rule has an empty event pattern, and moto's (and `adapt_eventbridge_targets`')
    `Rule.send_to_targets` reads an empty pattern as "match everything", so each S3 upload or
    alarm change would invoke the schedule's target (a drift check per event). On AWS a
    schedule rule matches no events; the twin never fires schedules, so its targets run only
    when invoked by hand. Wraps the current `Rule.send_to_targets` (install after
    `adapt_eventbridge_targets`).
    """
    from moto.events.models import Rule

    send_to_targets: Any = Rule.send_to_targets

    def send_unless_schedule_only(
        self: Any, original_event: Any, transform_input: bool = True
    ) -> None:
        if self.scheduled_expression and not self.event_pattern.get_pattern():
            return
        send_to_targets(self, original_event, transform_input)

    patch(Rule, "send_to_targets", send_unless_schedule_only)
