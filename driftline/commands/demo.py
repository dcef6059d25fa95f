"""`driftline demo`: the main job end to end on a fresh local twin, printed as a timeline.

Starts the twin in-process on a free port, deploys the `local` stacks unmodified, uploads the
breast-cancer example and follows the whole loop: validated → trained → registered → deployed
→ predictions → drifted traffic → drift alarm → notification → retraining → new version live.
Every step is checked, not assumed; the exit code is 0 only if every step happened. Schedules
do not fire on the twin, so the demo invokes the drift monitor where AWS would run it on its
schedule (a capture batch landing also triggers it, debounced).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.aws import client
from driftline.commands.predict import invoke_live
from driftline.connect import environment
from driftline.errors import EXIT_NEGATIVE_VERDICT, EXIT_OK
from driftline.loop import step_results, upload_dataset, wait_for_execution
from driftline.twin.deployer import deploy
from driftline.twin.server import FAKE_CREDENTIALS, Twin, free_port
from driftline.twin.synth import project_root, synthesize
from pipelines.monitoring import retrain_execution_name

DATASET = "breast_cancer"
TRAFFIC_ROWS = 250
BATCH_ROWS = 50
# A unit mix-up upstream: sizes arrive 1.6x too large, the kind of shift the monitor must catch.
DRIFTED_FEATURES = ("mean_radius", "mean_perimeter", "worst_radius", "worst_perimeter")
DRIFT_FACTOR = 1.8
DRIFTED_ROWS = 750


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
    with environment({**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": twin.endpoint}):
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
    if not timeline.record(
        "registered",
        registered.get("status") == "Approved",
        f"model {registered.get('model')} v{registered.get('version')} "
        f"({registered.get('status')}), lineage → version {upload.version_id}",
    ):
        return False
    deployment = output.get("deployment", {})
    if not timeline.record(
        "deployed",
        execution["status"] == "SUCCEEDED" and deployment.get("status") == "Succeeded",
        f"alias live → Lambda version {deployment.get('lambda_version')} "
        f"(model v{deployment.get('model_version')})",
    ):
        return False
    return _monitoring_loop(twin, data, upload.version_id, registered, timeline)


def _monitoring_loop(
    twin: _DemoTwin,
    data: Path,
    version_id: str,
    registered: dict[str, Any],
    timeline: Timeline,
) -> bool:
    outputs = twin.outputs
    inbox = _subscribe_inbox(outputs["AlertsTopicArn"])
    rows = _rows(data)
    answers = _send(outputs, rows[:TRAFFIC_ROWS])
    versions = {answer.get("model_version") for answer in answers}
    if not timeline.record(
        "predictions",
        versions == {registered.get("version")},
        f"{TRAFFIC_ROWS} rows scored by model v{registered.get('version')}, captured to S3",
    ):
        return False
    baseline = _check_drift(outputs)
    timeline.record("drift check", True, f"healthy traffic: {baseline.get('verdict')}")

    drifted = [
        {
            name: value * DRIFT_FACTOR if name in DRIFTED_FEATURES else value
            for name, value in row.items()
        }
        for row in rows[TRAFFIC_ROWS:]
    ]
    _send(outputs, drifted)
    timeline.record(
        "drifted",
        True,
        f"{len(drifted)} rows with {', '.join(DRIFTED_FEATURES)} x{DRIFT_FACTOR}",
    )
    report = _check_drift(outputs)
    alarms = _composite_alarms_in_alarm(timeout=20.0)
    drifted_names = _drifted_features(outputs, report)
    if not timeline.record(
        "alarm",
        bool(alarms),
        f"drifted: {', '.join(drifted_names) or 'none'}; "
        f"{', '.join(alarm['AlarmName'] for alarm in alarms) or 'no composite alarm in ALARM'}",
    ):
        return False
    note = _wait_for_message(inbox, "drift detected", timeout=30.0)
    if not timeline.record(
        "notified",
        note is not None,
        " | ".join((note or "no drift notification received").splitlines()[:2]),
    ):
        return False
    machine = outputs["TrainingStateMachineArn"]
    retrain = wait_for_execution(
        machine, retrain_execution_name(DATASET, version_id, 1), timeout=300
    )
    retrained = json.loads(retrain.get("output") or "{}")
    new = retrained.get("registered", {})
    if not timeline.record(
        "retrained",
        retrain["status"] == "SUCCEEDED",
        f"run {retrain.get('name')}: model v{new.get('version')} passed the gate "
        f"against champion v{registered.get('version')}",
    ):
        return False
    answer = _send(outputs, rows[:1])[0]
    return timeline.record(
        "promoted",
        answer.get("model_version") == new.get("version"),
        f"live endpoint now answers with model v{answer.get('model_version')}",
    )


def _composite_alarms_in_alarm(*, timeout: float) -> list[dict[str, Any]]:
    """Composite alarms in ALARM, waiting briefly: metrics reach CloudWatch after the log flush."""
    deadline = time.monotonic() + timeout
    while True:
        composites = client("cloudwatch").describe_alarms(AlarmTypes=["CompositeAlarm"])
        alarms = [a for a in composites["CompositeAlarms"] if a["StateValue"] == "ALARM"]
        if alarms or time.monotonic() > deadline:
            return alarms
        time.sleep(0.5)


def _drifted_features(outputs: dict[str, str], checked: dict[str, Any]) -> list[str]:
    if not checked.get("report_key"):
        return []
    body = client("s3").get_object(Bucket=outputs["ArtifactsBucketName"], Key=checked["report_key"])
    features = json.loads(body["Body"].read())["report"]["features"]
    return sorted(name for name, stats in features.items() if stats.get("drifted"))


def _wait_for_message(inbox: Callable[[], list[str]], phrase: str, *, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in inbox():
            if phrase in message.lower():
                return message
        time.sleep(0.5)
    return None


def _rows(data: Path) -> list[dict[str, float]]:
    import pandas as pd

    frame = pd.read_csv(data).drop(columns=["target"])
    sample = frame.sample(n=TRAFFIC_ROWS + DRIFTED_ROWS, replace=True, random_state=7)
    return [{k: float(v) for k, v in row.items()} for row in sample.to_dict(orient="records")]


def _send(outputs: dict[str, str], rows: list[dict[str, float]]) -> list[dict[str, Any]]:
    answers = []
    for start in range(0, len(rows), BATCH_ROWS):
        answer = invoke_live(outputs, "local", DATASET, {"rows": rows[start : start + BATCH_ROWS]})
        if not isinstance(answer, dict) or answer.get("status") != 200:
            raise RuntimeError(f"endpoint refused demo traffic: {answer}")
        answers.append(answer)
    return answers


def _check_drift(outputs: dict[str, str]) -> dict[str, Any]:
    """Run the drift monitor now, as its schedule would on AWS."""
    response = client("lambda").invoke(
        FunctionName=outputs["DriftMonitorFunctionName"],
        Payload=json.dumps({"trigger": "manual", "model": DATASET}).encode(),
    )
    result = json.loads(response["Payload"].read() or b"{}")
    checked = result.get("checked") or [{}]
    first: dict[str, Any] = checked[0]
    return first


def _subscribe_inbox(topic_arn: str) -> Callable[[], list[str]]:
    """An SQS queue on the alerts topic: what an operator's inbox would receive."""
    sqs = client("sqs")
    queue_url = sqs.create_queue(QueueName="driftline-demo-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def read() -> list[str]:
        messages: list[str] = []
        while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                body = json.loads(message["Body"])
                messages.append(str(body.get("Message", message["Body"])))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    return read
