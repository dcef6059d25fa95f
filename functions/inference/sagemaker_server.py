"""The SageMaker Serverless entry point: `/ping` and `/invocations` on port 8080.

SageMaker starts the serving image with `serve` and mounts the model data at /opt/ml/model:
here the registered archive `model.zip` and `version.json` (`{"model_version": N}`), which a
deploy places under `models/<model>/live/`. Requests, answers, refusals and captures are the
Lambda endpoint's (`functions/inference/handler.py`): same request format, same checks, same
scoring, same capture objects; only the transport differs.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from functions.inference.service import (
    Deployed,
    InferenceSettings,
    capture,
    prepare,
    response_document,
    sampled,
    score,
)
from pipelines.request_schema import RequestError, check_rows, parse_body, request_rows
from pipelines.serving_bundle import load_archive

MODEL_DIR = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
PORT = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
# SageMaker reaches the container from outside it, so the server listens on every interface.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


def load_model_dir(model_dir: Path, model: str) -> Deployed:
    """The archive and its version from SageMaker's model directory."""
    version = json.loads((model_dir / "version.json").read_text(encoding="utf-8"))
    serving = load_archive((model_dir / "model.zip").read_bytes())
    return prepare(serving, int(version["model_version"]), model)


def answer(body: bytes, settings: InferenceSettings, deployed: Deployed) -> dict[str, Any]:
    """The response document for one `/invocations` body (errors included, never raised)."""
    request_id = str(uuid.uuid4())
    try:
        rows = request_rows(parse_body(body, settings.limits), settings.limits)
        checked = check_rows(rows, deployed.schema, settings.limits)
        scored = score(deployed, checked)
        if sampled(settings.capture_sample_rate):
            try:
                capture(settings, deployed, checked, scored, request_id)
            except Exception as error:  # a lost capture must never cost the caller an answer
                print(f"capture failed: {error}", file=sys.stderr)
        return response_document(deployed, checked, scored, request_id)
    except RequestError as error:
        return {"status": error.status, "request_id": request_id, "error": error.to_dict()}
    except Exception as error:  # the model or our code failed: a 500 answer, not a dropped socket
        print(f"request {request_id} failed: {error!r}", file=sys.stderr)
        failure = RequestError(
            "the model failed to score the request", status=500, code="ModelError"
        )
        return {"status": 500, "request_id": request_id, "error": failure.to_dict()}


def body_length(header: str | None, settings: InferenceSettings) -> int:
    """The body's declared size; RequestError for a bad header or one above the size limit.

    Checked before reading, so a client cannot make the server wait for (or hold in memory) a
    body it will refuse anyway.
    """
    text = (header or "0").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise RequestError(
            f"content-length {text[:20]!r} is not a byte count", code="MalformedBody"
        )
    length = int(text)
    if length > settings.limits.max_payload_bytes:
        raise RequestError(
            f"request body is {length} bytes; the limit is {settings.limits.max_payload_bytes} "
            "bytes (send fewer rows per request)",
            status=413,
            code="PayloadTooLarge",
        )
    return length


def make_server(
    settings: InferenceSettings, deployed: Deployed, *, host: str, port: int
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/ping":
                self._send(200, {"status": 200, "model_version": deployed.version})
            else:
                self._send(404, {"status": 404})

        def do_POST(self) -> None:
            if self.path != "/invocations":
                self._send(404, {"status": 404})
                return
            try:
                length = body_length(self.headers.get("content-length"), settings)
            except RequestError as error:
                refused = {"status": error.status, "request_id": str(uuid.uuid4())}
                self.close_connection = True  # the unread body must not be parsed as a request
                self._send(error.status, refused | {"error": error.to_dict()})
                return
            document = answer(self.rfile.read(length), settings, deployed)
            self._send(int(document["status"]), document)

        def _send(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    settings = InferenceSettings.from_environ(os.environ)
    server = make_server(
        settings,
        load_model_dir(MODEL_DIR, settings.model_name or ""),
        host=ALL_INTERFACES,
        port=PORT,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
