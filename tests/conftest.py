"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def isolated_cli_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The CLI as a pipe sees it, with no twin to find.

    The CLI finds a running twin from `.driftline/twin.json` for `--env local`; a developer's
    own twin in this checkout must not capture the calls of in-process tests (moto), so the
    state directory the CLI looks in is an empty one. Tests that want discovery set their own."""
    state_dir = tmp_path_factory.mktemp("driftline-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DRIFTLINE_STATE_DIR", str(state_dir))
        # Output tests pin what a pipe gets; pytest-xdist workers inherit COLUMNS=80 from
        # the runner's terminal, which would make the CLI cut its table cells.
        patch.delenv("COLUMNS", raising=False)
        yield state_dir
