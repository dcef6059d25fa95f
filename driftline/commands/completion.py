"""`driftline completion bash|zsh|fish`: print the shell completion script (argcomplete).

    eval "$(driftline completion bash)"     # in ~/.bashrc
    driftline completion zsh > ~/.zfunc/_driftline

The script calls back into `driftline` with argcomplete's protocol, so completions follow the
parser itself: commands, sub-commands, options, `--env` names from cdk.json.
"""

from __future__ import annotations

import argparse
import sys

SHELLS = ("bash", "zsh", "fish")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish)",
        description='Add `eval "$(driftline completion bash)"` to ~/.bashrc (zsh: the same with '
        "zsh).",
    )
    parser.add_argument("shell", choices=SHELLS, nargs="?", default="bash")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    sys.stdout.write(shellcode(["driftline"], shell=args.shell))
    return 0
