"""Deploy a synthesized cloud assembly onto a running twin, over HTTP, like `cdk deploy --all`.

The order comes from the assembly's manifest (a stack after the stacks it imports from), the
templates go in unmodified, and every wait is bounded: a resource the emulator cannot create
ends the deploy with that resource's logical ID and reason, never a hang. Resources moto's
CloudFormation skips are reported, not hidden: a twin that silently lacks an alarm or a
subscription would pass tests that AWS would fail.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

from driftline.errors import DriftlineError
from driftline.twin.assets import LOCAL_REGION, PublishReport, publish, read_json
from driftline.twin.server import FAKE_CREDENTIALS

DEFAULT_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.1
_DONE = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})
_RECREATE = frozenset({"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"})
# Types with no runtime behaviour: skipping them loses nothing, so they are not reported.
_INERT_TYPES = frozenset({"AWS::CDK::Metadata", "AWS::CloudFormation::WaitConditionHandle"})
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]

Progress = Callable[[str], None]


class DeployError(DriftlineError):
    """A stack did not reach a complete state; the message names the stack and the resource."""


@dataclass(frozen=True)
class StackPlan:
    """One stack artifact of the assembly, ready to create or update."""

    name: str
    template_file: Path
    template: dict[str, Any]
    template_hash: str
    tags: dict[str, str]
    termination_protection: bool
    depends_on: tuple[str, ...]
    template_url: str | None

    @property
    def has_resources(self) -> bool:
        return bool(self.template.get("Resources"))


@dataclass(frozen=True)
class StackResult:
    name: str
    action: str
    status: str
    template_hash: str
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployResult:
    stacks: tuple[StackResult, ...]
    unsupported: dict[str, list[str]]
    assets: PublishReport
    seconds: float

    @property
    def outputs(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for stack in self.stacks:
            merged.update(stack.outputs)
        return merged

    def to_json(self) -> dict[str, Any]:
        return {
            "stacks": [
                {
                    "name": stack.name,
                    "action": stack.action,
                    "status": stack.status,
                    "template_hash": stack.template_hash,
                    "outputs": stack.outputs,
                }
                for stack in self.stacks
            ],
            "unsupported_resource_types": self.unsupported,
            "assets": {
                "uploaded_files": len(self.assets.uploaded_files),
                "pushed_images": list(self.assets.pushed_images),
                "unchanged": self.assets.unchanged,
            },
            "seconds": round(self.seconds, 3),
        }


def twin_session() -> boto3.session.Session:
    """Fake credentials and the local region: the twin accepts anything, AWS accepts none of it."""
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=LOCAL_REGION,
    )


def twin_client(endpoint: str, service: str, *, attempts: int = 3, timeout: float = 60.0) -> Any:
    """A client bound to the twin's endpoint. Mutating CloudFormation calls use attempts=1:
    a retried create_stack would meet its own first attempt as AlreadyExists."""
    config = Config(
        retries={"total_max_attempts": attempts, "mode": "standard"},
        connect_timeout=5,
        read_timeout=timeout,
        s3={"addressing_style": "path"},
    )
    return twin_session().client(service, endpoint_url=endpoint, config=config)


def plan_stacks(cdk_out: Path) -> list[StackPlan]:
    """Stack artifacts in dependency order (manifest order among independent stacks)."""
    manifest = read_json(cdk_out / "manifest.json")
    artifacts: Mapping[str, Any] = manifest.get("artifacts", {})
    stacks = {
        name: art
        for name, art in artifacts.items()
        if art.get("type") == "aws:cloudformation:stack"
    }
    plans: dict[str, StackPlan] = {}
    for name, artifact in stacks.items():
        properties = artifact.get("properties", {})
        template_file = cdk_out / properties["templateFile"]
        text = template_file.read_bytes()
        try:
            template = json.loads(text)
        except json.JSONDecodeError as error:
            raise DeployError(f"{template_file.name}: not JSON ({error})") from None
        plans[name] = StackPlan(
            name=properties.get("stackName", name),
            template_file=template_file,
            template=template,
            template_hash=hashlib.sha256(text).hexdigest(),
            tags={str(k): str(v) for k, v in properties.get("tags", {}).items()},
            termination_protection=bool(properties.get("terminationProtection", False)),
            depends_on=tuple(dep for dep in artifact.get("dependencies", []) if dep in stacks),
            template_url=_https_url(properties.get("stackTemplateAssetObjectUrl")),
        )
    return [
        plans[name]
        for name in _topological(list(plans), {n: p.depends_on for n, p in plans.items()})
    ]


def deploy(
    cdk_out: Path,
    *,
    endpoint: str,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    progress: Progress | None = None,
) -> DeployResult:
    """Publish the assembly's assets, then create or update each stack and wait for it."""
    say = progress or (lambda _message: None)
    started = time.monotonic()
    plans = plan_stacks(cdk_out)
    say(f"publishing assets of {len(plans)} stacks")
    report = publish(cdk_out, s3=twin_client(endpoint, "s3"), ecr=twin_client(endpoint, "ecr"))
    if report.uploaded_files or report.pushed_images:
        files, images = len(report.uploaded_files), len(report.pushed_images)
        say(f"  uploaded {files} files, pushed {images} images")
    cloudformation = twin_client(endpoint, "cloudformation")
    # The twin creates a stack inside the create_stack call (custom resources included), so
    # that call may take as long as the whole stack: its read timeout is the deploy timeout.
    mutate = twin_client(endpoint, "cloudformation", attempts=1, timeout=timeout)
    results: list[StackResult] = []
    unsupported: dict[str, list[str]] = {}
    for plan in plans:
        result = _deploy_stack(plan, cloudformation, mutate, timeout=timeout, say=say)
        results.append(result)
        if result.status in _DONE:
            for resource_type, logical_ids in skipped_resources(cloudformation, plan).items():
                unsupported.setdefault(resource_type, []).extend(
                    f"{plan.name}/{lid}" for lid in logical_ids
                )
    return DeployResult(
        stacks=tuple(results),
        unsupported=unsupported,
        assets=report,
        seconds=time.monotonic() - started,
    )


