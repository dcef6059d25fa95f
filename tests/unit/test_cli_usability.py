"""The CLI as a new user meets it: help, version, completion, --env checks, finding the twin,
and every connection failure naming its fix."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline import cli
from driftline.envs import env_names
from driftline.output import principal, shorten_list
from tests.unit.conftest import REGISTRY_TABLE

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DRIFTLINE = [sys.executable, "-m", "driftline"]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A shell with no AWS settings at all (no region, no credentials, no config files)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key != "DRIFTLINE_STATE_DIR"
    }
    env |= {
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "DRIFTLINE_STATE_DIR": str(tmp_path / "state"),
        **extra,
    }
    return env


def driftline(
    env: dict[str, str], *argv: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DRIFTLINE, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def subparser_helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {choice.dest: str(choice.help) for choice in action._choices_actions}


def test_the_lazy_command_table_matches_what_each_module_registers() -> None:
    stubs = subparser_helps(cli.build_parser(["--help"]))
    real = subparser_helps(cli.build_parser(full=True))

    assert list(stubs) == list(real) == list(cli.COMMANDS)
    assert stubs == real


def test_help_loads_no_command_module_nor_boto3_pandas_or_rich() -> None:
    script = (
        "import sys\nfrom driftline.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'pandas', 'rich', 'pyarrow', 'moto') "
        "or m.startswith('driftline.commands.')), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )

    assert done.stderr.strip() == "[]"
    assert "report" in done.stdout and "completion" in done.stdout


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out == f"driftline {version('driftline')}\n"


def test_env_names_are_the_envs_of_cdk_json() -> None:
    document = json.loads((REPO / "cdk.json").read_text())

    assert env_names() == tuple(document["context"]["driftline"]["envs"])


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "list"],
        ["models", "list"],
        ["outputs"],
        ["endpoints", "list"],
        ["datasets", "list"],
        ["drift", "status", "--model", "m"],
        ["predict", "--model", "m"],
        ["report", "runs", "--html", "out.html"],
        ["models", "promote", "--model", "m", "--version", "1", "--to"],
    ],
)
def test_an_unknown_env_is_refused_at_parse_time_naming_the_valid_envs(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    option = [] if argv[-1] == "--to" else ["--env"]
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, *option, "foo"])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1
    assert "invalid choice: 'foo'" in err
    for name in env_names():
        assert name in err


def test_completion_prints_a_bash_script_calling_back_into_driftline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "complete " in script and "driftline" in script


def test_completion_completes_commands_and_env_names(tmp_path: Path) -> None:
    answers = tmp_path / "answers"

    def complete(line: str) -> list[str]:
        env = dict(os.environ) | {
            "_ARGCOMPLETE": "1",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_STDOUT_FILENAME": str(answers),
        }
        subprocess.run([*DRIFTLINE], cwd=REPO, env=env, capture_output=True, timeout=60)
        return answers.read_text().replace("\x0b", "\n").split()

    assert complete("driftline ru") == ["runs"]
    assert complete("driftline runs list --env ") == list(env_names())


# --- finding the twin, and errors that name the fix ------------------------------------------


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A bare moto server standing in for a running twin, with the Runs registry's stack."""
    from moto.server import ThreadedMotoServer

    from driftline.twin.server import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        table: dict[str, Any] = {"Type": "AWS::DynamoDB::Table", "Properties": REGISTRY_TABLE}
        template = {
            "Resources": {"Runs": table},
            "Outputs": {"RunsTableName": {"Value": {"Ref": "Runs"}}},
        }
        session.client("cloudformation", endpoint_url=endpoint).create_stack(
            StackName="Driftline-local-Data", TemplateBody=json.dumps(template)
        )
        yield endpoint
    finally:
        server.stop()


def test_env_local_finds_the_running_twin_from_its_state_file(
    moto_server: str, tmp_path: Path
) -> None:
    env = clean_env(tmp_path)
    state = Path(env["DRIFTLINE_STATE_DIR"])
    state.mkdir()
    port = int(moto_server.rsplit(":", 1)[1])
    (state / "twin.json").write_text(
        json.dumps({"port": port, "pid": os.getpid(), "endpoint": moto_server})
    )

    done = driftline(env, "runs", "list", "--json")

    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == []


def test_no_twin_running_names_local_up(tmp_path: Path) -> None:
    done = driftline(clean_env(tmp_path), "runs", "list")

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "run `driftline local up`" in done.stderr


def test_a_twin_recorded_but_gone_names_local_up(tmp_path: Path) -> None:
    from driftline.twin.server import free_port

    env = clean_env(tmp_path)
    state = Path(env["DRIFTLINE_STATE_DIR"])
    state.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (state / "twin.json").write_text(json.dumps({"port": free_port(), "pid": dead.pid}))

    done = driftline(env, "models", "list")

    assert done.returncode == 2
    assert "run `driftline local up`" in done.stderr


