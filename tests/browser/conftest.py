"""Headless Chromium (Debian's `chromium` package; `make setup` installs it when missing)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.chromium import HEADLESS_FLAGS, find_chromium

FLAGS = (*HEADLESS_FLAGS, "--enable-logging=stderr", "--v=0")


@dataclass(frozen=True)
class Rendered:
    dom: str  # the document after its scripts ran
    console: list[str]  # the page's console lines (CONSOLE), errors included


@dataclass(frozen=True)
class Browser:
    executable: str
    profile: Path

    def render(self, page: Path, *, timeout: float = 60.0) -> Rendered:
        """Load `page` (a file) and dump its DOM once loaded; collect its console."""
        done = subprocess.run(
            [
                self.executable,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                "--virtual-time-budget=2000",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
        return Rendered(dom=done.stdout, console=console)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            "no headless Chromium on PATH (looked for chromium, chromium-browser, "
            "google-chrome): `apt-get install chromium`, or run `make setup` as root"
        )
    return Browser(executable, tmp_path_factory.mktemp("chromium-profile"))
