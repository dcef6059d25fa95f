"""Section 7b: Function URLs, answered on the twin's own address, with AWS_IAM (SigV4) auth."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from driftline.twin.adapters.base import LOG, patch, settings, utc
from driftline.twin.adapters.lambdas import INVOKED

FUNCTION_URL_PREFIX = "/_lambda-url/"
"""A twin Function URL is `http://127.0.0.1:<port>/_lambda-url/<url-id>/`.

Not `http://<url-id>.lambda-url.<region>.localhost:<port>/`: `*.localhost` names reach
loopback only where the resolver special-cases them (systemd-resolved, nss-myhostname,
browsers); glibc with `hosts: files dns`, as in most containers and CI runners, answers "Name
or service not known", so urllib, requests and botocore would need /etc/hosts entries. The
path form is the twin's endpoint itself: whatever reaches the twin reaches its URLs, and the
port is known when a stack is created. S3 bucket names cannot contain `_`, so the prefix
never shadows a path-style S3 request.
"""

_SIGNATURE_MAX_SKEW_S = 15 * 60
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_URL_ERROR_BODY = b'{"Message":"Internal Server Error"}'
_TEXT_BODY_TYPES = frozenset({"application/json", "application/javascript", "application/xml"})
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class _ServedUrl:
    """Where one Function URL's requests go: the function and the alias or version it targets."""

    url: str
    account_id: str
    region: str
    function_name: str
    qualifier: str | None


_FUNCTION_URLS: dict[str, _ServedUrl] = {}


def function_url(url_id: str) -> str:
    """The twin's address for Function URL `url_id` (see FUNCTION_URL_PREFIX)."""
    return f"http://127.0.0.1:{settings().port}{FUNCTION_URL_PREFIX}{url_id}/"


def url_id_of(url: str) -> str:
    """The <url-id> of a twin Function URL, or of moto's `https://<url-id>.lambda-url...`."""
    if FUNCTION_URL_PREFIX in url:
        return url.split(FUNCTION_URL_PREFIX, 1)[1].split("/", 1)[0]
    return url.split("//", 1)[-1].split(".", 1)[0]


def split_qualifier(target: str) -> tuple[str, str | None]:
    """(function ARN or name, alias or version or None) of a TargetFunctionArn."""
    parts = target.split(":")
    if target.startswith("arn:"):
        return ":".join(parts[:7]), parts[7] if len(parts) > 7 else None
    return parts[0], parts[1] if len(parts) > 1 else None


def serve_function_url(config: Any, qualifier: str | None) -> None:
    fn = config.function
    _FUNCTION_URLS[url_id_of(config.url)] = _ServedUrl(
        config.url, str(fn.account_id), str(fn.region), str(fn.function_name), qualifier
    )


def forget_function_url(url: str) -> None:
    """Stop serving `url` (its AWS::Lambda::Url resource was deleted)."""
    _FUNCTION_URLS.pop(url_id_of(url), None)


def _served_url(url_id: str) -> tuple[_ServedUrl, str] | None:
    """(target, AuthType) while the function still has this URL; None once it was deleted."""
    from moto.awslambda.utils import get_backend

    served = _FUNCTION_URLS.get(url_id)
    if served is None:
        return None
    try:
        fn = get_backend(served.account_id, served.region).get_function(served.function_name)
    except Exception:
        return None
    config = getattr(fn, "url_config", None)
    if config is None or config.url != served.url:
        return None
    return served, str(config.config.get("AuthType") or "AWS_IAM")


@dataclass(frozen=True)
class _Signature:
    """The SigV4 fields of a request, from its Authorization header or a presigned query."""

    algorithm: str
    credential: str
    signed_headers: str
    signature: str
    amz_date: str
    expires_s: int | None  # presigned requests only


def _request_signature(headers: Mapping[str, str], query: str) -> _Signature | None:
    authorization = headers.get("authorization", "").strip()
    if authorization:
        algorithm, _, rest = authorization.partition(" ")
        fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
        return _Signature(
            algorithm,
            fields.get("Credential", ""),
            fields.get("SignedHeaders", ""),
            fields.get("Signature", ""),
            headers.get("x-amz-date", ""),
            None,
        )
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if "X-Amz-Signature" not in params:
        return None
    expires = params.get("X-Amz-Expires", "")
    return _Signature(
        params.get("X-Amz-Algorithm", ""),
        params.get("X-Amz-Credential", ""),
        params.get("X-Amz-SignedHeaders", ""),
        params["X-Amz-Signature"],
        params.get("X-Amz-Date", ""),
        int(expires) if expires.isdigit() else 0,
    )