def test_an_endpoint_url_where_no_twin_listens_names_local_up(tmp_path: Path) -> None:
    from driftline.twin.server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    env = clean_env(
        tmp_path,
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_MAX_ATTEMPTS="1",
    )

    done = driftline(env, "runs", "list")

    assert done.returncode == 2
    assert done.stderr == (
        f"driftline: cannot reach the local twin at {endpoint}: run `driftline local up` "
        "(it serves until Ctrl-C) and try again\n"
    )


def test_a_cloud_env_without_a_region_says_how_to_set_one(tmp_path: Path) -> None:
    done = driftline(clean_env(tmp_path), "outputs", "--env", "dev")

    assert done.returncode == 2
    assert done.stderr.startswith(
        "driftline: no AWS region is configured: export AWS_DEFAULT_REGION="
    )


def test_a_cloud_env_without_credentials_says_how_to_get_them(tmp_path: Path) -> None:
    done = driftline(clean_env(tmp_path, AWS_DEFAULT_REGION="eu-west-1"), "outputs", "--env", "dev")

    assert done.returncode == 2
    assert done.stderr.startswith("driftline: no AWS credentials found: set AWS_PROFILE")


def test_the_connection_target_is_restored_after_the_command(tmp_path: Path) -> None:
    from driftline.connect import target

    state = tmp_path / "state"
    state.mkdir()
    (state / "twin.json").write_text(json.dumps({"port": 4599, "pid": os.getpid()}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DRIFTLINE_STATE_DIR", str(state))
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        patch.setenv("AWS_PROFILE", "mine")
        with target("local") as reached:
            assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4599"
            assert "AWS_PROFILE" not in os.environ
            assert reached.discovered
        assert "AWS_ENDPOINT_URL" not in os.environ
        assert os.environ["AWS_PROFILE"] == "mine"
        with target("dev"):
            assert "AWS_ENDPOINT_URL" not in os.environ


# --- readable cells -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "short"),
    [
        (
            "arn:aws:states:us-east-1:000000000000:execution:Driftline-local-Training:"
            "breast_cancer-3f2a",
            "run:breast_cancer-3f2a",
        ),
        ("arn:aws:sts::123456789012:assumed-role/Deployer/alice", "Deployer/alice"),
        ("arn:aws:iam::123456789012:user/alice", "alice"),
        ("cli:alice", "cli:alice"),
        (None, None),
    ],
)
def test_who_deployed_is_a_short_name_not_an_arn(value: str | None, short: str | None) -> None:
    assert principal(value) == short


def test_a_long_list_is_its_size_and_first_items() -> None:
    names = [f"f{i}" for i in range(30)]

    assert shorten_list(names, noun="features") == "30 features (f0, f1, f2, …)"
    assert shorten_list(["a"], noun="features") == "1 features (a)"
    assert shorten_list([{"kind": "threshold"}] * 3, noun="checks") == "3 checks"


def test_tables_cut_long_cells_and_keep_one_row_per_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from driftline.output import MAX_CELL, print_table

    key = "s3://bucket/" + "k" * 200  # an identifier: never cut, so it can be copied
    print_table([{"name": "a", "reason": "word " * 100, "key": key}, {"name": "b", "reason": "ok"}])

    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["NAME", "a", "b"]
    assert "word word" in lines[1] and "… " in lines[1]
    assert lines[1].endswith(key)
    assert len(lines[1]) <= MAX_CELL + len(key) + 10
    assert all(line == line.rstrip() for line in lines)


def test_drift_report_loads_neither_boto3_nor_the_twin(tmp_path: Path) -> None:
    rows = "x,y\n" + "".join(f"{i % 7},{i % 3}\n" for i in range(300))
    (tmp_path / "a.csv").write_text(rows)
    script = (
        "import sys\nfrom driftline.cli import main\n"
        f"main(['drift', 'report', '--baseline', {str(tmp_path / 'a.csv')!r}, "
        f"'--current', {str(tmp_path / 'a.csv')!r}, '--json'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'moto', 'rich') or m.startswith('driftline.twin')), "
        "file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )

    assert done.stderr.strip() == "[]"
    assert json.loads(done.stdout)["verdict"] == "no_drift"


def test_the_readme_command_table_names_every_command_and_subcommand() -> None:
    readme = (REPO / "README.md").read_text()
    parser = cli.build_parser(full=True)
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]

    missing = []
    for name, command in commands.choices.items():
        rows = " ".join(
            line for line in readme.splitlines() if line.startswith(f"| `driftline {name}")
        )
        if not rows:
            missing.append(name)
            continue
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{name} {sub}" for sub in action.choices if sub not in rows]
    assert missing == []


def test_a_large_upload_shows_a_progress_bar_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from driftline.commands.upload import _Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    progress = _Progress("datasets/big/data.csv", 32 * 1024 * 1024)
    for _ in range(4):
        progress(8 * 1024 * 1024)
    progress.done()

    shown = terminal.getvalue()
    assert "upload datasets/big/data.csv" in shown
    assert "33.6/33.6 MB" in shown
