"""Inference endpoint latency: the handler in-process vs bare `model.predict`, and cold start.

Prints one JSON object:
- `warm`: p50/p99 (ms) of the full handler on a Function URL event (JSON body in, JSON
  response out, request checks, DataFrame, predict_proba, metrics flush) for 1 and 100 rows,
  next to the floor (`model.predict` on a ready DataFrame of the same rows), with overheads;
- `cold_start`: in fresh subprocesses, importing the handler module and loading the model, via
  the serving bundle (what deployments use) and via the skops archive (the fallback), median of
  three runs each, next to the floor: importing pandas and the scikit-learn modules the model
  needs, which any Python server of this model pays. `shared_bundle` is the shared endpoint's
  first request for a model: the same, plus the AWS SDK it reads the model's route with;
- `warm.shared_1_row`: the shared endpoint's handler (model named in the URL path, route and
  model cached) against the same floor.
Targets: warm p99 overhead ≤ 5 ms for 1 row; cold start (bundle) ≤ 1.5 s. Everything runs with
one OpenMP thread (threadpoolctl), as HistGradientBoosting's pool only contends on a shared
2-core machine. Capture is off (a sampled request adds one S3 PUT). Run:
`.venv/bin/python bench/inference.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODEL = "breast_cancer"
BUCKET = "bench-artifacts"
TARGET_OVERHEAD_MS = 5.0
TARGET_COLD_S = 1.5

# The floor of any cold start serving this model: importing what unpickling it needs.
FLOOR_SCRIPT = """
import time
started = time.perf_counter()
import pandas, sklearn.pipeline, sklearn.compose, sklearn.ensemble  # noqa: F401
print(time.perf_counter() - started)
"""

COLD_SCRIPT = """
import sys, time
started = time.perf_counter()
sys.path.insert(0, {repo!r})
import functions.inference.handler  # noqa: F401  (what the runtime imports at init)
from functions.inference import service
from pipelines import serving_bundle as bundle
imported = time.perf_counter()
data = open({path!r}, "rb").read()
if {digest!r}:
    serving = bundle.load_bundle(data, {digest!r})
else:
    serving = bundle.load_archive(data)
deployed = service.prepare(serving, 1, "bench")
loaded = time.perf_counter()
print(imported - started, loaded - imported)
"""

# The shared endpoint also needs the AWS SDK before its first model: it reads the route.
SHARED_COLD_SCRIPT = COLD_SCRIPT.replace(
    "from functions.inference import service\n",
    "from functions.inference import service, routing\n"
    "from functions.shared import clients, endpoints  # noqa: F401\n"
    "clients.client('dynamodb')\n",
)


def _train() -> tuple[bytes, Any]:
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from threadpoolctl import threadpool_limits

    from pipelines.model_config import load_model_config
    from pipelines.model_io import dump_model, metadata_for_run
    from pipelines.training import run_training

    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    frame.columns = [name.lower().replace(" ", "_") for name in frame.columns]
    contract = {name: ("int" if name == "target" else "float") for name in frame.columns}
    config = load_model_config(REPO / "models" / f"{MODEL}.yaml", contract)
    with threadpool_limits(limits=1):
        run = run_training(frame, config, contract)
    metadata = metadata_for_run(run, created_at="2026-01-01T00:00:00.000Z")
    return dump_model(run.model, metadata), frame.drop(columns=["target"])


def _percentiles(samples: list[float]) -> dict[str, float]:
    import numpy as np

    values = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
    }


def _timed_pair(
    ours: Any, floor: Any, repeats: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Alternate the two calls, so both see the same machine load (it is shared here)."""
    for _ in range(warmup):
        ours()
        floor()
    ours_samples, floor_samples = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        ours()
        middle = time.perf_counter()
        floor()
        ours_samples.append(middle - started)
        floor_samples.append(time.perf_counter() - middle)
    return ours_samples, floor_samples


class _Context:
    function_name = "bench-inference"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-inference:live"

    @property
    def aws_request_id(self) -> str:
        return str(uuid.uuid4())