def sigv4_problem(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    region: str,
    now: datetime | None = None,
) -> str | None:
    """Why a request is not SigV4-signed by the twin's credentials for `lambda` in `region`
    (the message AWS answers with 403), or None when it is.

    `url` is what the client sent (scheme, Host, raw path and query), `headers` have lowercase
    names. Both the Authorization header and presigned queries (X-Amz-Signature) are checked,
    by recomputing the signature with botocore's signer over the headers the client signed.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from driftline.twin.server import FAKE_CREDENTIALS

    split = urllib.parse.urlsplit(url)
    signature = _request_signature(headers, split.query)
    if signature is None:
        return "Forbidden"
    if signature.algorithm != "AWS4-HMAC-SHA256":
        return f"Unsupported signature algorithm {signature.algorithm!r}: sign with SigV4"
    access_key, _, scope = signature.credential.partition("/")
    scope_date, scope_region, scope_service, terminator = [*scope.split("/"), "", "", "", ""][:4]
    if access_key != FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]:
        return "The security token included in the request is invalid."
    if scope_region != region:
        return f"Credential should be scoped to a valid region, not '{scope_region}'."
    if scope_service != "lambda":
        return "Credential should be scoped to correct service: 'lambda'."
    try:
        signed_at = datetime.strptime(signature.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "Signed requests need an X-Amz-Date header (or query parameter)."
    if scope_date != signature.amz_date[:8] or terminator != "aws4_request":
        return _SIGNATURE_MISMATCH
    age_s = ((now or datetime.now(UTC)) - signed_at).total_seconds()
    if signature.expires_s is None and abs(age_s) > _SIGNATURE_MAX_SKEW_S:
        return f"Signature expired or not yet current: signed at {signature.amz_date}."
    if signature.expires_s is not None and not 0 <= age_s <= signature.expires_s:
        return "Request has expired"
    names = [name for name in signature.signed_headers.split(";") if name]
    declared_hash = headers.get("x-amz-content-sha256") if "x-amz-content-sha256" in names else None
    if declared_hash not in (None, "UNSIGNED-PAYLOAD", hashlib.sha256(body).hexdigest()):
        return "The provided 'x-amz-content-sha256' header does not match what was computed."
    query = "&".join(
        pair for pair in split.query.split("&") if pair and not pair.startswith("X-Amz-Signature=")
    )
    request = AWSRequest(
        method=method,
        url=urllib.parse.urlunsplit((split.scheme, split.netloc, split.path, query, "")),
        data=body,
        headers={name: headers.get(name, "") for name in names},
    )
    request.context["timestamp"] = signature.amz_date
    signer = SigV4Auth(
        Credentials(access_key, FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]), "lambda", region
    )
    # botocore always signs Host and never some headers: a different list cannot be recomputed.
    if signer.signed_headers(signer.headers_to_sign(request)) != ";".join(names):
        return _SIGNATURE_MISMATCH
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    return None if hmac.compare_digest(expected, signature.signature) else _SIGNATURE_MISMATCH


@dataclass(frozen=True)
class _UrlRequest:
    """One HTTP request to a Function URL, as the client sent it."""

    method: str
    raw_path: str  # below the URL's root, e.g. /models/iris
    raw_query: str
    headers: tuple[tuple[str, str], ...]  # lowercase names, in arrival order
    body: bytes
    source_ip: str
    protocol: str


def _environ_request(environ: dict[str, Any]) -> tuple[str, str, _UrlRequest]:
    """(url id, URL as sent, request) of a WSGI request under FUNCTION_URL_PREFIX."""
    from werkzeug.wsgi import get_input_stream

    raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    if raw_uri.startswith(("http://", "https://")):  # absolute-form request line
        split = urllib.parse.urlsplit(raw_uri)
        raw_uri = split.path + (f"?{split.query}" if split.query else "")
    if not raw_uri:
        query = str(environ.get("QUERY_STRING") or "")
        raw_uri = urllib.parse.quote(str(environ.get("PATH_INFO", ""))) + (
            f"?{query}" if query else ""
        )
    raw_path, _, raw_query = raw_uri.partition("?")
    url_id, _, below = raw_path[len(FUNCTION_URL_PREFIX) :].partition("/")
    headers = [
        (key[5:].replace("_", "-").lower(), str(value))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    headers += [
        (key.replace("_", "-").lower(), str(environ[key]))
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH")
        if environ.get(key)
    ]
    request = _UrlRequest(
        method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
        raw_path=f"/{below}",
        raw_query=raw_query,
        headers=tuple(headers),
        body=get_input_stream(environ).read(),
        source_ip=str(environ.get("REMOTE_ADDR", "127.0.0.1")),
        protocol=str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
    )
    host = str(environ.get("HTTP_HOST") or f"127.0.0.1:{settings().port}")
    return url_id, f"http://{host}{raw_uri}", request


def _text_body(content_type: str | None) -> bool:
    """Whether Lambda passes a body with this content type as text (else base64)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_BODY_TYPES
        or media_type.endswith(("+json", "+xml"))
    )


