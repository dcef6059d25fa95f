"""Section 4: CDK custom resources run synchronously, with CloudFormation's string
properties; stacks delete dependents first.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from driftline.twin.adapters.base import LOG, patch, replace_template_methods
from driftline.twin.adapters.lambdas import runner


def cfn_stringified(value: Any) -> Any:
    """CloudFormation hands custom resources every scalar property as a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return {key: cfn_stringified(item) for key, item in value.items()}
    if isinstance(value, list):
        return [cfn_stringified(item) for item in value]
    return value


@dataclass
class _PendingResponse:
    arrived: threading.Event = field(default_factory=threading.Event)
    body: dict[str, Any] | None = None


class _ResponseListener:
    """A private HTTP endpoint for custom resources' ResponseURL PUTs.

    moto's own endpoint runs `Stack.verify_readiness` in the request thread, which creates
    any resource not created yet *concurrently* with the thread still creating the stack:
    resources get created twice and the stack can report CREATE_COMPLETE early. The twin
    instead invokes the handler synchronously and collects its response here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, _PendingResponse] = {}
        self._server: ThreadingHTTPServer | None = None

    def url_for(self, request_id: str) -> str:
        with self._lock:
            if self._server is None:
                self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
                self._server.daemon_threads = True
                threading.Thread(
                    target=self._server.serve_forever, name="cfn-response-listener", daemon=True
                ).start()
            self._pending[request_id] = _PendingResponse()
            port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/{request_id}"

    def wait(self, request_id: str, timeout_s: float) -> dict[str, Any] | None:
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None or not pending.arrived.wait(timeout_s):
            return None
        return pending.body

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._pending.pop(request_id, None)

    def deliver(self, request_id: str, body: dict[str, Any]) -> bool:
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None:
            return False
        pending.body = body
        pending.arrived.set()
        return True

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = None
                known = isinstance(body, dict) and listener.deliver(self.path.strip("/"), body)
                self.send_response(200 if known else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug("custom resource response: " + format, *args)

        return Handler


CUSTOM_RESOURCE_RESPONSES = _ResponseListener()


def _custom_resource_request(
    service_token: str,
    account_id: str,
    region_name: str,
    event: dict[str, Any],
) -> dict[str, Any]:
    """Invoke the provider with `event`, wait for its response, raise if it failed."""
    from moto.awslambda.utils import get_backend
    from moto.cloudformation.exceptions import ValidationError

    where = f"{event['LogicalResourceId']} ({event['ResourceType']})"
    try:
        fn = get_backend(account_id, region_name).get_function(service_token)
    except Exception as error:
        raise ValidationError(message=f"{where}: service token {service_token}: {error}") from None
    request_id = event["RequestId"]
    event["ResponseURL"] = CUSTOM_RESOURCE_RESPONSES.url_for(request_id)
    try:
        result = runner().invoke(fn, json.dumps(event))
        body = CUSTOM_RESOURCE_RESPONSES.wait(request_id, timeout_s=5.0)
    finally:
        CUSTOM_RESOURCE_RESPONSES.forget(request_id)
    if body is None:
        detail = (
            result.payload if result.function_error else "no response was sent to the ResponseURL"
        )
        raise ValidationError(message=f"{where}: {event['RequestType']} failed: {detail}")
    if body.get("Status") != "SUCCESS":
        reason = body.get("Reason") or "the handler reported FAILED"
        raise ValidationError(message=f"{where}: {event['RequestType']} failed: {reason}")
    return body


def _custom_event(
    request_type: str,
    stack_id: str,
    logical_id: str,
    resource_type: str,
    properties: dict[str, Any],
) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ServiceToken": properties.get("ServiceToken"),
        "StackId": stack_id,
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResourceProperties": properties,
    }


def adapt_custom_resources() -> None:
    """Custom resources race in moto 5.2.5 and get booleans where CloudFormation sends strings.

    moto starts the provider Lambda in a thread and returns; its response, PUT to moto's own
    endpoint, runs `verify_readiness`, which creates the stack's remaining resources from the
    response thread while the creating thread goes on creating them too. Here the provider
    runs synchronously, its response comes back on a private listener, and the resource exists
    (with its PhysicalResourceId and Data) once `create_from_cloudformation_json` returns.
    Properties are stringified (True -> "true") as CloudFormation does, and Update and Delete
    requests reach the provider too (moto sends neither).
    """
    from moto.cloudformation import models as cfn_models
    from moto.cloudformation.custom_model import CustomModel

    new_custom_resource: Any = CustomModel  # abstract to mypy; moto instantiates it too

    def create(
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        kwargs: dict[str, Any],
    ) -> Any:
        properties = cfn_stringified(cloudformation_json["Properties"])
        event = _custom_event(
            "Create", kwargs["StackId"], kwargs["LogicalId"], kwargs["ResourceType"], properties
        )
        body = _custom_resource_request(properties["ServiceToken"], account_id, region_name, event)
        resource: Any = new_custom_resource(
            region_name, event["RequestId"], kwargs["LogicalId"], resource_name
        )
        resource.resource_name = str(body.get("PhysicalResourceId") or resource_name)
        resource.set_data(body.get("Data") or {})
        resource.twin_request = {
            "stack_id": kwargs["StackId"],
            "resource_type": kwargs["ResourceType"],
            "properties": properties,
            "account_id": account_id,
        }
        stack = cfn_models.cloudformation_backends[account_id][region_name].get_stack(
            kwargs["StackId"]
        )
        stack.add_custom_resource(resource)
        return resource

    def update(
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        previous = original_resource.twin_request
        properties = cfn_stringified(cloudformation_json["Properties"])
        event = _custom_event(
            "Update",
            previous["stack_id"],
            original_resource.logical_id,
            previous["resource_type"],
            properties,
        )
        event["PhysicalResourceId"] = original_resource.resource_name
        event["OldResourceProperties"] = previous["properties"]
        body = _custom_resource_request(properties["ServiceToken"], account_id, region_name, event)
        original_resource.resource_name = str(
            body.get("PhysicalResourceId") or original_resource.resource_name
        )
        original_resource.set_data(body.get("Data") or {})
        original_resource.twin_request = {**previous, "properties": properties}
        return original_resource

    def delete(self: Any, account_id: str, region_name: str) -> None:
        previous = getattr(self, "twin_request", None)
        if previous is None:
            return
        event = _custom_event(
            "Delete",
            previous["stack_id"],
            self.logical_id,
            previous["resource_type"],
            previous["properties"],
        )
        event["PhysicalResourceId"] = self.resource_name
        try:
            _custom_resource_request(
                previous["properties"]["ServiceToken"], account_id, region_name, event
            )
        except Exception as error:
            # moto deletes in no particular order, so a provider may find its target gone.
            LOG.warning("custom resource %s: %s", self.logical_id, error)

    replace_template_methods(CustomModel, create=create, update=update)
    patch(CustomModel, "delete", delete)


def _references(node: Any) -> set[str]:
    """Logical IDs a template fragment points at (Ref, GetAtt, ${X} in Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("Ref"), str):
            found.add(node["Ref"])
        attribute = node.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute:
            found.add(str(attribute[0]))
        elif isinstance(attribute, str):
            found.add(attribute.split(".")[0])
        substitution = node.get("Fn::Sub")
        text = substitution[0] if isinstance(substitution, list) else substitution
        if isinstance(text, str):
            found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
        for value in node.values():
            found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def deletion_order(resources: Mapping[str, Any]) -> list[str]:
    """Logical IDs with every resource before the ones it depends on (CloudFormation's order)."""
    depends: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        explicit = resource.get("DependsOn", [])
        explicit = [explicit] if isinstance(explicit, str) else list(explicit)
        wanted = _references(resource.get("Properties", {})) | set(explicit)
        depends[logical_id] = {d for d in wanted if d in resources and d != logical_id}
    created: list[str] = []
    done: set[str] = set()

    def visit(logical_id: str, path: frozenset[str]) -> None:
        if logical_id in done or logical_id in path:
            return
        for dependency in sorted(depends[logical_id]):
            visit(dependency, path | {logical_id})
        done.add(logical_id)
        created.append(logical_id)

    for logical_id in sorted(resources):
        visit(logical_id, frozenset())
    return list(reversed(created))


def adapt_stack_delete_order() -> None:
    """moto deletes a stack's resources in set order, so a provider can go before its resource.

    Then a custom resource's Delete cannot reach its Lambda (and an alias outlives nothing
    it needs). Wraps `ResourceMap.delete` to delete dependents first, as CloudFormation does;
    moto's own retry loop then handles whatever is left.
    """
    from moto.cloudformation.parsing import ResourceMap

    delete = ResourceMap.delete

    def delete_dependents_first(self: Any) -> None:
        for logical_id in deletion_order(self._resource_json_map):
            resource_json = self._resource_json_map[logical_id]
            parsed = self._parsed_resources.get(logical_id)
            if resource_json.get("DeletionPolicy") == "Retain" or parsed is None:
                continue
            if isinstance(parsed, str):
                continue
            try:
                self._delete_resource(parsed, resource_json)
            except Exception as error:  # moto's loop below retries, and raises if still stuck
                LOG.debug("deleting %s failed, left to moto's retries: %s", logical_id, error)
            else:
                self._parsed_resources.pop(logical_id, None)
        delete(self)

    patch(ResourceMap, "delete", delete_dependents_first)
