"""boto3 access through the standard chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL).

boto3 itself honours AWS_ENDPOINT_URL, so the same code reaches AWS or the twin.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ProfileNotFound

from driftline.errors import UsageError

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"})


def client(service: str, region: str | None = None, *, profile: str | None = None) -> Any:
    """A client from the standard chain, or from a named profile when one is given."""
    try:
        session = boto3.session.Session(region_name=region, profile_name=profile)
    except ProfileNotFound:
        raise UsageError(f"AWS profile {profile!r} not found in the AWS config files") from None
    return session.client(service, config=_RETRIES)


def stack_name(env: str, part: str) -> str:
    return f"Driftline-{env}-{part}"


STACK_PARTS: tuple[str, ...] = ("Data", "Pipeline", "Serving", "Monitoring")


def stack_outputs(
    env: str, *, region: str | None = None, profile: str | None = None
) -> dict[str, str]:
    """Every output of every `Driftline-<env>-*` stack, as name → value.

    Raises UsageError naming the stack when none of the env's stacks exists.
    """
    cloudformation = client("cloudformation", region, profile=profile)
    outputs: dict[str, str] = {}
    found: list[str] = []
    for part in STACK_PARTS:
        name = stack_name(env, part)
        try:
            stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
        except ClientError as error:
            if "does not exist" in str(error):
                continue
            raise UsageError(
                f"cannot read stack {name}: {error.response['Error']['Message']}"
            ) from None
        found.append(name)
        for output in stacks[0].get("Outputs", []):
            outputs[output["OutputKey"]] = output["OutputValue"]
    if not found:
        raise UsageError(
            f"stack {stack_name(env, 'Data')} does not exist: deploy env {env!r} first"
        )
    return outputs


def require_output(outputs: dict[str, str], key: str, env: str) -> str:
    try:
        return outputs[key]
    except KeyError:
        raise UsageError(f"output {key} not found in the stacks of env {env!r}") from None