def skipped_resources(cloudformation: Any, plan: StackPlan) -> dict[str, list[str]]:
    """Template resources the twin's CloudFormation did not create, by type.

    A resource counts as skipped when it is in the template, carries no Condition, is not of
    an inert type, and is absent from the stack's resources: exactly what moto does with a
    type it does not support.
    """
    listed = {
        summary["LogicalResourceId"]
        for summary in _paginate(
            cloudformation, "list_stack_resources", "StackResourceSummaries", plan.name
        )
    }
    skipped: dict[str, list[str]] = {}
    for logical_id, resource in plan.template.get("Resources", {}).items():
        if logical_id in listed or "Condition" in resource or resource.get("Type") in _INERT_TYPES:
            continue
        skipped.setdefault(str(resource.get("Type")), []).append(logical_id)
    return skipped


def describe_stack(cloudformation: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return dict(stacks[0]) if stacks else None


def stack_outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs") or []}


def _deploy_stack(
    plan: StackPlan, cloudformation: Any, mutate: Any, *, timeout: float, say: Progress
) -> StackResult:
    existing = describe_stack(cloudformation, plan.name)
    if existing is not None and existing["StackStatus"].endswith("_IN_PROGRESS"):
        say(f"{plan.name}: waiting for {existing['StackStatus']} to finish")
        existing = _wait(cloudformation, plan.name, timeout=timeout)
    if not plan.has_resources:
        if existing is not None:
            say(f"{plan.name}: template has no resources; deleting the stack")
            _delete(cloudformation, mutate, plan.name, timeout=timeout)
            return StackResult(plan.name, "deleted", "DELETE_COMPLETE", plan.template_hash)
        say(f"{plan.name}: template has no resources; skipped (as `cdk deploy` does)")
        return StackResult(plan.name, "skipped", "NO_RESOURCES", plan.template_hash)
    if existing is not None and existing["StackStatus"] in _RECREATE:
        say(f"{plan.name}: {existing['StackStatus']}; deleting it to create it again")
        _delete(cloudformation, mutate, plan.name, timeout=timeout)
        existing = None
    if existing is None:
        say(f"{plan.name}: creating")
        action = "created"
        arguments = _stack_arguments(plan)
    elif existing["StackStatus"] in _DONE and not _differs(cloudformation, plan, existing):
        return StackResult(
            plan.name,
            "unchanged",
            existing["StackStatus"],
            plan.template_hash,
            stack_outputs(existing),
        )
    else:
        say(f"{plan.name}: updating")
        action = "updated"
        arguments = _stack_arguments(plan)
        arguments.pop("EnableTerminationProtection")
    operation = "create_stack" if action == "created" else "update_stack"
    try:
        _call(getattr(mutate, operation), plan.name, operation, **arguments)
    except _StillRunning:
        # The twin creates resources inside the call; its events name the one it is stuck on.
        raise DeployError(_pending_message(cloudformation, plan.name, timeout)) from None
    final = _wait(cloudformation, plan.name, timeout=timeout)
    status = final["StackStatus"]
    if status not in _DONE:
        raise DeployError(_failure_message(cloudformation, plan.name, status))
    say(f"{plan.name}: {status}")
    return StackResult(plan.name, action, status, plan.template_hash, stack_outputs(final))


def _stack_arguments(plan: StackPlan) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "StackName": plan.name,
        "Capabilities": _CAPABILITIES,
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(plan.tags.items())],
        "EnableTerminationProtection": plan.termination_protection,
    }
    if plan.template_url:
        arguments["TemplateURL"] = plan.template_url
    else:
        arguments["TemplateBody"] = plan.template_file.read_text()
    return arguments