def _warm(archive: bytes, features: Any) -> dict[str, Any]:
    import boto3
    import pandas as pd
    from moto import mock_aws
    from threadpoolctl import threadpool_limits

    from functions.inference import handler, service
    from functions.shared import clients, storage
    from pipelines import keys
    from pipelines import serving_bundle as bundle

    data, digest = bundle.build_bundle(archive)
    key = keys.bundle_key(MODEL, 1, digest)
    environment = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "driftline",
        "DRIFTLINE_ENV": "bench",
        "DRIFTLINE_MODEL_NAME": MODEL,
        "DRIFTLINE_ARTIFACTS_BUCKET": BUCKET,
        "DRIFTLINE_CAPTURE_SAMPLE_RATE": "0",
        "DRIFTLINE_MODEL_VERSION": "1",
        "DRIFTLINE_MODEL_KEY": keys.model_artifact(MODEL, 1, keys.MODEL),
        "DRIFTLINE_SERVING_KEY": key,
        "DRIFTLINE_SERVING_SHA256": digest,
    }
    os.environ.update(environment)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    clients.reset()
    service.reset()
    results: dict[str, Any] = {}
    with mock_aws(), threadpool_limits(limits=1), Path(os.devnull).open("w") as sink:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        storage.put_bytes(BUCKET, key, data, "application/octet-stream")
        model = bundle.load_bundle(data, digest).model
        context = _Context()
        for rows in (1, 100):
            sample = features.iloc[:rows]
            body = json.dumps({"rows": sample.to_dict("records")})
            event = {
                "version": "2.0",
                "requestContext": {"http": {"method": "POST", "path": "/"}},
                "body": body,
                "isBase64Encoded": False,
            }
            frame = pd.DataFrame(sample.to_numpy(), columns=list(sample.columns))
            repeats = 1000 if rows == 1 else 300
            with contextlib.redirect_stdout(sink):  # the EMF metrics line, as Lambda writes it
                response = handler.handler(event, context)
                assert response["statusCode"] == 200, response["body"]
                ours, floor = _timed_pair(
                    lambda e=event: handler.handler(e, context),
                    lambda f=frame: model.predict(f),
                    repeats,
                    50,
                )
            ours_stats, floor_stats = _percentiles(ours), _percentiles(floor)
            paired = _percentiles([a - b for a, b in zip(ours, floor, strict=True)])
            results[f"{rows}_row" if rows == 1 else f"{rows}_rows"] = {
                "handler": ours_stats,
                "floor_model_predict": floor_stats,
                "overhead_p50_ms": round(ours_stats["p50_ms"] - floor_stats["p50_ms"], 3),
                "overhead_p99_ms": round(ours_stats["p99_ms"] - floor_stats["p99_ms"], 3),
                # handler minus floor of the same iteration (both under the same load)
                "paired_overhead_ms": paired,
                "ratio_p50": round(ours_stats["p50_ms"] / floor_stats["p50_ms"], 2),
                "repeats": repeats,
            }
        results["shared_1_row"] = _warm_shared(handler, model, features, key, digest, context)
    return results


def _warm_shared(
    handler: Any, model: Any, features: Any, key: str, digest: str, context: Any
) -> dict[str, Any]:
    """The shared endpoint on the same model: routed by URL path, route and model cached."""
    import pandas as pd

    from functions.inference import service
    from functions.shared import clients
    from functions.shared.endpoints import EndpointRegistry
    from tests.unit.conftest import REGISTRY_TABLE

    for name in ("DRIFTLINE_MODEL_NAME", "DRIFTLINE_MODEL_VERSION", "DRIFTLINE_MODEL_KEY"):
        os.environ.pop(name, None)
    os.environ["DRIFTLINE_ENDPOINTS_TABLE"] = "bench-endpoints"
    service.reset()
    dynamodb = clients.client("dynamodb")
    dynamodb.create_table(TableName="bench-endpoints", **REGISTRY_TABLE)
    route = {"model": MODEL, "endpoint": "shared", "model_version": 1}
    route |= {"serving_key": key, "serving_sha256": digest}
    EndpointRegistry(dynamodb, "bench-endpoints").replace_current(
        MODEL, route, expected_version=None
    )
    sample = features.iloc[:1]
    event = {
        "version": "2.0",
        "rawPath": f"/models/{MODEL}",
        "requestContext": {"http": {"method": "POST", "path": f"/models/{MODEL}"}},
        "body": json.dumps({"rows": sample.to_dict("records")}),
        "isBase64Encoded": False,
    }
    frame = pd.DataFrame(sample.to_numpy(), columns=list(sample.columns))
    with Path(os.devnull).open("w") as sink, contextlib.redirect_stdout(sink):
        response = handler.handler(event, context)
        assert response["statusCode"] == 200, response["body"]
        ours, floor = _timed_pair(
            lambda: handler.handler(event, context), lambda: model.predict(frame), 1000, 50
        )
    ours_stats, floor_stats = _percentiles(ours), _percentiles(floor)
    return {
        "handler": ours_stats,
        "floor_model_predict": floor_stats,
        "overhead_p50_ms": round(ours_stats["p50_ms"] - floor_stats["p50_ms"], 3),
        "overhead_p99_ms": round(ours_stats["p99_ms"] - floor_stats["p99_ms"], 3),
        "ratio_p50": round(ours_stats["p50_ms"] / floor_stats["p50_ms"], 2),
        "repeats": 1000,
    }


