"""Synthesize one environment of the CDK app into a cloud assembly, without the node CLI.

`python app.py` synthesizes by itself when `CDK_OUTDIR` is set, and `CDK_CONTEXT_JSON` is how
the CDK CLI hands context to the app, so the twin needs neither npx nor network. The git sha
arrives as context because synth itself must not call git (see DESIGN.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from driftline.errors import UsageError

SYNTH_TIMEOUT_SECONDS = 300.0
_ERROR_LINE = re.compile(r"(Error|Exception)\b|\berror:|^driftline:|\bfailed\b", re.IGNORECASE)


class SynthError(UsageError):
    """The CDK app did not produce a cloud assembly; the message carries its last error line."""


def project_root(start: Path | None = None) -> Path:
    """The directory holding `app.py` and `cdk.json`: `start` (default: cwd) or a parent of it."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "cdk.json").is_file() and (candidate / "app.py").is_file():
            return candidate
    raise UsageError(f"no cdk.json and app.py in {here} or its parents: run from the project root")


def git_sha(root: Path) -> str:
    """HEAD's sha for lineage tags, or "unknown" outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and sha else "unknown"


def synth_context(root: Path, env: str) -> dict[str, Any]:
    """cdk.json's `context` plus the env name and git sha, as the CDK CLI would pass them."""
    cdk_json = root / "cdk.json"
    try:
        document = json.loads(cdk_json.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SynthError(f"cannot read {cdk_json}: {error}") from None
    context = document.get("context", {}) if isinstance(document, dict) else {}
    if not isinstance(context, dict):
        raise SynthError(f"{cdk_json}: key 'context' is not an object")
    return {**context, "env": env, "git_sha": git_sha(root)}


class Synthesis:
    """A running `app.py`; wait() returns the assembly directory or raises SynthError."""

    def __init__(self, process: subprocess.Popen[str], out: Path, env: str) -> None:
        self._process = process
        self.out = out
        self.env = env

    def wait(self, timeout: float = SYNTH_TIMEOUT_SECONDS) -> Path:
        try:
            _, stderr = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            raise SynthError(
                f"synth of env {self.env!r} took longer than {timeout:.0f} s"
            ) from None
        if self._process.returncode != 0:
            raise SynthError(
                f"synth of env {self.env!r} failed: {_last_line(stderr, self._process.returncode)}"
            )
        if not (self.out / "manifest.json").is_file():
            raise SynthError(f"synth of env {self.env!r} wrote no manifest.json into {self.out}")
        return self.out

    def cancel(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.communicate()


def start_synthesis(
    env: str = "local", out_dir: Path | None = None, *, root: Path | None = None
) -> Synthesis:
    """Start `app.py` for `env` writing into `out_dir` (default `<root>/.driftline/cdk.out`).

    Separate from waiting so the twin's server can start while the app synthesizes.
    """
    root = project_root(root)
    out = (out_dir or root / ".driftline" / "cdk.out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    context = synth_context(root, env)
    environment = {
        **os.environ,
        "CDK_OUTDIR": str(out),
        "CDK_CONTEXT_JSON": json.dumps(context),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=root,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Synthesis(process, out, env)


def synthesize(
    env: str = "local", out_dir: Path | None = None, *, root: Path | None = None
) -> Path:
    """Run `app.py` for `env` into `out_dir` and return it; SynthError carries the app's
    last stderr line when it fails."""
    return start_synthesis(env, out_dir, root=root).wait()


def _last_line(stderr: str, returncode: int) -> str:
    """The app's own error: its last error-looking stderr line (tracebacks and cdk-nag end
    with trailing notes such as where the report was written), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return f"app.py exited with code {returncode} and no error output"
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    return errors[-1] if errors else lines[-1]
