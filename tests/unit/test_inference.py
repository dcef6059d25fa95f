"""The inference handler, in-process, serving a real breast-cancer model from moto's S3.

Requests arrive the two ways production sends them (a Function URL event with a JSON body, and
a direct-invoke payload); answers are compared with the fitted model's own predictions on the
same rows, and every kind of unusable request is answered with its status, row and column.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn.ensemble  # noqa: F401  (loads OpenMP now, so threadpool_limits can cap it)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from functions.inference import handler as inference
from functions.inference import sagemaker_server, service
from functions.shared import clients, storage
from pipelines.keys import bundle_key
from pipelines.model_config import load_model_config, parse_model_config
from pipelines.model_io import dump_model, load_model, metadata_for_run
from pipelines.request_schema import FeatureSchema, Limits, RequestError, check_rows
from pipelines.serving_bundle import BundleError, build_bundle
from pipelines.training import run_training
from tests.unit.conftest import buckets, moto_account, registry_tables

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = "driftline-artifacts"
MODEL = "breast_cancer"
MODEL_KEY = f"models/{MODEL}/v1/model.zip"


@dataclass
class FakeContext:
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "driftline-inference"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:driftline-inference:live"
    )


def breast_cancer_frame() -> tuple[pd.DataFrame, dict[str, str]]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [name.lower().replace(" ", "_") for name in frame.columns]
    contract = {name: ("int" if name == "target" else "float") for name in frame.columns}
    return frame, contract


@pytest.fixture(scope="module")
def cancer() -> tuple[bytes, pd.DataFrame]:
    """A registered-style archive of the shipped breast_cancer config, and its data."""
    frame, contract = breast_cancer_frame()
    config = load_model_config(REPO / "models" / "breast_cancer.yaml", contract)
    with threadpool_limits(limits=1):
        run = run_training(frame, config, contract)
    metadata = metadata_for_run(run, created_at="2026-11-29T21:00:00.000Z")
    return dump_model(run.model, metadata), frame


@pytest.fixture(scope="module")
def mixed_archive() -> bytes:
    """A small model with a categorical feature, to pin the string/integer coercions."""
    rng = np.random.default_rng(0)
    city = rng.choice(["oslo", "lima", "10115"], size=200)
    income = rng.normal(50, 10, size=200)
    label = ((city == "oslo") | (income > 55)).astype(int)
    frame = pd.DataFrame({"income": income, "city": city, "label": label})
    contract = {"income": "float", "city": "string", "label": "int"}
    config = parse_model_config(
        "task: classification\ntarget: label\nestimator: {params: {max_iter: 20}}\n",
        source="models/mixed.yaml",
    )
    with threadpool_limits(limits=1):
        run = run_training(frame, config, contract)
    return dump_model(run.model, metadata_for_run(run, created_at="2026-11-29T21:00:00.000Z"))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set the function's environment (as the deploy step leaves it) and forget cached state."""

    def apply(**overrides: str | None) -> None:
        values: dict[str, str | None] = {
            "ENV": "local",
            "MODEL_NAME": MODEL,
            "ARTIFACTS_BUCKET": ARTIFACTS,
            "CAPTURE_SAMPLE_RATE": "0",
            "EXTRA_FEATURES": "ignore",
            "MAX_ROWS": "100",
            "MAX_PAYLOAD_BYTES": "200000",
            "MODEL_VERSION": "1",
            "MODEL_KEY": MODEL_KEY,
            "SERVING_KEY": None,
            "SERVING_SHA256": None,
            **overrides,
        }
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(f"DRIFTLINE_{name}", raising=False)
            else:
                monkeypatch.setenv(f"DRIFTLINE_{name}", value)
        # Loaded models stay cached across tests (same keys, same bytes); settings do not.
        service.get_settings.cache_clear()
        service._deployed.cache_clear()

    apply()
    return apply


@pytest.fixture(scope="module")
def moto_s3(cancer: tuple[bytes, pd.DataFrame]) -> Iterator[None]:
    """One emulated S3 per module (clients and bucket are the slow part); tests clean up."""
    variables = {"POWERTOOLS_SERVICE_NAME": "driftline", "POWERTOOLS_METRICS_DISABLED": "true"}
    service.reset()
    with (
        pytest.MonkeyPatch.context() as patch,
        moto_account(patch, variables),
        threadpool_limits(limits=1),
    ):
        buckets(ARTIFACTS, versioned=False)
        storage.put_bytes(ARTIFACTS, MODEL_KEY, cancer[0], "application/zip")
        yield
    service.reset()


@pytest.fixture
def aws(moto_s3: None, env: Callable[..., None]) -> Iterator[None]:
    yield
    s3 = clients.client("s3")
    for key in captured_objects():
        s3.delete_object(Bucket=ARTIFACTS, Key=key)


