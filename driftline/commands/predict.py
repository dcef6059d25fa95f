"""`driftline predict --model M [--env local] < rows.json`: score rows on an endpoint's `live`.

Input on stdin is the endpoint's request document, `{"rows": [{feature: value, ...}, ...]}`, or
a bare list of rows. The endpoint function's `live` alias is invoked directly (by its ARN), so
the same command works on AWS and on the twin. A model without a dedicated endpoint (any model
not shipped in `models/`) is answered by the shared endpoint, which is sent the model name with
the rows.
Output is the endpoint's response document as JSON: predictions, and classes + probabilities
for classifiers. A refused request (bad row, too many rows, no model deployed) is one line
naming the row, column and reason, exit 2.

`--url` sends the request through the endpoint's Function URL instead: a SigV4-signed POST
(AWS_IAM auth), the way an HTTP client of the endpoint calls it, on AWS and on the twin alike.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from driftline.aws import client, post_to_function_url, stack_outputs
from driftline.commands.endpoints import (
    ENDPOINTS_OUTPUT,
    endpoint_target,
    endpoint_targets,
)
from driftline.envs import add_env_argument
from driftline.errors import DriftlineError, UsageError
from driftline.output import print_json
from functions.shared.endpoints import LIVE_ALIAS, EndpointTarget

SHARED_ENDPOINT_OUTPUT = "SharedEndpointFunction"
SHARED_URL_OUTPUT = "SharedEndpointUrl"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "predict", help="score JSON rows from stdin on a model's live endpoint"
    )
    parser.add_argument("--model", required=True, help="the endpoint's model name")
    add_env_argument(parser)
    parser.add_argument(
        "--json", action="store_true", help="accepted for symmetry; output is always JSON"
    )
    parser.add_argument(
        "--url",
        action="store_true",
        help="POST to the endpoint's Function URL (SigV4-signed) instead of invoking its alias",
    )
    parser.set_defaults(handler=run)


def read_request(text: str) -> Any:
    """The request document from stdin, checked only for being JSON the endpoint can take."""
    if not text.strip():
        raise UsageError('stdin is empty: pipe {"rows": [{feature: value, ...}]} into predict')
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"stdin is not valid JSON: {error}") from None
    if not isinstance(document, (dict, list)):
        raise UsageError('stdin must hold {"rows": [...]} or a list of rows')
    return document


def invoke_live(outputs: Mapping[str, str], env: str, model: str, request: Any) -> Any:
    """Send one request to the model's `live` alias; Lambda-level failures raise."""
    dedicated = endpoint_targets(outputs, env)
    if model in dedicated:
        target = dedicated[model]
    elif not outputs.get(SHARED_ENDPOINT_OUTPUT):
        target = endpoint_target(outputs, env, model)  # one line naming the known endpoints
    else:
        target = EndpointTarget(model=model, function_name=outputs[SHARED_ENDPOINT_OUTPUT])
        rows = request.get("rows") if isinstance(request, Mapping) else request
        request = {"model": model, "rows": rows}
    lambda_client = client("lambda")
    # The alias ARN names the qualifier in the function name itself: the twin's emulator
    # ignores a separate Qualifier on invoke (it would run $LATEST), AWS accepts both.
    alias_arn = lambda_client.get_alias(
        FunctionName=target.function_name, Name=target.alias or LIVE_ALIAS
    )["AliasArn"]
    response = lambda_client.invoke(
        FunctionName=alias_arn, Payload=json.dumps(request).encode("utf-8")
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        detail = payload if isinstance(payload, dict) else {}
        raise DriftlineError(
            f"endpoint {model} failed: {detail.get('errorType', 'Error')}: "
            f"{str(detail.get('errorMessage', payload)).splitlines()[0]}"
        )
    return payload


def post_live(outputs: Mapping[str, str], env: str, model: str, request: Any) -> Any:
    """Send one request through the model's Function URL; HTTP-level failures raise.

    A model on the shared endpoint is addressed by path: `<SharedEndpointUrl>/models/<model>`.
    """
    dedicated = endpoint_targets(outputs, env)
    if model in dedicated:
        url = dedicated[model].url
    elif outputs.get(SHARED_URL_OUTPUT):
        url = f"{outputs[SHARED_URL_OUTPUT].rstrip('/')}/models/{model}"
    else:
        url = endpoint_target(outputs, env, model).url  # one line naming the known endpoints
    if not url:
        raise UsageError(
            f"endpoint {model} in env {env!r} has no Function URL in output {ENDPOINTS_OUTPUT}: "
            "call predict without --url"
        )
    status, document = post_to_function_url(url, request)
    if isinstance(document, dict) and "status" in document:
        return document  # the endpoint's own answer: predictions, or why it refused the rows
    message = document.get("Message", document) if isinstance(document, dict) else document
    raise DriftlineError(
        f"endpoint {model} answered HTTP {status} through its Function URL: "
        f"{str(message).strip()[:300] or 'no body'}"
    )


def run(args: argparse.Namespace) -> int:
    request = read_request(sys.stdin.read())
    send = post_live if args.url else invoke_live
    payload = send(stack_outputs(args.env), args.env, args.model, request)
    if not isinstance(payload, dict) or payload.get("status") != 200:
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        status = payload.get("status") if isinstance(payload, dict) else None
        raise UsageError(
            f"endpoint {args.model} refused the request ({status} {error.get('code', '')}): "
            f"{error.get('message', payload)}"
        )
    print_json(payload)
    return 0
