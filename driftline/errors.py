"""Errors the CLI turns into one line on stderr and an exit code (see DESIGN.md, The CLI)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_NEGATIVE_VERDICT = 1
EXIT_UNUSABLE_INPUT = 2


class DriftlineError(Exception):
    """A failure the user can act on; the message is the whole story, on one line."""

    exit_code = EXIT_UNUSABLE_INPUT


class UsageError(DriftlineError):
    """Unusable input: a missing file, an unknown name, a stack that does not exist."""


class NegativeVerdict(DriftlineError):
    """The command ran fine and the answer is 'no': invalid data, drift found, gate failed."""

    exit_code = EXIT_NEGATIVE_VERDICT
