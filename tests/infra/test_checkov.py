"""checkov over the test suite's own synth of all four envs (no second synth).

`make test` installs checkov into its own virtualenv (`.venv-checkov`, requirements-checkov.txt)
before pytest runs. Any finding not skipped fails: globally in `.checkov.yaml` (checks that apply
to no resource here, each with its reason) or per resource in its template metadata
(infra/checkov.py). One checkov process reads every env and a canary template that must fail,
so the wiring is shown able to fail in the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3

from infra.checkov import ASYNC_DEAD_LETTERS, DEPLOY_TIME_HANDLER, SYNC_ONLY, skip_check
from infra.config import ENV_NAMES
from tests.infra.conftest import REPO, SynthesizedEnv

pytestmark = pytest.mark.infra

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
CANARY = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {"PlainLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {}}},
}


def checkov_findings(directory: Path) -> list[dict[str, Any]]:
    """Failed checks (check_id, resource, file) over the templates in `directory`."""
    if not CHECKOV.exists():
        if os.environ.get("CI"):
            pytest.fail("checkov is not installed: `make test` installs it into .venv-checkov")
        pytest.skip("checkov is not installed (make test installs it into .venv-checkov)")
    # One directory (checkov 3.3 mis-reads several -d options: it scans the first one twice).
    command = [str(CHECKOV), "--config-file", str(REPO / ".checkov.yaml"), "-o", "json"]
    started = time.monotonic()
    completed = subprocess.run(
        [*command, "-d", str(directory)], capture_output=True, text=True, cwd=REPO, check=False
    )
    print(f"checkov: {time.monotonic() - started:.1f} s")
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    document = json.loads(completed.stdout)
    reports: list[dict[str, Any]] = document if isinstance(document, list) else [document]
    return [
        {
            "check_id": failed["check_id"],
            "resource": failed["resource"],
            "file": Path(failed["repo_file_path"]).name,
        }
        for report in reports
        for failed in report["results"]["failed_checks"]
    ]


def test_checkov_finds_nothing_unskipped_in_any_env(
    synth_env: Callable[[str], SynthesizedEnv], tmp_path: Path
) -> None:
    """Every env's templates (the suite's synth, copied side by side) and the canary."""
    for name in ENV_NAMES:
        templates = sorted(synth_env(name).outdir.glob("*.template.json"))
        assert templates, name
        for template in templates:
            shutil.copy(template, tmp_path / template.name)
    (tmp_path / "canary.template.json").write_text(json.dumps(CANARY))
    findings = checkov_findings(tmp_path)
    canary = [f for f in findings if f["file"] == "canary.template.json"]
    assert {f["check_id"] for f in canary} >= {"CKV_AWS_158"}, "checkov no longer fails"
    assert [f for f in findings if f not in canary] == []


def test_per_resource_skips_carry_a_reason() -> None:
    stack = Stack(App(), "Any")
    bucket = s3.Bucket(stack, "Bucket")
    with pytest.raises(ValueError, match="needs a reason"):
        skip_check(bucket, "CKV_AWS_18", " ")
    skip_check(bucket, "CKV_AWS_18", "why it does not apply")
    skip_check(bucket, "CKV_AWS_21", "another reason")
    cfn = bucket.node.default_child
    assert isinstance(cfn, s3.CfnBucket)
    assert cfn.get_metadata("checkov") == {
        "skip": [
            {"id": "CKV_AWS_18", "comment": "why it does not apply"},
            {"id": "CKV_AWS_21", "comment": "another reason"},
        ]
    }


def test_every_skip_in_the_config_has_its_reason_above_it() -> None:
    lines = (REPO / ".checkov.yaml").read_text().splitlines()
    start = lines.index("skip-check:")
    for number, line in enumerate(lines[start + 1 :], start + 1):
        if line.strip().startswith("- CKV"):
            assert lines[number - 1].strip().startswith("#"), f"no reason above {line.strip()}"


def test_each_function_says_why_it_has_no_dead_letter_queue(each_env: SynthesizedEnv) -> None:
    """CKV_AWS_116 per function: the on-failure destination or synchronous-only use."""
    for part in ("Data", "Pipeline", "Serving", "Monitoring"):
        with_destination = {
            str(props["FunctionName"].get("Ref"))
            for props in each_env.properties(part, "AWS::Lambda::EventInvokeConfig").values()
            if props.get("DestinationConfig", {}).get("OnFailure")
        }
        functions = each_env.resources(part, "AWS::Lambda::Function")
        assert functions or part == "Data", part
        for logical_id, resource in functions.items():
            skips = {
                skip["id"]: skip["comment"]
                for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
            }
            expected = (
                ASYNC_DEAD_LETTERS
                if logical_id in with_destination
                else DEPLOY_TIME_HANDLER
                if logical_id.startswith("BucketNotificationsHandler")
                else SYNC_ONLY
            )
            assert skips.get("CKV_AWS_116") == expected, (part, logical_id)
