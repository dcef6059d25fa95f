"""`driftline demo`: the main job end to end on a fresh local twin, printed as a timeline.

Starts the twin in-process on a free port, deploys the `local` stacks unmodified, uploads the
breast-cancer example and follows the run: validated → trained → gated → registered. Every
step is checked, not assumed; the exit code is 0 only if every step happened.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.errors import EXIT_NEGATIVE_VERDICT, EXIT_OK
from driftline.loop import step_results, upload_dataset, wait_for_execution
from driftline.twin.deployer import deploy
from driftline.twin.server import FAKE_CREDENTIALS, Twin, free_port
from driftline.twin.synth import project_root, synthesize

DATASET = "breast_cancer"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run the whole loop on a fresh local twin")
    parser.add_argument(
        "--data",
        type=Path,
        help="CSV to upload (default: examples/breast_cancer.csv)",
    )
    parser.add_argument("--json", action="store_true", help="print the timeline as one JSON list")
    parser.set_defaults(handler=run)


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    steps: list[dict[str, Any]] = field(default_factory=list)
    quiet: bool = False

    def record(self, step: str, ok: bool, detail: str) -> bool:
        elapsed = time.monotonic() - self.started
        self.steps.append({"step": step, "ok": ok, "seconds": round(elapsed, 2), "detail": detail})
        if not self.quiet:
            mark = "ok " if ok else "FAIL"
            print(f"[{elapsed:6.1f}s] {mark} {step:<11} {detail}", flush=True)
        return ok


def run(args: argparse.Namespace) -> int:
    root = project_root()
    data = args.data or root / "examples" / f"{DATASET}.csv"
    timeline = Timeline(quiet=args.json)
    with tempfile.TemporaryDirectory(prefix="driftline-demo-") as state, _twin(Path(state)) as twin:
        ok = _main_job(twin, data, timeline)
    if args.json:
        print(json.dumps(timeline.steps, indent=2))
    return EXIT_OK if ok else EXIT_NEGATIVE_VERDICT


@dataclass(frozen=True)
class _DemoTwin:
    endpoint: str
    cdk_out: Path
    outputs: dict[str, str]


@contextmanager
def _twin(state_dir: Path) -> Iterator[Callable[[Timeline], _DemoTwin]]:
    twin = Twin(port=free_port(), state_dir=state_dir)
    saved = {name: os.environ.get(name) for name in (*FAKE_CREDENTIALS, "AWS_ENDPOINT_URL")}
    os.environ.update({**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": twin.endpoint})
    try:
        twin.start()

        def deployed(timeline: Timeline) -> _DemoTwin:
            synthesize("local", twin.cdk_out)
            timeline.record("synth", True, f"local env synthesized into {twin.cdk_out}")
            result = deploy(twin.cdk_out, endpoint=twin.endpoint)
            stacks = ", ".join(stack.name for stack in result.stacks)
            timeline.record("deploy", True, f"{stacks} on {twin.endpoint}")
            return _DemoTwin(twin.endpoint, twin.cdk_out, result.outputs)

        yield deployed
    finally:
        twin.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _main_job(start: Callable[[Timeline], _DemoTwin], data: Path, timeline: Timeline) -> bool:
    twin = start(timeline)
    machine = twin.outputs["TrainingStateMachineArn"]
    upload = upload_dataset(twin.outputs["DatasetsBucketName"], DATASET, data)
    timeline.record(
        "upload", True, f"s3://{upload.bucket}/{upload.key} version {upload.version_id}"
    )
    execution = wait_for_execution(machine, upload.execution_name, timeout=300)
    steps = {step.state: step for step in step_results(machine, upload.execution_name)}
    output = json.loads(execution.get("output") or "{}")

    validation = output.get("validation", {})
    if not timeline.record(
        "validated",
        validation.get("status") == "accepted",
        f"{validation.get('rows')} rows accepted, manifest {validation.get('manifest_key')}",
    ):
        return False
    evaluation = output.get("evaluation", {})
    metrics = ", ".join(
        f"{name}={value:.3f}" for name, value in (evaluation.get("metrics") or {}).items()
    )
    if not timeline.record("trained", "Train" in steps, f"test {metrics}"):
        return False
    gate = output.get("gate", {})
    if not timeline.record(
        "gated", bool(gate.get("passed")), "; ".join(gate.get("reasons", [])[:2]) or "-"
    ):
        return False
    registered = output.get("registered", {})
    return timeline.record(
        "registered",
        execution["status"] == "SUCCEEDED" and registered.get("status") == "Approved",
        f"model {registered.get('model')} v{registered.get('version')} "
        f"({registered.get('status')}), lineage → version {upload.version_id}",
    )