def _differs(cloudformation: Any, plan: StackPlan, existing: Mapping[str, Any]) -> bool:
    deployed_tags = {tag["Key"]: tag["Value"] for tag in existing.get("Tags") or []}
    if deployed_tags != plan.tags:
        return True
    body = cloudformation.get_template(StackName=plan.name)["TemplateBody"]
    deployed = json.loads(body) if isinstance(body, str) else json.loads(json.dumps(body))
    return bool(deployed != plan.template)


class _StillRunning(Exception):
    """The twin did not answer a mutating call within the timeout: it is still working on it."""


def _call(method: Callable[..., Any], stack: str, operation: str, **arguments: Any) -> None:
    try:
        method(**arguments)
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message") or str(error)
        raise DeployError(f"{stack}: {operation} rejected the template: {message}") from None
    except ReadTimeoutError:
        raise _StillRunning(stack) from None
    except BotoCoreError as error:
        raise DeployError(
            f"{stack}: {operation} failed inside the twin ({error}); see the twin's log"
        ) from None


def _delete(cloudformation: Any, mutate: Any, name: str, *, timeout: float) -> None:
    _call(mutate.delete_stack, name, "delete_stack", StackName=name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack = describe_stack(cloudformation, name)
        if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
            return
        if stack["StackStatus"] == "DELETE_FAILED":
            raise DeployError(_failure_message(cloudformation, name, "DELETE_FAILED"))
        time.sleep(POLL_SECONDS)
    raise DeployError(f"{name}: still deleting after {timeout:.0f} s")


def _wait(cloudformation: Any, name: str, *, timeout: float) -> dict[str, Any]:
    """Poll until the stack leaves *_IN_PROGRESS; on timeout name the resources still pending."""
    deadline = time.monotonic() + timeout
    while True:
        stack = describe_stack(cloudformation, name)
        if stack is None:
            raise DeployError(f"{name}: the stack disappeared from the twin while deploying")
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        if time.monotonic() >= deadline:
            raise DeployError(_pending_message(cloudformation, name, timeout))
        time.sleep(POLL_SECONDS)


def _pending_message(cloudformation: Any, name: str, timeout: float) -> str:
    stack = describe_stack(cloudformation, name)
    status = stack["StackStatus"] if stack else "not created"
    pending = [
        f"{event['LogicalResourceId']} ({event['ResourceType']})"
        for event in _latest_events(cloudformation, name)
        if event["ResourceStatus"].endswith("_IN_PROGRESS") and event["LogicalResourceId"] != name
    ]
    waiting_for = ", ".join(pending) if pending else "the stack itself"
    return f"{name}: still {status} after {timeout:.0f} s, waiting for {waiting_for}"


def _failure_message(cloudformation: Any, name: str, status: str) -> str:
    failed = [
        event
        for event in _latest_events(cloudformation, name)
        if event["ResourceStatus"].endswith("_FAILED") and event["LogicalResourceId"] != name
    ]
    if failed:
        first = failed[0]
        reason = first.get("ResourceStatusReason") or "no reason given"
        return f"{name} {status}: {first['LogicalResourceId']} ({first['ResourceType']}): {reason}"
    events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    reasons = [e.get("ResourceStatusReason") for e in events if e["LogicalResourceId"] == name]
    reason = next((r for r in reasons if r), "no reason given")
    return f"{name} {status}: {reason}"


def _latest_events(cloudformation: Any, name: str) -> list[dict[str, Any]]:
    """The newest event of each logical resource, oldest resource first."""
    events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    latest: dict[str, dict[str, Any]] = {}
    for event in reversed(events):  # the API lists newest first
        latest[event["LogicalResourceId"]] = event
    return sorted(latest.values(), key=lambda event: event["Timestamp"])


def _paginate(client: Any, operation: str, key: str, stack: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = getattr(client, operation)(
            StackName=stack, **({"NextToken": token} if token else {})
        )
        items.extend(page.get(key, []))
        token = page.get("NextToken")
        if not token:
            return items


def _https_url(s3_url: Any) -> str | None:
    """`s3://bucket/key` → the path-style HTTPS URL CloudFormation (and moto) accept."""
    if not isinstance(s3_url, str) or not s3_url.startswith("s3://"):
        return None
    bucket, _, key = s3_url.removeprefix("s3://").partition("/")
    bucket = bucket.replace("${AWS::AccountId}", "000000000000").replace(
        "${AWS::Region}", LOCAL_REGION
    )
    return f"https://s3.{LOCAL_REGION}.amazonaws.com/{bucket}/{key}"


def _topological(names: Sequence[str], depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    ordered: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise DeployError(f"manifest.json: stack dependency cycle {' -> '.join((*path, name))}")
        state[name] = "visiting"
        for dependency in depends_on.get(name, ()):
            visit(dependency, (*path, name))
        state[name] = "done"
        ordered.append(name)

    for name in names:
        visit(name, ())
    return ordered
