"""Exit codes of the CLI when something unforeseen happens, and a reader that leaves early."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from driftline import cli

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def parser_running(handler: object) -> object:
    def build(argv: object = None, full: bool = False) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="driftline")
        parser.set_defaults(handler=handler)
        return parser

    return build


def test_an_unexpected_error_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise KeyError("multi\nline detail")

    monkeypatch.setattr(cli, "build_parser", parser_running(broken))
    monkeypatch.delenv("DRIFTLINE_DEBUG", raising=False)
    assert cli.main([]) == 2  # not 1, the "invalid data / drift found" verdict
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("driftline: unexpected error: KeyError:")
    assert "Traceback" not in err


def test_debug_shows_the_traceback_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "build_parser", parser_running(broken))
    monkeypatch.setenv("DRIFTLINE_DEBUG", "1")
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("driftline: unexpected")


FLOOD = textwrap.dedent(
    """
    import argparse, sys, time
    from driftline import cli

    def flood(args):
        print("row 0", flush=True)
        time.sleep(0.5)  # the reader has left by now
        for i in range(1, {lines}):
            print(f"row {{i}} " + "x" * 60)
        return 0

    def build(argv=None, full=False):
        parser = argparse.ArgumentParser(prog="driftline")
        parser.set_defaults(handler=flood)
        return parser

    cli.build_parser = build
    sys.exit(cli.main([]))
    """
)


@pytest.mark.parametrize("lines", [20, 200_000])  # broken at the last flush / mid-way
def test_a_reader_that_leaves_early_gets_no_traceback(lines: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", FLOOD.format(lines=lines)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"row 0")
    process.stdout.close()  # `| head -1`
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert err == ""
