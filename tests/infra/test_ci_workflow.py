""".github/workflows/ci.yml, the CI template users copy: actionlint-clean and complete.

actionlint comes from the venv (requirements-dev.txt), so this runs in `make test`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT.is_file(), f"{ACTIONLINT} missing: run make setup"
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


def workflow() -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def steps(job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workflow()["jobs"][job]["steps"]
    return found


def test_actionlint_passes_on_the_ci_workflow() -> None:
    result = actionlint(WORKFLOW)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_actionlint_fails_on_a_broken_workflow(tmp_path: Path) -> None:
    """Guards the guard: an unknown context property must be reported."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1 and "no_such_property" in result.stdout


def test_runs_on_pull_requests() -> None:
    triggers = workflow()[True]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers


def test_test_job_runs_make_test_and_synthesizes_every_env_then_uploads_cdk_out() -> None:
    runs = [step.get("run") for step in steps("test")]
    assert runs.index("make test") < runs.index("make synth")
    uploads = [
        step
        for step in steps("test")
        if str(step.get("uses", "")).startswith("actions/upload-artifact@")
    ]
    assert [u["with"]["name"] for u in uploads] == ["cdk-out"]
    assert "cdk.out/" in uploads[0]["with"]["path"]


@pytest.mark.parametrize("job", ["test", "data-contracts"])
def test_caches_venv_and_node_modules_keyed_on_the_pins(job: str) -> None:
    caches = {
        step["with"]["path"]: step["with"]["key"]
        for step in steps(job)
        if str(step.get("uses", "")).startswith("actions/cache@")
    }
    assert "requirements-dev.txt" in caches[".venv"]
    if job == "test":
        assert "package-lock.json" in caches["node_modules"]


def test_data_contract_job_validates_the_listed_samples_and_uploads_the_reports() -> None:
    runs = [step.get("run") for step in steps("data-contracts")]
    assert "make reports" in runs
    uploads = [
        step["with"]
        for step in steps("data-contracts")
        if str(step.get("uses", "")).startswith("actions/upload-artifact@")
    ]
    assert uploads == [
        {
            "name": "data-reports",
            "path": "reports/",
            "if-no-files-found": "warn",
            "retention-days": 14,
        }
    ]


def test_every_listed_sample_and_contract_exists() -> None:
    lines = [
        line.split()
        for line in (REPO / "examples" / "samples.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines
    for fields in lines:
        assert 2 <= len(fields) <= 3
        for name in fields:
            assert (REPO / name).is_file(), name
