"""`driftline`: the one command line for people and scripts.

Exit codes: 0 success, 1 a negative verdict (invalid data, drift found, gate failed),
2 unusable input or usage. Errors are one line on stderr.

Command modules load lazily: the table below names each command and its one-line help, and
only the module of the command being run is imported (so `driftline --help` and `driftline
drift report` do not pay for boto3, pyarrow or the twin). A test checks the table against what
each module registers. Shell completion (argcomplete) builds the whole parser.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from driftline.errors import EXIT_UNUSABLE_INPUT, DriftlineError

PROG = "driftline"

# name → (module under driftline.commands, help). Order is the order `--help` lists them in.
COMMANDS: dict[str, tuple[str, str]] = {
    "outputs": ("outputs", "print the stack outputs of an environment"),
    "local": ("local", "run the local env on the twin (moto, offline)"),
    "demo": ("demo", "run the whole loop on a fresh local twin"),
    "drift": ("drift", "compare data distributions for drift"),
    "validate": ("validate", "check a data file against its contract and profile it"),
    "contracts": ("contracts", "infer or check data contracts"),
    "datasets": ("datasets", "list and show accepted dataset versions"),
    "upload": ("upload", "upload a dataset file or a folder of parts and start its run"),
    "runs": ("runs", "list, show, compare, wait for, read the logs of and rerun training runs"),
    "models": ("models", "list, show, approve, reject and promote model versions; check a config"),
    "endpoints": ("endpoints", "list endpoints, their deployment history, roll back or deploy"),
    "predict": ("predict", "score JSON rows from stdin on a model's live endpoint"),
    "smoke": ("smoke", "smoke-test a deployed env: stacks, outputs, drift monitor, endpoints"),
    "cost": ("cost", "estimate an env's monthly cost from its templates and a usage profile"),
    "report": ("report", "write static HTML views: runs, metrics over time, lineage"),
    "completion": ("completion", "print a shell completion script (bash, zsh, fish)"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_UNUSABLE_INPUT, f"{PROG}: {message}\n")


class _Version(argparse.Action):
    """`--version`: read from the installed distribution only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"{PROG} {version()}")
        parser.exit()


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version(PROG)
    except PackageNotFoundError:
        return "unknown (not installed: `make setup`)"


def command_module(name: str) -> Any:
    return importlib.import_module(f"driftline.commands.{COMMANDS[name][0]}")


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named on the line: the top-level parser has no option taking a value."""
    for token in argv:
        if not token.startswith("-"):
            return token if token in COMMANDS else None
    return None


def build_parser(
    argv: Sequence[str] | None = None, *, full: bool = False
) -> argparse.ArgumentParser:
    """The parser with the chosen command's real sub-parser (every command's when `full`)."""
    parser = _Parser(prog=PROG, description="Serverless MLOps on AWS, and its local twin.")
    parser.add_argument("--version", action=_Version)
    subparsers = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    chosen = None if full else _chosen(sys.argv[1:] if argv is None else argv)
    for name, (_, help_text) in COMMANDS.items():
        if full or name == chosen:
            command_module(name).register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def _complete() -> None:
    """Answer a shell's completion request (argcomplete sets _ARGCOMPLETE), then exit."""
    import argcomplete

    argcomplete.autocomplete(build_parser(full=True))


def main(argv: Sequence[str] | None = None) -> int:
    if "_ARGCOMPLETE" in os.environ:
        _complete()
    args = build_parser(argv).parse_args(argv)
    env = getattr(args, "env", None)
    from driftline.connect import explain, target

    try:
        with target(env if isinstance(env, str) else None):
            code: int = args.handler(args)
            # Flush here, not at interpreter exit: a reader that left (`| head`) while output
            # was still buffered is then the quiet BrokenPipeError case below.
            sys.stdout.flush()
    except DriftlineError as error:
        hint = explain(error, env) if error.exit_code == EXIT_UNUSABLE_INPUT else None
        print(f"{PROG}: {hint or error}", file=sys.stderr)
        return (hint or error).exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `driftline ... | head`: the reader left; say nothing more (Python's own advice).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as error:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, (BotoCoreError, ClientError)):
            hint = explain(error, env)
            print(f"{PROG}: {hint or f'AWS call failed: {error}'}", file=sys.stderr)
            return EXIT_UNUSABLE_INPUT
        return _unexpected(error)
    return code


def _unexpected(error: Exception) -> int:
    """A bug or an unforeseen failure: one line and exit 2, never 1 (1 is a negative verdict:
    invalid data, drift found, gate failed). DRIFTLINE_DEBUG=1 adds the traceback."""
    if os.environ.get("DRIFTLINE_DEBUG"):
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    message = " ".join(str(error).split()) or "(no message)"
    print(
        f"{PROG}: unexpected error: {type(error).__name__}: {message} "
        "(DRIFTLINE_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    return EXIT_UNUSABLE_INPUT


if __name__ == "__main__":
    sys.exit(main())