def feature_rows(frame: pd.DataFrame, count: int, start: int = 0) -> list[dict[str, Any]]:
    features = frame.drop(columns=["target"]).iloc[start : start + count]
    return [{k: float(v) for k, v in row.items()} for row in features.to_dict("records")]


def url_event(body: str | bytes, *, method: str = "POST", base64_encoded: bool = False) -> dict:
    if base64_encoded:
        body = base64.b64encode(body if isinstance(body, bytes) else body.encode()).decode()
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": "/"}, "requestId": "url-request"},
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def call_url(body: str | bytes, **options: Any) -> tuple[int, dict[str, Any]]:
    response = inference.handler(url_event(body, **options), FakeContext())
    assert response["headers"]["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def invoke(payload: Any) -> dict[str, Any]:
    document: dict[str, Any] = inference.handler(payload, FakeContext())
    return document


# --- scoring -------------------------------------------------------------------------------


def test_url_request_returns_the_models_predictions_and_probabilities(
    aws: None, cancer: tuple[bytes, pd.DataFrame]
) -> None:
    archive, frame = cancer
    rows = feature_rows(frame, 5)
    status, document = call_url(json.dumps({"rows": rows}))

    assert status == 200
    model = load_model(archive).model
    expected = frame.drop(columns=["target"]).iloc[:5]
    assert document["predictions"] == model.predict(expected).tolist()
    assert document["classes"] == [0, 1]
    np.testing.assert_allclose(document["probabilities"], model.predict_proba(expected))
    assert document["model"] == MODEL
    assert document["model_version"] == 1
    assert document["request_id"]


def test_direct_invoke_payload_gets_the_same_answer_as_the_url(
    aws: None, cancer: tuple[bytes, pd.DataFrame]
) -> None:
    rows = feature_rows(cancer[1], 3, start=40)
    _, over_url = call_url(json.dumps({"rows": rows}))
    direct = invoke({"rows": rows})
    bare_list = invoke(rows)
    for answer in (direct, bare_list):
        assert answer["status"] == 200
        assert answer["predictions"] == over_url["predictions"]
        assert answer["probabilities"] == over_url["probabilities"]


def test_a_base64_encoded_url_body_is_decoded(
    aws: None, cancer: tuple[bytes, pd.DataFrame]
) -> None:
    status, document = call_url(
        json.dumps({"rows": feature_rows(cancer[1], 1)}), base64_encoded=True
    )
    assert status == 200
    assert len(document["predictions"]) == 1


def test_serving_bundle_predicts_like_the_archive_and_is_pinned_by_its_digest(
    aws: None, env: Callable[..., None], cancer: tuple[bytes, pd.DataFrame]
) -> None:
    archive, frame = cancer
    bundle, digest = build_bundle(archive)
    key = bundle_key(MODEL, 1, digest)
    storage.put_bytes(ARTIFACTS, key, bundle, "application/octet-stream")
    rows = feature_rows(frame, 4, start=100)
    from_archive = invoke({"rows": rows})

    env(SERVING_KEY=key, SERVING_SHA256=digest)
    from_bundle = invoke({"rows": rows})
    assert from_bundle["predictions"] == from_archive["predictions"]
    assert from_bundle["probabilities"] == from_archive["probabilities"]

    env(SERVING_KEY=key, SERVING_SHA256="0" * 64)
    with pytest.raises(BundleError, match="digest"):
        invoke({"rows": rows})


def test_the_model_is_loaded_once_per_execution_environment(
    aws: None, cancer: tuple[bytes, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    original = storage.get_bytes

    def counting(bucket: str, key: str, version_id: str | None = None) -> bytes:
        reads.append(key)
        return original(bucket, key, version_id)

    monkeypatch.setattr(storage, "get_bytes", counting)
    service.reset()
    for start in range(3):
        assert invoke({"rows": feature_rows(cancer[1], 1, start=start)})["status"] == 200
    assert reads == [MODEL_KEY]


def test_a_null_value_is_scored_as_missing(aws: None, cancer: tuple[bytes, pd.DataFrame]) -> None:
    row = feature_rows(cancer[1], 1)[0] | {"mean_radius": None}
    document = invoke({"rows": [row]})
    assert document["status"] == 200
    assert math.isclose(sum(document["probabilities"][0]), 1.0)


def test_categorical_features_take_strings_and_integers_as_in_training(
    aws: None, env: Callable[..., None], mixed_archive: bytes
) -> None:
    storage.put_bytes(ARTIFACTS, "models/mixed/v2/model.zip", mixed_archive, "application/zip")
    env(MODEL_NAME="mixed", MODEL_VERSION="2", MODEL_KEY="models/mixed/v2/model.zip")
    rows = [
        {"income": 40.0, "city": "oslo"},
        {"income": 70, "city": 10115},
        {"income": 45.0, "city": None},
    ]
    document = invoke({"rows": rows})

    model = load_model(mixed_archive).model
    expected = pd.DataFrame(
        {
            "income": [40.0, 70.0, 45.0],
            "city": pd.Series(["oslo", "10115", np.nan], dtype="object"),
        }
    )
    assert document["predictions"] == model.predict(expected).tolist()
    refused = invoke({"rows": [{"income": 1.0, "city": 1.5}]})
    assert refused["status"] == 400
    assert refused["error"]["column"] == "city"
    assert "expected a string" in refused["error"]["reason"]


# --- bad input ---------------------------------------------------------------------------


def test_malformed_json_is_a_400_saying_where_parsing_stopped(aws: None) -> None:
    status, document = call_url('{"rows": [{"mean_radius": 1.0,]}')
    assert status == 400
    assert document["error"]["code"] == "MalformedJson"
    assert "line 1 column" in document["error"]["message"]
    assert "\n" not in document["error"]["message"]


def test_a_wrong_type_names_the_row_the_column_and_the_reason(
    aws: None, cancer: tuple[bytes, pd.DataFrame]
) -> None:
    rows = feature_rows(cancer[1], 3)
    rows[2]["mean_texture"] = "seventeen"
    status, document = call_url(json.dumps({"rows": rows}))
    assert status == 400
    assert document["error"] | {"message": ""} == {
        "code": "InvalidValue",
        "message": "",
        "row": 2,
        "column": "mean_texture",
        "reason": "expected a number, got a string ('seventeen')",
    }
    boolean = invoke({"rows": [rows[0] | {"mean_area": True}]})
    assert boolean["status"] == 400
    assert boolean["error"]["reason"] == "expected a number, got a boolean"


def test_a_missing_feature_names_the_row_and_the_column(
    aws: None, cancer: tuple[bytes, pd.DataFrame]
) -> None:
    rows = feature_rows(cancer[1], 2)
    del rows[1]["worst_area"]
    document = invoke({"rows": rows})
    assert document["status"] == 400
    assert document["error"]["code"] == "MissingFeature"
    assert (document["error"]["row"], document["error"]["column"]) == (1, "worst_area")


def test_extra_features_are_ignored_and_reported_by_default(
    aws: None, cancer: tuple[bytes, pd.DataFrame]
) -> None:
    rows = [row | {"patient_id": "p-17", "target": 1} for row in feature_rows(cancer[1], 2)]
    document = invoke({"rows": rows})
    assert document["status"] == 200
    assert document["ignored_features"] == ["patient_id", "target"]


def test_extra_features_are_refused_when_configured_to_reject(
    aws: None, env: Callable[..., None], cancer: tuple[bytes, pd.DataFrame]
) -> None:
    env(EXTRA_FEATURES="reject")
    rows = feature_rows(cancer[1], 2)
    rows[1]["patient_id"] = "p-17"
    document = invoke({"rows": rows})
    assert document["status"] == 400
    assert document["error"]["code"] == "UnknownFeature"
    assert (document["error"]["row"], document["error"]["column"]) == (1, "patient_id")


def test_nan_and_infinity_are_refused_naming_the_value(
    aws: None, cancer: tuple[bytes, pd.DataFrame]
) -> None:
    row = feature_rows(cancer[1], 1)[0]
    body = json.dumps({"rows": [row, row]}).replace(
        f'"mean_smoothness": {row["mean_smoothness"]}', '"mean_smoothness": NaN', 1
    )
    body = body.replace(f'"mean_smoothness": {row["mean_smoothness"]}', '"mean_smoothness": 1', 1)
    status, document = call_url(body)
    assert status == 400
    assert (document["error"]["row"], document["error"]["column"]) == (0, "mean_smoothness")
    assert document["error"]["reason"].startswith("NaN is not a JSON number")

    direct = invoke({"rows": [row | {"worst_area": float("inf")}]})
    assert direct["status"] == 400
    assert direct["error"]["column"] == "worst_area"


def test_an_empty_batch_is_a_400(aws: None) -> None:
    for payload in ({"rows": []}, []):
        document = invoke(payload)
        assert document["status"] == 400
        assert "empty" in document["error"]["message"]
    status, document = call_url("")
    assert status == 400
    assert "empty" in document["error"]["message"]


def test_rows_that_are_not_a_list_of_objects_are_a_400(aws: None) -> None:
    assert invoke({"instances": [[1.0, 2.0]]})["error"]["message"].startswith(
        'request has no "rows" key'
    )
    assert invoke({"rows": {"mean_radius": 1.0}})["status"] == 400
    not_object = invoke({"rows": [[1.0, 2.0]]})
    assert (not_object["status"], not_object["error"]["row"]) == (400, 0)


def test_too_many_rows_is_a_413_before_any_scoring(
    aws: None, env: Callable[..., None], cancer: tuple[bytes, pd.DataFrame]
) -> None:
    env(MAX_ROWS="10")
    document = invoke({"rows": feature_rows(cancer[1], 11)})
    assert document["status"] == 413
    assert document["error"]["code"] == "TooManyRows"
    assert "limit is 10 rows" in document["error"]["message"]


def test_a_body_above_the_size_limit_is_a_413_without_parsing_it(
    aws: None, env: Callable[..., None]
) -> None:
    env(MAX_PAYLOAD_BYTES="1000")
    status, document = call_url("{" + " " * 2000 + "not even json")
    assert status == 413
    assert document["error"]["code"] == "PayloadTooLarge"


def test_only_post_is_accepted_on_the_url(aws: None) -> None:
    status, document = call_url("", method="GET")
    assert (status, document["error"]["code"]) == (405, "MethodNotAllowed")


def test_an_endpoint_without_a_deployed_model_answers_503(
    aws: None, env: Callable[..., None], cancer: tuple[bytes, pd.DataFrame]
) -> None:
    env(MODEL_VERSION=None, MODEL_KEY=None)
    status, document = call_url(json.dumps({"rows": feature_rows(cancer[1], 1)}))
    assert (status, document["error"]["code"]) == (503, "NoModelDeployed")


def test_a_bad_setting_is_one_line_naming_the_variable(env: Callable[..., None]) -> None:
    env(EXTRA_FEATURES="drop")
    with pytest.raises(
        service.SettingsError, match=r"DRIFTLINE_EXTRA_FEATURES: 'drop' must be ignore or reject"
    ):
        service.get_settings()
    env(CAPTURE_SAMPLE_RATE="1.5")
    with pytest.raises(service.SettingsError, match=r"outside \[0, 1\]"):
        service.get_settings()


def test_schema_checks_are_pure_and_report_the_first_bad_value() -> None:
    schema = FeatureSchema(features=("a", "flag"), types={"a": "float", "flag": "bool"})
    limits = Limits(max_rows=10, max_payload_bytes=1000, extra_features="ignore")
    checked = check_rows([{"a": 1, "flag": True}, {"a": None, "flag": 0}], schema, limits)
    assert checked.columns["flag"] == [1.0, 0.0]
    assert math.isnan(checked.columns["a"][1])
    with pytest.raises(RequestError, match=r"row 1, column 'flag': expected true/false"):
        check_rows([{"a": 1, "flag": True}, {"a": 2, "flag": "yes"}], schema, limits)


# --- capture ------------------------------------------------------------------------------


def captured_objects() -> list[str]:
    listing = clients.client("s3").list_objects_v2(Bucket=ARTIFACTS, Prefix="captures/")
    return [item["Key"] for item in listing.get("Contents", [])]


def test_a_sampled_request_is_captured_one_line_per_row_partitioned_by_hour(
    aws: None, env: Callable[..., None], cancer: tuple[bytes, pd.DataFrame]
) -> None:
    env(CAPTURE_SAMPLE_RATE="1")
    rows = feature_rows(cancer[1], 3)
    document = invoke({"rows": [row | {"extra": 1} for row in rows]})

    (key,) = captured_objects()
    assert key.startswith(f"captures/{MODEL}/date=")
    partition = key.split("/")
    assert partition[2][len("date=") :].count("-") == 2
    assert partition[3].startswith("hour=") and len(partition[3]) == len("hour=00")
    assert partition[4] == f"{document['request_id']}.jsonl"
    body = clients.client("s3").get_object(Bucket=ARTIFACTS, Key=key)["Body"].read().decode()
    lines = [json.loads(line) for line in body.splitlines()]
    assert [line["row"] for line in lines] == [0, 1, 2]
    assert lines[1]["features"] == rows[1]
    assert lines[1]["prediction"] == document["predictions"][1]
    assert lines[1]["probabilities"] == dict(
        zip(["0", "1"], document["probabilities"][1], strict=True)
    )
    assert {line["request_id"] for line in lines} == {document["request_id"]}
    assert {line["model_version"] for line in lines} == {1}
    assert lines[0]["timestamp"].endswith("Z")


def test_capture_rate_zero_captures_nothing_and_refused_requests_are_never_captured(
    aws: None, env: Callable[..., None], cancer: tuple[bytes, pd.DataFrame]
) -> None:
    invoke({"rows": feature_rows(cancer[1], 2)})
    env(CAPTURE_SAMPLE_RATE="1")
    invoke({"rows": [{"mean_radius": 1.0}]})
    assert captured_objects() == []


def test_a_failed_capture_still_returns_the_prediction(
    aws: None,
    env: Callable[..., None],
    cancer: tuple[bytes, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env(CAPTURE_SAMPLE_RATE="1")

    def unavailable(*_: Any, **__: Any) -> None:
        raise ConnectionError("S3 is unreachable")

    monkeypatch.setattr(storage, "put_bytes", unavailable)
    document = invoke({"rows": feature_rows(cancer[1], 1)})
    assert document["status"] == 200
    assert len(document["predictions"]) == 1


# --- the SageMaker Serverless transport -----------------------------------------------------


def test_the_sagemaker_server_answers_ping_and_invocations_like_the_function(
    aws: None, cancer: tuple[bytes, pd.DataFrame], tmp_path: Path
) -> None:
    archive, frame = cancer
    (tmp_path / "model.zip").write_bytes(archive)
    (tmp_path / "version.json").write_text('{"model_version": 1}')
    deployed = sagemaker_server.load_model_dir(tmp_path, "churn")
    server = sagemaker_server.make_server(
        service.get_settings(), deployed, host="127.0.0.1", port=0
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/ping", timeout=10) as ping:
            assert ping.status == 200
        rows = feature_rows(frame, 2)
        request = urllib.request.Request(
            f"{base}/invocations", data=json.dumps({"rows": rows}).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            document = json.loads(response.read())
        assert document["predictions"] == invoke({"rows": rows})["predictions"]
        bad = urllib.request.Request(f"{base}/invocations", data=b"{", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=10)
        assert refused.value.code == 400
    finally:
        server.shutdown()
        server.server_close()


# --- the CLI: driftline predict -------------------------------------------------------------


class InProcessEndpoint:
    """`invoke` runs the inference handler here, like Lambda invoking the live alias."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def get_alias(self, FunctionName: str, Name: str) -> dict[str, str]:
        return {"AliasArn": f"arn:aws:lambda:us-east-1:123456789012:function:{FunctionName}:{Name}"}

    def invoke(self, **arguments: Any) -> dict[str, Any]:
        self.calls.append(arguments)
        result = inference.handler(json.loads(arguments["Payload"]), FakeContext())
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result).encode())}


@pytest.fixture
def predict_cli(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[str, str], tuple[int, str, str, InProcessEndpoint]]:
    from driftline import cli
    from driftline.commands import predict

    endpoint = InProcessEndpoint()
    outputs = {
        "Endpoints": json.dumps({MODEL: {"function_name": "fn-bc", "alias": "live", "url": ""}})
    }
    monkeypatch.setattr(predict, "stack_outputs", lambda env: outputs)
    monkeypatch.setattr(predict, "client", lambda service: endpoint)

    def run(model: str, stdin: str) -> tuple[int, str, str, InProcessEndpoint]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(["predict", "--model", model])
        captured = capsys.readouterr()
        return code, captured.out, captured.err, endpoint

    return run


def test_predict_cli_scores_stdin_rows_on_the_live_alias(
    predict_cli: Callable[[str, str], tuple[int, str, str, InProcessEndpoint]],
    cancer: tuple[bytes, pd.DataFrame],
) -> None:
    rows = feature_rows(cancer[1], 2)
    code, out, err, endpoint = predict_cli(MODEL, json.dumps({"rows": rows}))
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["predictions"] == invoke({"rows": rows})["predictions"]
    (call,) = endpoint.calls
    assert call["FunctionName"] == "arn:aws:lambda:us-east-1:123456789012:function:fn-bc:live"


def test_predict_cli_refusals_are_one_line_with_exit_2(
    predict_cli: Callable[[str, str], tuple[int, str, str, InProcessEndpoint]],
    cancer: tuple[bytes, pd.DataFrame],
) -> None:
    row = feature_rows(cancer[1], 1)[0]
    del row["worst_area"]
    code, out, err, _ = predict_cli(MODEL, json.dumps([row]))
    assert (code, out) == (2, "")
    assert err == (
        "driftline: endpoint breast_cancer refused the request (400 MissingFeature): "
        "row 0, column 'worst_area': missing (send null for a missing value)\n"
    )
    code, _, err, _ = predict_cli(MODEL, "{rows: oops}")
    assert code == 2
    assert err.startswith("driftline: stdin is not valid JSON: ")
    code, _, err, endpoint = predict_cli("iris", json.dumps([row]))
    assert code == 2
    assert err == "driftline: unknown endpoint 'iris' in env 'local' (endpoints: breast_cancer)\n"
    assert len(endpoint.calls) == 1  # only the first, well-formed request reached it


# --- the shared endpoint: any deployed model, routed by name ------------------------------

ENDPOINTS = "driftline-endpoints"


@pytest.fixture
def shared(
    aws: None, env: Callable[..., None], cancer: tuple[bytes, pd.DataFrame]
) -> Iterator[Callable[..., None]]:
    """The shared endpoint's environment, an Endpoints table, and a way to route a model."""
    from functions.inference import routing
    from functions.shared.endpoints import EndpointRegistry

    dynamodb = clients.client("dynamodb")
    registry_tables(ENDPOINTS)
    env(MODEL_NAME=None, MODEL_VERSION=None, MODEL_KEY=None, ENDPOINTS_TABLE=ENDPOINTS)
    routing.reset()
    data, digest = build_bundle(cancer[0])
    key = bundle_key(MODEL, 1, digest)
    storage.put_bytes(ARTIFACTS, key, data, "application/octet-stream")
    registry = EndpointRegistry(dynamodb, ENDPOINTS)

    def route(model: str = MODEL, **extra: Any) -> None:
        registry.replace_current(
            model,
            {
                "model": model,
                "endpoint": "shared",
                "model_version": 1,
                "serving_key": key,
                "serving_sha256": digest,
                **extra,
            },
            expected_version=None,
        )

    yield route
    routing.reset()
    dynamodb.delete_table(TableName=ENDPOINTS)


def shared_url_event(path: str, body: Any) -> dict[str, Any]:
    event = url_event(json.dumps(body))
    event["rawPath"] = path
    return event


def test_the_shared_endpoint_serves_a_model_named_by_url_path_or_field(
    shared: Callable[..., None], cancer: tuple[bytes, pd.DataFrame]
) -> None:
    shared()
    rows = feature_rows(cancer[1], 2)

    response = inference.handler(
        shared_url_event(f"/models/{MODEL}", {"rows": rows}), FakeContext()
    )
    by_field = invoke({"model": MODEL, "rows": rows})

    assert response["statusCode"] == 200
    by_path = json.loads(response["body"])
    assert (by_path["model"], by_path["model_version"]) == (MODEL, 1)
    assert by_path["predictions"] == by_field["predictions"]


def test_the_shared_endpoint_answers_404_for_an_undeployed_model_and_400_without_a_name(
    shared: Callable[..., None], cancer: tuple[bytes, pd.DataFrame]
) -> None:
    shared()
    rows = feature_rows(cancer[1], 1)

    unknown = invoke({"model": "digits", "rows": rows})
    unnamed = invoke({"rows": rows})
    bad_path = inference.handler(shared_url_event("/predict", {"rows": rows}), FakeContext())

    assert (unknown["status"], unknown["error"]["code"]) == (404, "UnknownModel")
    assert (unnamed["status"], unnamed["error"]["code"]) == (400, "ModelRequired")
    assert bad_path["statusCode"] == 404


def test_a_model_that_fails_to_score_is_a_500_model_error_not_a_raise(
    shared: Callable[..., None], cancer: tuple[bytes, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One broken model must not count against the function every other model shares."""
    shared()

    def broken(*_: Any) -> Any:
        raise ValueError("the estimator blew up")

    monkeypatch.setattr(inference, "score", broken)
    answer = invoke({"model": MODEL, "rows": feature_rows(cancer[1], 1)})

    assert (answer["status"], answer["error"]["code"]) == (500, "ModelError")
    assert "breast_cancer v1 failed to score" in answer["error"]["message"]


def test_a_canary_route_sends_its_share_of_requests_to_the_new_version() -> None:
    from functions.inference.routing import Route, Target

    stable, canary = Target(1, "k1", "d1"), Target(2, "k2", "d2")
    route = Route(model=MODEL, stable=stable, canary=canary, canary_weight=0.1)

    assert route.pick(lambda: 0.05) is canary
    assert route.pick(lambda: 0.5) is stable
    assert Route(model=MODEL, stable=stable).pick(lambda: 0.0) is stable


def test_the_router_keeps_a_bounded_number_of_models_and_rereads_routes_after_the_ttl(
    cancer: tuple[bytes, pd.DataFrame],
) -> None:
    """Given a cache of two, a third model evicts the least recently used one; a route is
    read again only once its TTL has passed."""
    from functions.inference.routing import Router

    data, digest = build_bundle(cancer[0])
    reads: list[str] = []
    loads: list[str] = []
    now = [0.0]

    def record(model: str) -> dict[str, Any]:
        reads.append(model)
        return {
            "endpoint": "shared",
            "model_version": 1,
            "serving_key": f"models/{model}/b",
            "serving_sha256": digest,
        }

    def read_bytes(key: str) -> bytes:
        loads.append(key)
        return data

    settings = service.InferenceSettings.from_environ(
        {
            "DRIFTLINE_ENV": "local",
            "DRIFTLINE_ARTIFACTS_BUCKET": ARTIFACTS,
            "DRIFTLINE_ENDPOINTS_TABLE": ENDPOINTS,
            "DRIFTLINE_MODEL_CACHE_SIZE": "2",
            "DRIFTLINE_ROUTE_TTL_SECONDS": "10",
        }
    )
    router = Router(settings, read_record=record, read_bytes=read_bytes, clock=lambda: now[0])

    for model in ("a", "b", "a", "c", "a"):
        router.deployed(model, router.route(model).stable)

    assert reads == ["a", "b", "c"]  # within the TTL each route is read once
    assert [m for m, _ in router.loaded()] == ["c", "a"]  # b was least recently used
    assert loads == ["models/a/b", "models/b/b", "models/c/b"]
    now[0] = 11.0
    router.route("a")
    assert reads[-1] == "a"


# --- hostile input: every client mistake is answered, never raised -------------------------
#
# A raise counts in the alias' Errors metric, which rolls a deployment back and pages on-call;
# these requests must be answered 4xx by the parser, whatever the bytes.

ANSWERED = {200, 400, 404, 405, 413, 503}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HUGE_INTEGERS = st.sampled_from([10**400, -(10**400), 10**4299, 2**1100])
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INTEGERS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def cancer_features() -> list[str]:
    return [name for name in breast_cancer_frame()[0].columns if name != "target"]


FEATURE_NAMES = cancer_features()


def rows_like_a_client_sends(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Rows of the model's features, mostly plausible numbers, sometimes anything at all."""
    value = st.floats(-1e6, 1e6) | st.integers(-(10**6), 10**6) | values
    row = st.fixed_dictionaries(
        {name: value for name in FEATURE_NAMES},
        optional={"patient_id": values, "model": values},
    )
    return st.lists(row | values, min_size=0, max_size=3)


def json_text(document: Any) -> str | None:
    try:
        return json.dumps(document)
    except ValueError:  # an integer json cannot write (over 4,300 digits)
        return None


URL_BODIES = (
    st.binary(max_size=300)
    | st.text(max_size=300)
    | JSON_VALUES.map(json_text).filter(lambda text: text is not None)
    | rows_like_a_client_sends(JSON_VALUES)
    .map(lambda rows: json_text({"rows": rows}))
    .filter(lambda text: text is not None)
    | st.integers(1, 6000).map(lambda digits: '{"rows": [{"mean_radius": ' + "9" * digits + "}]}")
    | st.integers(1, 200_000).map(lambda depth: "[" * depth + "]" * (depth % 3))
)


def assert_answered_over_url(body: str | bytes, *, base64_encoded: bool = False) -> None:
    if isinstance(body, bytes) and not base64_encoded:
        body = body.decode("utf-8", errors="surrogateescape")
    status, document = call_url(body, base64_encoded=base64_encoded)
    assert status in ANSWERED, document
    assert document["status"] == status
    if status != 200:
        assert set(document["error"]) >= {"code", "message"}


def assert_answered_direct(payload: Any) -> None:
    document = invoke(payload)
    assert document["status"] in ANSWERED, document
    json.dumps(document, allow_nan=False)


@pytest.mark.parametrize(
    ("body", "code", "column"),
    [
        ("1" * 5000, "MalformedJson", None),
        ('{"rows": [{"mean_radius": ' + "1" * 5000 + "}]}", "MalformedJson", None),
        ("[" * 100_000, "MalformedJson", None),
        ('{"rows": ' + "[" * 50_000 + "]" * 50_000 + "}", "MalformedJson", None),
        ('{"rows": [{"mean_radius": ' + str(10**400) + "}]}", "InvalidValue", "mean_radius"),
        ('{"rows": [{"mean_radius": -' + str(10**400) + "}]}", "InvalidValue", "mean_radius"),
        (b"\xff\xfe{}", "MalformedJson", None),
    ],
    ids=["digits", "digits-in-row", "nesting", "nested-rows", "overflow", "-overflow", "bytes"],
)
def test_bodies_that_used_to_raise_are_400s(
    aws: None, body: str | bytes, code: str, column: str | None
) -> None:
    """int() over 4,300 digits (ValueError), deep nesting (RecursionError), float(10**400)."""
    status, document = call_url(body, base64_encoded=isinstance(body, bytes))
    assert status == 400, document
    assert document["error"]["code"] == code
    assert document["error"].get("column") == column


def test_a_number_beyond_float_range_is_a_400_naming_row_and_column(
    aws: None, env: Callable[..., None], cancer: tuple[bytes, pd.DataFrame], mixed_archive: bytes
) -> None:
    rows = feature_rows(cancer[1], 2)
    rows[1]["worst_area"] = 10**400
    direct = invoke({"rows": rows})
    assert (direct["status"], direct["error"]["row"], direct["error"]["column"]) == (
        400,
        1,
        "worst_area",
    )
    assert "too large" in direct["error"]["reason"]

    storage.put_bytes(ARTIFACTS, "models/mixed/v2/model.zip", mixed_archive, "application/zip")
    env(MODEL_NAME="mixed", MODEL_VERSION="2", MODEL_KEY="models/mixed/v2/model.zip")
    categorical = invoke({"rows": [{"income": 1.0, "city": 10**5000}]})
    assert (categorical["status"], categorical["error"]["column"]) == (400, "city")


@FUZZ
@given(body=URL_BODIES, base64_encoded=st.booleans())
def test_any_url_body_is_answered_never_raised(
    aws: None, body: str | bytes, base64_encoded: bool
) -> None:
    assert_answered_over_url(body, base64_encoded=base64_encoded)


@FUZZ
@given(payload=JSON_VALUES | rows_like_a_client_sends(JSON_VALUES).map(lambda r: {"rows": r}))
def test_any_direct_invoke_payload_is_answered_never_raised(aws: None, payload: Any) -> None:
    assert_answered_direct(payload)


@FUZZ
@given(
    event=st.fixed_dictionaries(
        {
            "requestContext": st.fixed_dictionaries(
                {"http": st.dictionaries(st.text(), JSON_VALUES)}
            )
        },
        optional={"body": JSON_VALUES, "isBase64Encoded": JSON_VALUES, "rawPath": JSON_VALUES},
    )
)
def test_a_malformed_url_event_is_answered_never_raised(aws: None, event: Any) -> None:
    response = inference.handler(event, FakeContext())
    assert response["statusCode"] in ANSWERED


@FUZZ
@given(
    payload=st.fixed_dictionaries(
        {"rows": rows_like_a_client_sends(JSON_VALUES)},
        optional={"model": st.sampled_from([MODEL, "digits", "", "a\n", "../x"]) | JSON_VALUES},
    ),
    path=st.none() | st.text(max_size=40) | st.sampled_from([f"/models/{MODEL}", "/models/"]),
)
def test_the_shared_endpoint_answers_any_request_never_raises(
    shared: Callable[..., None], payload: Any, path: str | None
) -> None:
    shared()
    if path is None:
        assert_answered_direct(payload)
        return
    text = json_text(payload)
    assume(text is not None)
    event = url_event(text or "")
    event["rawPath"] = path
    response = inference.handler(event, FakeContext())
    assert response["statusCode"] in ANSWERED


@pytest.fixture(scope="module")
def sagemaker_deployed(cancer: tuple[bytes, pd.DataFrame]) -> service.Deployed:
    from pipelines.serving_bundle import load_archive

    return service.prepare(load_archive(cancer[0]), 1, MODEL)


@FUZZ
@given(body=URL_BODIES.map(lambda body: body if isinstance(body, bytes) else body.encode()))
def test_the_sagemaker_server_answers_any_body_never_raises(
    env: Callable[..., None], sagemaker_deployed: service.Deployed, body: bytes
) -> None:
    document = sagemaker_server.answer(body, service.get_settings(), sagemaker_deployed)
    assert document["status"] in ANSWERED, document
    json.dumps(document, allow_nan=False)


def test_the_sagemaker_server_refuses_a_bad_content_length_with_a_400(
    env: Callable[..., None], sagemaker_deployed: service.Deployed
) -> None:
    import http.client

    server = sagemaker_server.make_server(
        service.get_settings(), sagemaker_deployed, host="127.0.0.1", port=0
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for header, expected in (("abc", 400), ("-5", 400), ("²", 400), ("99999999999", 413)):
            connection = http.client.HTTPConnection(
                "127.0.0.1", server.server_address[1], timeout=10
            )
            connection.putrequest("POST", "/invocations")
            connection.putheader("content-length", header)
            connection.endheaders()
            response = connection.getresponse()
            assert response.status == expected, header
            assert json.loads(response.read())["status"] == expected
            connection.close()
        digits = b'{"rows": [{"mean_radius": ' + b"7" * 5000 + b"}]}"
        answer = sagemaker_server.answer(digits, service.get_settings(), sagemaker_deployed)
        assert (answer["status"], answer["error"]["code"]) == (400, "MalformedJson")
    finally:
        server.shutdown()
        server.server_close()
