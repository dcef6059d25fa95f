"""checkov exceptions kept beside the resource they concern, each with its reason.

`make test` runs checkov over every synthesized env (tests/infra/test_checkov.py). A check that
does not apply to one resource is skipped on that resource only, in its template metadata
(`Metadata.checkov.skip`, which checkov reads), never in `.checkov.yaml`; the checks skipped
there apply to no resource of this stack at all, each with its reason beside it.
"""

from __future__ import annotations

import jsii
from aws_cdk import CfnResource, IAspect
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

ASYNC_DEAD_LETTERS = (
    "Invoked asynchronously: failed events go to its on-failure destination (the "
    "undelivered-events SQS queue, alarmed), Lambda's successor to a function DLQ"
)
DEPLOY_TIME_HANDLER = (
    "CDK's handler that CloudFormation calls synchronously (a custom resource) at deploy time "
    "to configure bucket notifications; no asynchronous invocation reaches it"
)
SYNC_ONLY = (
    "Invoked synchronously only (state machine task, Function URL, direct invoke), where a "
    "function DLQ never receives anything; tests/infra/test_undelivered_events.py fails if an "
    "asynchronous trigger reaches a function without an on-failure destination"
)


def skip_check(construct: IConstruct, check_id: str, reason: str) -> None:
    """Skip checkov's `check_id` on the CloudFormation resource behind `construct`."""
    if not reason.strip():
        raise ValueError(f"checkov skip {check_id} on {construct.node.path} needs a reason")
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    metadata = resource.get_metadata("checkov") or {}
    skips = [*metadata.get("skip", []), {"id": check_id, "comment": reason}]
    resource.add_metadata("checkov", {**metadata, "skip": skips})


@jsii.implements(IAspect)
class ExplainDeadLetters:
    """CKV_AWS_116 (a function DLQ) skipped on each function with the reason that holds for it:
    an on-failure destination when it is invoked asynchronously, else synchronous-only use (CDK's
    own deploy-time handlers included). An aspect on every stack (infra/app_builder.py), because
    the destination is configured after the function is built."""

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, lambda_.Function):
            has_destination = node.node.try_find_child("EventInvokeConfig") is not None
            skip_check(node, "CKV_AWS_116", ASYNC_DEAD_LETTERS if has_destination else SYNC_ONLY)
        elif (
            isinstance(node, CfnResource)
            and node.cfn_resource_type == "AWS::Lambda::Function"
            and not isinstance(node.node.scope, lambda_.Function)
        ):
            skip_check(node, "CKV_AWS_116", DEPLOY_TIME_HANDLER)
