"""Function URLs on the twin: a SigV4-signed HTTP request reaches the function behind the URL.

On the bare `moto_server` of tests/twin/conftest.py (one per module): a CloudFormation stack
with a function, a version, a `live` alias and an AWS_IAM URL on the alias (as an endpoint has),
plus a second function behind an AuthType NONE URL. Requests go over plain urllib.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from driftline.aws import post_to_function_url
from driftline.twin.adapters import FUNCTION_URL_PREFIX, function_url_response
from tests.twin.moto_server import REGION, MotoServer, inline_function, live_url

pytestmark = [pytest.mark.twin]

HANDLER = """
import base64, json, os

def handler(event, context):
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("latin-1")
    if body == "raise":
        raise RuntimeError("the model is broken")
    if body == "list":
        return ["not", "an", "http", "response"]
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Served-By": "twin-test"},
        "body": json.dumps({
            "event": event,
            "request_id": context.aws_request_id,
            "invoked": context.invoked_function_arn,
            "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
        }),
    }
"""

CREDENTIALS = Credentials("testing", "testing", "testing")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lowercase names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    url: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    credentials: Credentials | None = CREDENTIALS,
    service: str = "lambda",
    tamper: bytes | None = None,
) -> Reply:
    """One request over urllib, SigV4-signed unless `credentials` is None; `tamper` replaces
    the body after signing."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if credentials is not None:
        SigV4Auth(credentials, service, REGION).add_auth(request)
    sent = urllib.request.Request(
        url, data=tamper if tamper is not None else body, headers=dict(request.headers)
    )
    sent.method = method
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return Reply(response.status, lowercase(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, lowercase(error.headers), error.read())


def lowercase(headers: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in headers.items()}


def served(reply: Reply) -> dict[str, Any]:
    assert reply.status == 201, reply
    document: dict[str, Any] = reply.json()
    return document


@pytest.fixture(scope="module")
def urls(moto_server: MotoServer) -> dict[str, str]:
    role = moto_server.role()
    function = inline_function(HANDLER, role)
    template = {
        "Resources": {
            "Fn": function,
            **live_url(),
            "Open": function,
            "OpenUrl": {
                "Type": "AWS::Lambda::Url",
                "Properties": {
                    "TargetFunctionArn": {"Fn::GetAtt": ["Open", "Arn"]},
                    "AuthType": "NONE",
                },
            },
        },
        "Outputs": {
            "Url": {"Value": {"Fn::GetAtt": ["Url", "FunctionUrl"]}},
            "OpenUrl": {"Value": {"Fn::GetAtt": ["OpenUrl", "FunctionUrl"]}},
            "Function": {"Value": {"Ref": "Fn"}},
            "Alias": {"Value": {"Ref": "Live"}},
        },
    }
    return moto_server.deploy(template)


def test_the_stack_reports_a_url_on_the_twins_own_address(
    moto_server: MotoServer, urls: dict[str, str]
) -> None:
    prefix = f"http://127.0.0.1:{moto_server.port}{FUNCTION_URL_PREFIX}"
    assert urls["Url"].startswith(prefix) and urls["Url"].endswith("/")
    assert urls["OpenUrl"].startswith(prefix) and urls["OpenUrl"] != urls["Url"]
    config = moto_server.client("lambda").get_function_url_config(FunctionName=urls["Function"])
    assert config["FunctionUrl"] == urls["Url"] and config["AuthType"] == "AWS_IAM"


def test_a_signed_post_gets_the_functions_status_headers_and_body(urls: dict[str, str]) -> None:
    reply = send(urls["Url"], b'{"rows": []}', headers={"content-type": "application/json"})

    document = served(reply)
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["x-served-by"] == "twin-test"
    # The alias the URL is attached to was invoked: its version, its ARN in the context.
    assert document["version"] == "1" and document["invoked"] == urls["Alias"]
    assert reply.headers["x-amzn-requestid"] == document["request_id"]


def test_the_event_is_a_payload_format_2_event(
    moto_server: MotoServer, urls: dict[str, str]
) -> None:
    before_ms = int(time.time() * 1000)
    reply = send(
        f"{urls['Url']}models/iris?verbose=1&tag=a&tag=b",
        b'{"rows": [{"x": 1}]}',
        headers={"content-type": "application/json", "X-Custom": "Yes", "Cookie": "a=1; b=2"},
    )

    event = served(reply)["event"]
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/models/iris"
    assert event["rawQueryString"] == "verbose=1&tag=a&tag=b"
    assert event["queryStringParameters"] == {"verbose": "1", "tag": "a,b"}
    assert event["headers"]["x-custom"] == "Yes"  # names lowercased, values as sent
    assert event["headers"]["content-type"] == "application/json"
    assert event["cookies"] == ["a=1", "b=2"] and "cookie" not in event["headers"]
    assert event["body"] == '{"rows": [{"x": 1}]}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/models/iris"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["http"]["userAgent"].startswith("Python-urllib")
    assert context["authorizer"]["iam"]["accessKey"] == "testing"
    assert context["accountId"] == context["authorizer"]["iam"]["accountId"]
    assert context["requestId"] == reply.headers["x-amzn-requestid"]
    assert before_ms <= context["timeEpoch"] <= int(time.time() * 1000)
    assert context["apiId"] == context["domainPrefix"] == urls["Url"].rstrip("/").split("/")[-1]


def test_a_binary_body_arrives_base64_encoded(urls: dict[str, str]) -> None:
    payload = bytes(range(256))
    reply = send(urls["Url"], payload, headers={"content-type": "application/octet-stream"})

    event = served(reply)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_an_unsigned_request_is_forbidden(urls: dict[str, str]) -> None:
    reply = send(urls["Url"], b"{}", credentials=None)

    assert reply.status == 403
    assert reply.json() == {"Message": "Forbidden"}


@pytest.mark.parametrize(
    ("credentials", "service", "tamper", "message"),
    [
        (Credentials("testing", "not-the-secret"), "lambda", None, "signature we calculated"),
        (CREDENTIALS, "lambda", b'{"rows": "changed"}', "signature we calculated"),
        (CREDENTIALS, "execute-api", None, "scoped to correct service"),
        (Credentials("AKIAOTHER", "testing"), "lambda", None, "security token"),
    ],
    ids=["wrong-secret", "body-changed-after-signing", "wrong-service", "unknown-key"],
)
def test_a_bad_signature_is_forbidden(
    urls: dict[str, str],
    credentials: Credentials,
    service: str,
    tamper: bytes | None,
    message: str,
) -> None:
    reply = send(
        urls["Url"], b'{"rows": []}', credentials=credentials, service=service, tamper=tamper
    )

    assert reply.status == 403
    assert message in reply.json()["Message"]


def test_a_presigned_get_is_accepted(urls: dict[str, str]) -> None:
    request = AWSRequest(method="GET", url=f"{urls['Url']}health?probe=1")
    SigV4QueryAuth(CREDENTIALS, "lambda", REGION, expires=60).add_auth(request)
    reply = send(request.url, method="GET", credentials=None)

    event = served(reply)["event"]
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["rawPath"] == "/health" and "body" not in event


def test_a_function_error_is_a_502(urls: dict[str, str]) -> None:
    reply = send(urls["Url"], b"raise", headers={"content-type": "text/plain"})

    assert reply.status == 502
    assert reply.json() == {"Message": "Internal Server Error"}


def test_a_result_that_is_not_an_http_response_is_a_200_json_body(urls: dict[str, str]) -> None:
    reply = send(urls["Url"], b"list", headers={"content-type": "text/plain"})

    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == ["not", "an", "http", "response"]


def test_an_auth_type_none_url_needs_no_signature(urls: dict[str, str]) -> None:
    reply = send(urls["OpenUrl"], b"{}", credentials=None, headers={"content-type": "text/plain"})

    event = served(reply)["event"]
    assert event["version"] == "2.0" and event["body"] == "{}"
    assert "authorizer" not in event["requestContext"]
    assert event["requestContext"]["accountId"] == "anonymous"
    assert served(send(urls["OpenUrl"], b"{}"))["version"] == "$LATEST"  # unqualified target


def test_the_cli_helper_posts_signed_json(
    urls: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    status, document = post_to_function_url(f"{urls['Url']}models/iris", {"rows": [{"x": 1}]})

    assert status == 201
    event = document["event"]
    assert event["rawPath"] == "/models/iris"
    assert json.loads(event["body"]) == {"rows": [{"x": 1}]}


def test_a_deleted_url_is_not_found(moto_server: MotoServer) -> None:
    lambda_client = moto_server.client("lambda")
    name = moto_server.zip_function("def handler(event, context):\n    return 1\n")
    url = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")[
        "FunctionUrl"
    ]
    assert send(url, credentials=None).status == 200

    lambda_client.delete_function_url_config(FunctionName=name)

    reply = send(url, credentials=None)
    assert reply.status == 404 and reply.json() == {"Message": "Not Found"}


def test_an_http_response_object_becomes_that_response() -> None:
    status, headers, body = function_url_response(
        json.dumps(
            {
                "statusCode": 418,
                "headers": {"X-Kind": "teapot"},
                "cookies": ["a=1; Max-Age=60"],
                "body": base64.b64encode(b"\x00\xff").decode(),
                "isBase64Encoded": True,
            }
        ).encode(),
        function_error=False,
    )

    assert status == 418 and body == b"\x00\xff"
    assert ("x-kind", "teapot") in headers and ("set-cookie", "a=1; Max-Age=60") in headers
    assert ("content-type", "application/json") in headers  # Lambda's default
    assert function_url_response(b'{"statusCode": "abc"}', function_error=False)[0] == 502
