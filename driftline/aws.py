"""boto3 access through the standard chain (AWS_PROFILE, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL).

boto3 itself honours AWS_ENDPOINT_URL, so the same code reaches AWS or the twin.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
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


_NO_SUCH_OBJECT = frozenset({"NoSuchKey", "404", "NotFound"})


def s3_json(bucket: str, key: str) -> Any:
    """The JSON document at `key`, or None when there is no such object.

    Each command words a missing or unreadable document after what it was looking for, so a
    missing one is None here and a body that is not JSON raises ValueError, not a message.
    """
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in _NO_SUCH_OBJECT:
            return None
        raise
    return json.loads(body)


_FUNCTION_URL_HOST = re.compile(r"^[a-z0-9]+\.lambda-url\.([a-z0-9-]+)\.on\.aws$")


def post_to_function_url(
    url: str,
    document: Any,
    *,
    region: str | None = None,
    profile: str | None = None,
    timeout_s: float = 60.0,
) -> tuple[int, Any]:
    """POST `document` as JSON to a Lambda Function URL with AWS_IAM auth; (status, reply).

    The request is SigV4-signed for service `lambda` with the credentials of the standard chain
    (or `profile`), in the region named by the URL's host (`<id>.lambda-url.<region>.on.aws`),
    else `region`, else the session's (the twin's URLs name no region). The reply is the
    response body parsed as JSON, or its text when it is not JSON. Any HTTP status is returned,
    not raised; an unreachable URL or missing credentials raise UsageError.
    """
    try:
        session = boto3.session.Session(region_name=region, profile_name=profile)
    except ProfileNotFound:
        raise UsageError(f"AWS profile {profile!r} not found in the AWS config files") from None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url!r} is not an http(s) URL")
    named = _FUNCTION_URL_HOST.match(parts.hostname)
    signing_region = named.group(1) if named else session.region_name
    if not signing_region:
        raise UsageError(f"cannot tell the region of {url}: set AWS_DEFAULT_REGION")
    credentials = session.get_credentials()
    if credentials is None:
        raise UsageError(f"no AWS credentials to sign the request to {url}")
    body = json.dumps(document).encode("utf-8")
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"content-type": "application/json"}
    )
    SigV4Auth(credentials.get_frozen_credentials(), "lambda", signing_region).add_auth(request)
    # The scheme is checked above: http(s) only.
    signed = urllib.request.Request(url, body, dict(request.headers), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(signed, timeout=timeout_s) as response:  # noqa: S310
            status, raw = int(response.status), response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UsageError(f"cannot reach {url}: {reason}") from None
    text = raw.decode("utf-8", errors="replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text
