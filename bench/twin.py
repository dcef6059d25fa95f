"""Benchmark the local twin: start + synth + deploy of every `local` stack, then the latency
from an S3 upload to the training execution it starts. Prints one JSON object.

Floors are the parts the twin cannot make faster: the CDK app's own synth for the deploy, and
the S3 PutObject round trip for the trigger. No peer runs offline here (LocalStack needs
Docker), so the peer columns say why they are null.

Run: .venv/bin/python bench/twin.py
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from driftline.twin.deployer import DeployResult, deploy, twin_client
from driftline.twin.server import Twin, free_port
from driftline.twin.synth import project_root, start_synthesis
from pipelines.keys import upload_key

DEPLOY_BUDGET_SECONDS = 8.0  # issue 14: twin up (synth + deploy) within 8 s
TRIGGER_BUDGET_SECONDS = 1.0
WARM_SAMPLES = 3
TRIGGER_TIMEOUT_SECONDS = 30.0


def main() -> None:
    # Failed or interrupted executions at shutdown log at ERROR; they are not what is measured.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    root = project_root(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as directory:
        twin = Twin(port=free_port(), state_dir=Path(directory))
        started = time.perf_counter()
        synthesis = start_synthesis("local", twin.cdk_out, root=root)
        synth_started = time.perf_counter()
        try:
            twin.start()
            server_seconds = time.perf_counter() - started
            synthesis.wait()
            synth_seconds = time.perf_counter() - synth_started
            result = deploy(twin.cdk_out, endpoint=twin.endpoint)
            total_seconds = time.perf_counter() - started
            trigger = _trigger_latency(twin, result)
        finally:
            synthesis.cancel()
            twin.stop()
    stacks = {stack.name: stack.status for stack in result.stacks}
    print(
        json.dumps(
            {
                "benchmark": "twin",
                "deploy": {
                    "ours_seconds": round(total_seconds, 2),
                    "budget_seconds": DEPLOY_BUDGET_SECONDS,
                    "within_budget": total_seconds <= DEPLOY_BUDGET_SECONDS,
                    "breakdown_seconds": {
                        "server_start": round(server_seconds, 2),
                        "synth_wall": round(synth_seconds, 2),
                        "publish_and_deploy": round(result.seconds, 2),
                    },
                    "floor_seconds": round(synth_seconds, 2),
                    "floor": "the CDK app's synth alone (the twin starts its server meanwhile)",
                    "ours_over_floor": round(total_seconds / synth_seconds, 2),
                    "peer_seconds": None,
                    "peer": "LocalStack + cdklocal needs Docker, which this machine lacks",
                    "stacks": stacks,
                    "unsupported_resource_types": sorted(result.unsupported),
                },
                "upload_to_execution": trigger,
            },
            sort_keys=True,
        )
    )


def _trigger_latency(twin: Twin, result: DeployResult) -> dict[str, Any]:
    """Seconds from PutObject to the new execution being listed, cold (first) and warm."""
    bucket = result.outputs.get("DatasetsBucketName")
    if bucket is None:
        return _unmeasured("the deployed stacks export no DatasetsBucketName")
    stepfunctions = twin_client(twin.endpoint, "stepfunctions")
    machines = [m["stateMachineArn"] for m in stepfunctions.list_state_machines()["stateMachines"]]
    if not machines:
        return _unmeasured("the deployed stacks have no state machine to start")
    s3 = twin_client(twin.endpoint, "s3")
    samples: list[float] = []
    put_seconds: list[float] = []
    for _ in range(1 + WARM_SAMPLES):
        seen = _executions(stepfunctions, machines)
        key = upload_key("bench", f"{uuid.uuid4().hex}.csv")
        began = time.perf_counter()
        s3.put_object(Bucket=bucket, Key=key, Body=b"x,y\n1,2\n3,4\n")
        put_seconds.append(time.perf_counter() - began)
        while not _executions(stepfunctions, machines) - seen:
            if time.perf_counter() - began > TRIGGER_TIMEOUT_SECONDS:
                return _unmeasured(f"no execution started within {TRIGGER_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.01)
        samples.append(time.perf_counter() - began)
    warm = statistics.median(samples[1:])
    floor = statistics.median(put_seconds)
    return {
        "ours_seconds_cold": round(samples[0], 3),
        "ours_seconds_warm_median": round(warm, 3),
        "budget_seconds": TRIGGER_BUDGET_SECONDS,
        "within_budget_warm": warm <= TRIGGER_BUDGET_SECONDS,
        "within_budget_cold": samples[0] <= TRIGGER_BUDGET_SECONDS,
        "floor_seconds": round(floor, 3),
        "floor": "the PutObject round trip alone",
        "ours_over_floor_warm": round(warm / floor, 1) if floor else None,
        "peer_seconds": None,
        "peer": "AWS itself (S3 → EventBridge → Lambda → Step Functions) is not reachable offline",
        "reason": None,
    }


def _unmeasured(reason: str) -> dict[str, Any]:
    return {"ours_seconds_cold": None, "ours_seconds_warm_median": None, "reason": reason}


def _executions(stepfunctions: Any, machines: list[str]) -> set[str]:
    return {
        execution["executionArn"]
        for machine in machines
        for execution in stepfunctions.list_executions(stateMachineArn=machine)["executions"]
    }


if __name__ == "__main__":
    main()
