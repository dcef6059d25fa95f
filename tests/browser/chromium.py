"""Headless Chromium, started the same way by the browser tests and by `make docs-images`.

Debian's `chromium` package (`make browser` installs it where apt-get may run).
"""

from __future__ import annotations

import shutil

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def find_chromium() -> str | None:
    """The first of BROWSERS on PATH."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)
