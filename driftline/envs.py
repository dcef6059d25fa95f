"""The environment names the CLI accepts, read once from `cdk.json` (`context.driftline.envs`).

`--env` is checked at parse time against them, so `--env foo` fails with one line naming the
valid envs before anything reaches AWS. The names come from the project's `cdk.json` (found
from the working directory upwards, else beside this package in a source checkout) so that an
env added there is accepted here without a code change; `infra.config` is the fallback for an
install without a checkout (it costs a pydantic import, so it is not the first choice).
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from pathlib import Path

DEFAULT_ENV = "local"


def _cdk_json() -> Path | None:
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents, Path(__file__).resolve().parents[1]):
        path = candidate / "cdk.json"
        if path.is_file() and (candidate / "app.py").is_file():
            return path
    return None


@functools.cache
def env_names() -> tuple[str, ...]:
    """`local`, `dev`, `staging`, `prod`: the keys of `context.driftline.envs` in cdk.json."""
    path = _cdk_json()
    if path is not None:
        try:
            envs = json.loads(path.read_text())["context"]["driftline"]["envs"]
        except (OSError, ValueError, KeyError, TypeError):
            envs = None
        if isinstance(envs, dict) and envs:
            return tuple(str(name) for name in envs)
    from infra.config import ENV_NAMES

    return ENV_NAMES


def add_env_argument(parser: argparse.ArgumentParser, *, dest: str = "env") -> None:
    """`--env ENV`, one of the cdk.json envs (default `local`, the twin)."""
    names = env_names()
    parser.add_argument(
        "--env",
        dest=dest,
        default=DEFAULT_ENV,
        choices=names,
        metavar="ENV",
        help=f"{', '.join(names)} (default: {DEFAULT_ENV}, the local twin)",
    )


def add_env_action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    *,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """A subcommand that reads one env and prints a table, or one JSON document with --json."""
    action = actions.add_parser(name, help=help_text)
    add_env_argument(action)
    action.add_argument("--json", action="store_true", help="print one JSON document")
    action.set_defaults(handler=handler)
    return action