def _cold(archive: bytes) -> dict[str, Any]:
    from pipelines import serving_bundle as bundle

    data, digest = bundle.build_bundle(archive)
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        paths = {
            "bundle": Path(directory) / "serving.pkl",
            "archive": Path(directory) / "a.zip",
            "shared_bundle": Path(directory) / "serving.pkl",
        }
        paths["bundle"].write_bytes(data)
        paths["archive"].write_bytes(archive)
        for name, path in paths.items():
            template = SHARED_COLD_SCRIPT if name == "shared_bundle" else COLD_SCRIPT
            script = template.format(
                repo=str(REPO), path=str(path), digest=digest if name != "archive" else ""
            )
            samples = []
            for _ in range(3):
                started = time.perf_counter()
                output = subprocess.run(
                    [sys.executable, "-c", script],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={
                        **os.environ,
                        "POWERTOOLS_SERVICE_NAME": "driftline",
                        "AWS_DEFAULT_REGION": "us-east-1",
                    },
                ).stdout.split()
                wall = time.perf_counter() - started
                imports, load = float(output[0]), float(output[1])
                samples.append(
                    {"import_s": imports, "load_s": load, "total_s": imports + load, "wall_s": wall}
                )
            median = statistics.median(sample["total_s"] for sample in samples)
            runs[name] = {
                "median_import_plus_load_s": round(median, 3),
                "median_import_s": round(statistics.median(s["import_s"] for s in samples), 3),
                "median_load_s": round(statistics.median(s["load_s"] for s in samples), 3),
                "median_process_wall_s": round(statistics.median(s["wall_s"] for s in samples), 3),
                "runs": 3,
            }
    floors = [
        float(
            subprocess.run(
                [sys.executable, "-c", FLOOR_SCRIPT], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(3)
    ]
    runs["floor_import_pandas_sklearn_s"] = round(statistics.median(floors), 3)
    return runs


def main() -> None:
    archive, features = _train()
    cold = _cold(archive)
    warm = _warm(archive, features)
    document = {
        "benchmark": "inference",
        "model": f"{MODEL} (HistGradientBoostingClassifier, 30 numeric features)",
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
        "warm": warm,
        "cold_start": cold,
        "targets": {
            "warm_p99_overhead_1_row_ms": TARGET_OVERHEAD_MS,
            "cold_start_s": TARGET_COLD_S,
        },
        "cold_start_bundle_over_floor_s": round(
            cold["bundle"]["median_import_plus_load_s"] - cold["floor_import_pandas_sklearn_s"], 3
        ),
        "cold_start_shared_over_floor_s": round(
            cold["shared_bundle"]["median_import_plus_load_s"]
            - cold["floor_import_pandas_sklearn_s"],
            3,
        ),
        "met": {
            "warm_p99_overhead_1_row": warm["1_row"]["overhead_p99_ms"] <= TARGET_OVERHEAD_MS,
            "warm_p99_overhead_shared_1_row": (
                warm["shared_1_row"]["overhead_p99_ms"] <= TARGET_OVERHEAD_MS
            ),
            "cold_start_bundle": cold["bundle"]["median_import_plus_load_s"] <= TARGET_COLD_S,
            "cold_start_shared_bundle": (
                cold["shared_bundle"]["median_import_plus_load_s"] <= TARGET_COLD_S
            ),
        },
    }
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
