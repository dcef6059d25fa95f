"""`driftline predict --model M [--env local] < rows.json`: score rows on an endpoint's `live`.

Input on stdin is the endpoint's request document, `{"rows": [{feature: value, ...}, ...]}`, or
a bare list of rows. The endpoint function's `live` alias is invoked directly (by its ARN),
so the same command works on AWS and on the twin, where Function URLs are not served.
Output is the endpoint's response document as JSON: predictions, and classes + probabilities
for classifiers. A refused request (bad row, too many rows, no model deployed) is one line
naming the row, column and reason, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from driftline.aws import client, stack_outputs
from driftline.commands.endpoints import endpoint_target
from driftline.errors import DriftlineError, UsageError
from driftline.output import print_json
from functions.shared.endpoints import LIVE_ALIAS


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "predict", help="score JSON rows from stdin on a model's live endpoint"
    )
    parser.add_argument("--model", required=True, help="the endpoint's model name")
    parser.add_argument(
        "--env", default="local", help="local, dev, staging or prod (default: local)"
    )
    parser.add_argument(
        "--json", action="store_true", help="accepted for symmetry; output is always JSON"
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
    target = endpoint_target(outputs, env, model)
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


def run(args: argparse.Namespace) -> int:
    request = read_request(sys.stdin.read())
    payload = invoke_live(stack_outputs(args.env), args.env, args.model, request)
    if not isinstance(payload, dict) or payload.get("status") != 200:
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        status = payload.get("status") if isinstance(payload, dict) else None
        raise UsageError(
            f"endpoint {args.model} refused the request ({status} {error.get('code', '')}): "
            f"{error.get('message', payload)}"
        )
    print_json(payload)
    return 0
