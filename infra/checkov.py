"""checkov exceptions kept beside the resource they concern, each with its reason.

`make test` runs checkov over every synthesized env (tests/infra/test_checkov.py). A check that
does not apply to one resource is skipped on that resource only, in its template metadata
(`Metadata.checkov.skip`, which checkov reads), never in `.checkov.yaml`; the checks skipped
there apply to no resource of this stack at all, each with its reason beside it.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct


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
