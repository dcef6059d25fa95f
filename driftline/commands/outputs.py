"""`driftline outputs --env ENV [--json]`: the stack outputs tools and people need."""

from __future__ import annotations

import argparse

from driftline.aws import stack_outputs
from driftline.envs import add_env_argument
from driftline.output import emit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("outputs", help="print the stack outputs of an environment")
    add_env_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    outputs = stack_outputs(args.env)
    emit(
        outputs,
        as_json=args.json,
        rows=[{"output": key, "value": value} for key, value in sorted(outputs.items())],
    )
    return 0
