"""`driftline predict --url`: the request goes through the endpoint's Function URL, SigV4-signed.

The Function URL is a local HTTP server that records what it received and answers what the
test says; stack outputs come from moto. The twin's own signature check (the one its Function
URLs apply) verifies what the CLI sent.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftline.cli import main
from driftline.twin.adapters import sigv4_problem

pytestmark = pytest.mark.unit

ROWS = {"rows": [{"x": 1.0}]}


@dataclass
class FunctionUrl:
    """A stand-in Function URL: records requests, answers with `status` and `reply`."""

    url: str
    status: int = 200
    reply: Any = None
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def function_url() -> Iterator[FunctionUrl]:
    state = FunctionUrl(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            state.received.append(
                {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
            answer = json.dumps(state.reply).encode()
            self.send_response(state.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/_lambda-url/abc/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def serving_stack(monkeypatch: pytest.MonkeyPatch, function_url: FunctionUrl) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    endpoints = {"iris": {"function_name": "iris-fn", "alias": "live", "url": function_url.url}}
    template = {
        "Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}},
        "Outputs": {"Endpoints": {"Value": json.dumps(endpoints)}},
    }
    with mock_aws():
        boto3.client("cloudformation").create_stack(
            StackName="Driftline-dev-Serving", TemplateBody=json.dumps(template)
        )
        # mock_aws swaps in credentials of its own; the CLI signs with these, as on the twin.
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        yield


def predict(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(ROWS)))
    code = main(["predict", "--model", "iris", "--env", "dev", "--url", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_url_posts_signed_json_and_prints_the_answer(
    serving_stack: None,
    function_url: FunctionUrl,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    function_url.reply = {"status": 200, "request_id": "r-1", "predictions": [0]}

    code, out, _ = predict(monkeypatch, capsys)

    assert code == 0 and json.loads(out) == function_url.reply
    (request,) = function_url.received
    assert json.loads(request["body"]) == ROWS
    assert request["headers"]["content-type"] == "application/json"
    assert "/us-east-1/lambda/aws4_request" in request["headers"]["authorization"]
    sent_url = f"http://{request['headers']['host']}{request['path']}"
    problem = sigv4_problem(
        "POST", sent_url, request["headers"], request["body"], region="us-east-1"
    )
    assert problem is None


def test_predict_url_reports_a_refused_request_like_an_invoke(
    serving_stack: None,
    function_url: FunctionUrl,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    function_url.status = 400
    function_url.reply = {
        "status": 400,
        "request_id": "r-2",
        "error": {"code": "InvalidValue", "message": "row 0, column x: not a number"},
    }

    code, out, err = predict(monkeypatch, capsys)

    assert code == 2 and out == ""
    assert "refused the request (400 InvalidValue): row 0, column x: not a number" in err


def test_predict_url_names_the_http_status_of_a_url_level_failure(
    serving_stack: None,
    function_url: FunctionUrl,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    function_url.status = 403
    function_url.reply = {"Message": "Forbidden"}

    code, out, err = predict(monkeypatch, capsys)

    assert code == 2 and out == ""
    assert err.strip() == (
        "driftline: endpoint iris answered HTTP 403 through its Function URL: Forbidden"
    )
