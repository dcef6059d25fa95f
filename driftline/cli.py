"""`driftline`: the one command line for people and scripts.

Exit codes: 0 success, 1 a negative verdict (invalid data, drift found, gate failed),
2 unusable input or usage. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from driftline.commands import (
    contracts,
    datasets,
    demo,
    drift,
    endpoints,
    local,
    models,
    outputs,
    predict,
    runs,
    smoke,
    upload,
    validate,
)
from driftline.errors import EXIT_UNUSABLE_INPUT, DriftlineError

COMMANDS = (
    outputs,
    local,
    demo,
    drift,
    validate,
    contracts,
    datasets,
    upload,
    runs,
    models,
    endpoints,
    predict,
    smoke,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_UNUSABLE_INPUT, f"driftline: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="driftline", description="Serverless MLOps on AWS, and its local twin.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except DriftlineError as error:
        print(f"driftline: {error}", file=sys.stderr)
        return error.exit_code
    except (ClientError, BotoCoreError) as error:
        print(f"driftline: AWS call failed: {error}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