def _iam_caller(account_id: str, access_key: str) -> dict[str, Any]:
    """requestContext.authorizer.iam: the twin's fake credentials act as the account root."""
    return {
        "accessKey": access_key,
        "accountId": account_id,
        "callerId": account_id,
        "cognitoIdentity": None,
        "principalOrgId": None,
        "userArn": f"arn:aws:iam::{account_id}:root",
        "userId": account_id,
    }


def function_url_event(
    request: _UrlRequest,
    *,
    url_id: str,
    account_id: str,
    caller: dict[str, Any] | None,
    request_id: str,
    now: datetime,
) -> dict[str, Any]:
    """The event Lambda hands a function behind a Function URL (payload format 2.0)."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        if name == "cookie":
            cookies += [cookie.strip() for cookie in value.split(";") if cookie.strip()]
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    host = headers.get("host", "")
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    headers.setdefault("x-forwarded-port", host.rpartition(":")[2] if ":" in host else "80")
    parameters: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(request.raw_query, keep_blank_values=True):
        parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
    moment = utc(now)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": account_id if caller is not None else "anonymous",
            "apiId": url_id,
            "authentication": None,
            "domainName": host.partition(":")[0] or "127.0.0.1",
            "domainPrefix": url_id,
            "http": {
                "method": request.method,
                "path": urllib.parse.unquote(request.raw_path),
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": f"{moment:%d}/{_MONTHS[moment.month - 1]}/{moment:%Y:%H:%M:%S} +0000",
            "timeEpoch": int(moment.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if parameters:
        event["queryStringParameters"] = parameters
    if caller is not None:
        event["requestContext"]["authorizer"] = {"iam": caller}
    if request.body:
        text: str | None = None
        if _text_body(headers.get("content-type")):
            with contextlib.suppress(UnicodeDecodeError):
                text = request.body.decode("utf-8")
        event["body"] = text if text is not None else base64.b64encode(request.body).decode()
        event["isBase64Encoded"] = text is None
    return event


def function_url_response(
    payload: bytes, function_error: bool
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of the HTTP response for a function's result.

    A `{"statusCode", "headers", "body", "cookies", "isBase64Encoded"}` object is that response;
    any other JSON is a 200 `application/json` response whose body is the JSON itself; an
    error of the function, or a response Lambda cannot read, is 502 Internal Server Error.
    """
    failed = 502, [("content-type", "application/json")], _URL_ERROR_BODY
    if function_error:
        return failed
    try:
        document = json.loads(payload or b"null")
    except ValueError:
        return failed
    if not isinstance(document, dict) or "statusCode" not in document:
        return 200, [("content-type", "application/json")], payload or b"null"
    try:
        status = int(document["statusCode"])
        given = document.get("headers") or {}
        headers = [(str(name).lower(), str(value)) for name, value in given.items()]
        cookies = [("set-cookie", str(cookie)) for cookie in document.get("cookies") or []]
        body = document.get("body")
        if body is None:
            content = b""
        elif not isinstance(body, str):
            content = json.dumps(body).encode("utf-8")
        elif document.get("isBase64Encoded"):
            content = base64.b64decode(body, validate=True)
        else:
            content = body.encode("utf-8")
    except (AttributeError, TypeError, ValueError):  # binascii.Error is a ValueError
        return failed
    if not 100 <= status <= 599:
        return failed
    if not any(name == "content-type" for name, _ in headers):
        headers.append(("content-type", "application/json"))
    return status, headers + cookies, content


