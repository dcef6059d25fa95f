"""The inference endpoint: `POST {"rows": [{feature: value, ...}, ...]}` → predictions.

Two transports, one request format:
- the Function URL on the `live` alias (IAM auth): the HTTP body is the request document and
  the reply is an HTTP response whose body is the response document;
- a direct invoke (`aws lambda invoke --qualifier live`, `driftline predict`): the payload is the
  request document and the reply is the response document itself.
A bare JSON list of rows is accepted as shorthand for `{"rows": [...]}` in both.

The shared endpoint (see `functions/inference/service.py`) serves any deployed model by name:
`POST /models/<model>` on its URL, or `{"model": "<model>", "rows": [...]}` on either
transport. Its metrics carry the dimension `Model`; a model that fails to score answers 500
`ModelError` and counts in `ModelErrors` (dimensions `Model`, `ModelVersion`), which the deploy
step watches during a canary, instead of raising: one broken model must not count against
the function every other model shares.

Settings (environment, set by the Serving stack; the model ones by the deploy step):
- `DRIFTLINE_EXTRA_FEATURES`: `ignore` (default) scores rows carrying keys the model does not
  take and lists those keys in `ignored_features`; `reject` answers 400 naming row and key;
- `DRIFTLINE_MAX_ROWS` (413 `TooManyRows`) and `DRIFTLINE_MAX_PAYLOAD_BYTES` (413
  `PayloadTooLarge`, checked on a URL body before parsing it);
- `DRIFTLINE_CAPTURE_SAMPLE_RATE` in [0, 1]: the share of scored requests written to
  `captures/<model>/date=YYYY-MM-DD/hour=HH/<request-id>.jsonl`, one JSON line per row;
- `DRIFTLINE_MODEL_VERSION`, `DRIFTLINE_MODEL_KEY`, `DRIFTLINE_SERVING_KEY/_SHA256`: the model
  this published version serves (see `functions/inference/service.py`).

Every response document carries `status` (the HTTP status) and `request_id`; success adds
`model`, `model_version`, `predictions` and, for classifiers, `classes` + `probabilities` (one
list per row, in `classes` order); an unusable request gets `error` with `code`, `message` and,
for a bad value, `row`, `column` and `reason`. Client mistakes are answered (400/405/413, 503
while no model is deployed), never raised: a raised error counts in the alias' Errors metric,
which rolls deployments back, and that must mean the *model or code* is broken.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.inference.routing import get_router, requested_model
from functions.inference.service import (
    Deployed,
    InferenceSettings,
    capture,
    deployed_model,
    get_settings,
    response_document,
    sampled,
    score,
)
from pipelines.metric_names import (
    CAPTURE_FAILURES,
    MODEL_DIMENSION,
    MODEL_ERRORS,
    MODEL_VERSION_DIMENSION,
    NAMESPACE,
    PREDICTED_ROWS,
    REJECTED_REQUESTS,
)
from pipelines.request_schema import RequestError, check_rows, parse_body, request_rows

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    request_id = context.aws_request_id
    http = _is_function_url_event(event)
    if settings.model_name is not None and not metrics.default_dimensions:
        metrics.set_default_dimensions(Model=settings.model_name)
    try:
        document = _url_request(event, settings) if http else event
        path = _raw_path(event) if http else None
        response = _predict(document, path, settings, request_id)
    except RequestError as error:
        metrics.add_metric(name=REJECTED_REQUESTS, unit=MetricUnit.Count, value=1)
        logger.info("request refused", extra={"status": error.status, "error": error.to_dict()})
        response = {"status": error.status, "request_id": request_id, "error": error.to_dict()}
    return _http_response(response) if http else response


def _predict(
    document: Any, path: str | None, settings: InferenceSettings, request_id: str
) -> dict[str, Any]:
    if settings.shared:
        model = requested_model(document, path if path not in (None, "", "/") else None)
        logger.append_keys(model=model)
        router = get_router(settings)
        target = router.route(model).pick()
        # Only a deployed model becomes a dimension: callers cannot mint metrics by name.
        metrics.add_dimension(name=MODEL_DIMENSION, value=model)
        rows = request_rows(document, settings.limits)
        deployed = router.deployed(model, target)
    else:
        rows = request_rows(document, settings.limits)
        deployed = deployed_model(settings)
    checked = check_rows(rows, deployed.schema, settings.limits)
    if settings.shared:
        try:
            scored = score(deployed, checked)
        except Exception:
            logger.exception("model failed to score", extra={"model_version": deployed.version})
            _count_model_error(deployed)
            raise RequestError(
                f"model {deployed.model} v{deployed.version} failed to score the request",
                status=500,
                code="ModelError",
            ) from None
    else:
        scored = score(deployed, checked)
    metrics.add_metric(name=PREDICTED_ROWS, unit=MetricUnit.Count, value=len(checked))
    if sampled(settings.capture_sample_rate):
        try:
            capture(settings, deployed, checked, scored, request_id)
        except Exception:  # a lost capture must never cost the caller their prediction
            logger.exception("capture failed")
            metrics.add_metric(name=CAPTURE_FAILURES, unit=MetricUnit.Count, value=1)
    return response_document(deployed, checked, scored, request_id)


def _count_model_error(deployed: Deployed) -> None:
    """`ModelErrors` per model version: what a canary of that version is judged on."""
    with single_metric(
        name=MODEL_ERRORS, unit=MetricUnit.Count, value=1, namespace=NAMESPACE
    ) as metric:
        metric.add_dimension(name=MODEL_DIMENSION, value=deployed.model)
        metric.add_dimension(name=MODEL_VERSION_DIMENSION, value=str(deployed.version))


def _is_function_url_event(event: Any) -> bool:
    if not isinstance(event, Mapping):
        return False
    context = event.get("requestContext")
    return isinstance(context, Mapping) and isinstance(context.get("http"), Mapping)


def _url_request(event: Mapping[str, Any], settings: InferenceSettings) -> Any:
    method = event["requestContext"]["http"].get("method", "POST")
    if not isinstance(method, str) or method.upper() != "POST":
        shown = method[:20] if isinstance(method, str) else "?"
        raise RequestError(
            f"method {shown} is not allowed; POST a JSON body", status=405, code="MethodNotAllowed"
        )
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise RequestError("request body must be text (JSON)", code="MalformedBody")
    if event.get("isBase64Encoded") is True and body:
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("request body is not valid base64", code="MalformedBody") from None
    return parse_body(body, settings.limits)


def _raw_path(event: Mapping[str, Any]) -> str:
    path = event.get("rawPath")
    return path if isinstance(path, str) else ""


def _http_response(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": document["status"],
        "headers": {"content-type": "application/json", "x-request-id": document["request_id"]},
        "body": json.dumps(document, separators=(",", ":"), allow_nan=False),
    }
