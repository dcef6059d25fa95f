"""`driftline local up|deploy|status`: one-line errors, JSON status, clean shutdown."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driftline.cli import main
from driftline.twin.server import free_port, state_path
from driftline.twin.synth import SynthError, synthesize
from tests.twin.conftest import RunningTwin

pytestmark = pytest.mark.twin

REPO = Path(__file__).resolve().parents[2]


def test_up_on_a_taken_port_fails_with_one_line_naming_the_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code = main(
            ["local", "up", "--port", str(port), "--state-dir", str(tmp_path), "--no-synth"]
        )

    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1
    assert f"port {port}" in error


@pytest.mark.slow
def test_synth_failure_is_one_line_with_the_apps_own_error(tmp_path: Path) -> None:
    with pytest.raises(SynthError) as failure:
        synthesize("nope", tmp_path / "cdk.out", root=REPO)

    assert "unknown env 'nope'" in str(failure.value)
    assert "\n" not in str(failure.value)


@pytest.mark.slow
def test_status_json_lists_the_deployed_stacks_and_their_outputs(
    twin: RunningTwin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["local", "status", "--json", "--endpoint", twin.endpoint, "--state-dir", str(tmp_path)]
    )

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["answering"] is True
    assert document["endpoint"] == twin.endpoint
    stacks = {stack["name"]: stack for stack in document["stacks"]}
    assert stacks["Driftline-local-Data"]["status"] == "CREATE_COMPLETE"
    assert (
        stacks["Driftline-local-Data"]["outputs"]["DatasetsBucketName"]
        == twin.outputs["DatasetsBucketName"]
    )


def test_status_when_no_twin_answers_exits_2_naming_local_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"

    code = main(["local", "status", "--json", "--endpoint", endpoint, "--state-dir", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == 2  # nothing to talk to: unusable, not a negative verdict
    assert json.loads(captured.out)["answering"] is False
    assert captured.err == (
        f"driftline: no twin answers at {endpoint}: run `driftline local up` (it serves until "
        "Ctrl-C) and try again\n"
    )
    code = main(["local", "status", "--endpoint", endpoint, "--state-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert "run `driftline local up`" in captured.err


def test_local_up_prints_the_export_line_the_readme_shows() -> None:
    from driftline.commands.local import export_line

    readme = (REPO / "README.md").read_text()
    assert export_line("http://127.0.0.1:4566") in readme


def test_deploy_without_a_running_twin_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"

    code = main(
        ["local", "deploy", "--no-synth", "--endpoint", endpoint, "--state-dir", str(tmp_path)]
    )

    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1
    assert f"no twin answers at {endpoint}" in error


@pytest.mark.slow
def test_deploy_into_the_running_twin_reports_each_stack(
    twin: RunningTwin, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "local",
            "deploy",
            "--no-synth",
            "--json",
            "--endpoint",
            twin.endpoint,
            "--state-dir",
            str(twin.state_dir),
        ]
    )

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {stack["name"] for stack in document["stacks"]} >= {"Driftline-local-Data"}
    assert {stack["action"] for stack in document["stacks"]} <= {"unchanged", "skipped"}


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


STOPPED_WHILE_ANNOUNCING = """
import os, signal
from pathlib import Path
from driftline.twin.server import Twin, free_port, serve_until_signalled

events = []

def announce():
    events.append("announced")
    os.kill(os.getpid(), signal.SIGTERM)  # whoever read the state file stops the twin at once
    events.append("announce finished")

twin = Twin(port=free_port(), state_dir=Path("."))
serve_until_signalled(twin, on_ready=announce, on_stop=lambda: events.append("stopped"))
print(",".join(events))
"""


def test_a_stop_signal_as_soon_as_the_twin_is_announced_is_a_clean_stop(tmp_path: Path) -> None:
    """`local up` writes its state file from `on_ready`: a SIGTERM sent the moment that file
    appears must stop the twin cleanly (exit 0, `on_stop` run), not interrupt its start-up."""
    completed = subprocess.run(
        [sys.executable, "-c", STOPPED_WHILE_ANNOUNCING],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "announced,announce finished,stopped"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_sigterm_stops_the_twin_and_leaves_no_child_process(
    twin: RunningTwin, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    shutil.copytree(twin.cdk_out, state_dir / "cdk.out")
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "driftline.cli", "local", "up", "--no-synth"),
            *("--port", str(port), "--state-dir", str(state_dir)),
        ],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not state_path(state_dir).exists():
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "the twin did not come up within 120 s"
            time.sleep(0.2)
        assert json.loads(state_path(state_dir).read_text())["port"] == port
        descendants = _descendants(server.pid)

        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()

    assert server.returncode == 0, stderr
    assert not [pid for pid in descendants if _alive(pid)]
    assert not state_path(state_dir).exists()