def _url_message(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"Message": message}, separators=(",", ":")).encode("utf-8")
    return status, [("content-type", "application/json")], body


def _function_url_exchange(
    environ: dict[str, Any], request_id: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    from moto.awslambda.utils import get_backend

    url_id, sent_url, request = _environ_request(environ)
    found = _served_url(url_id)
    if found is None:
        return _url_message(404, "Not Found")
    served, auth_type = found
    caller = None
    if auth_type == "AWS_IAM":
        headers = dict(request.headers)
        problem = sigv4_problem(
            request.method, sent_url, headers, request.body, region=served.region
        )
        if problem is not None:
            return _url_message(403, problem)
        signature = _request_signature(headers, request.raw_query)
        access_key = signature.credential.partition("/")[0] if signature else ""
        caller = _iam_caller(served.account_id, access_key)
    event = function_url_event(
        request,
        url_id=url_id,
        account_id=served.account_id,
        caller=caller,
        request_id=request_id,
        now=datetime.now(UTC),
    )
    target = f"arn:aws:lambda:{served.region}:{served.account_id}:function:{served.function_name}"
    if served.qualifier:
        target = f"{target}:{served.qualifier}"
    response_headers: dict[str, str] = {}
    INVOKED.request_id = request_id
    try:
        payload = get_backend(served.account_id, served.region).invoke(
            target, None, json.dumps(event).encode("utf-8"), {}, response_headers
        )
    finally:
        INVOKED.request_id = None
    content = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload or b"")
    return function_url_response(content, "x-amz-function-error" in response_headers)


def _answer_function_url(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The WSGI answer to a request under FUNCTION_URL_PREFIX."""
    request_id = str(uuid.uuid4())
    try:
        status, headers, body = _function_url_exchange(environ, request_id)
    except Exception:  # a twin bug: answer like Lambda, leave the traceback in the log
        LOG.exception("function URL request %s failed in the twin", request_id)
        status, headers, body = 502, [("content-type", "application/json")], _URL_ERROR_BODY
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    headers = [*headers, ("content-length", str(len(body))), ("x-amzn-requestid", request_id)]
    start_response(f"{status} {reason}", headers)
    return [body]


def adapt_function_urls() -> None:
    """moto records Function URLs (at `https://<id>.lambda-url.<region>.on.aws`, which nothing
    answers): give each one the twin's address and serve it there.

    Patches `LambdaFunction.create_url_config` (every URL, from the API or a template, gets
    `http://127.0.0.1:<port>/_lambda-url/<id>/`) and the server's WSGI dispatcher
    (`DomainDispatcherApplication.__call__`): a request under the prefix becomes a payload
    2.0 event, AWS_IAM URLs first checking its SigV4 signature against the twin's fake
    credentials (403 otherwise), and runs through `LambdaBackend.invoke` on the alias or version
    the URL targets, like any Invoke; the result becomes the HTTP response by Lambda's rules.
    """
    from moto.awslambda.models import LambdaFunction
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    create_url_config = LambdaFunction.create_url_config
    dispatch = DomainDispatcherApplication.__call__

    def create_served_url_config(self: Any, config: dict[str, Any]) -> Any:
        url_config = create_url_config(self, config)
        url_config.url = function_url(url_id_of(url_config.url))
        serve_function_url(url_config, None)
        return url_config

    def dispatch_function_urls(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if str(environ.get("PATH_INFO", "")).startswith(FUNCTION_URL_PREFIX):
            return _answer_function_url(environ, start_response)
        return dispatch(self, environ, start_response)

    patch(LambdaFunction, "create_url_config", create_served_url_config)
    patch(DomainDispatcherApplication, "__call__", dispatch_function_urls)
