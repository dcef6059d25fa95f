"""cdk-nag and cfn-lint on every synthesized template of every environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3
from cfnlint.api import ManualArgs, lint_file

from infra.app_builder import new_app
from infra.nag import acknowledge, enable_nag
from tests.infra.conftest import SynthesizedEnv

pytestmark = pytest.mark.infra


def test_cdk_nag_finds_nothing_unacknowledged(each_env: SynthesizedEnv) -> None:
    report_path = each_env.outdir / "validation-report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        failures = [r for r in report["pluginReports"] if r["conclusion"] != "success"]
        assert failures == []


def test_cdk_nag_fails_synth_on_an_unencrypted_bucket(tmp_path: Path) -> None:
    """Guards the guard: the nag wiring must be able to fail."""
    app = new_app(outdir=str(tmp_path))
    stack = Stack(app, "Insecure")
    s3.Bucket(stack, "Plain")
    enable_nag(app)
    with pytest.raises(Exception, match="AwsSolutions"):
        app.synth()


def test_acknowledgements_without_a_specific_reason_are_refused() -> None:
    app = App()
    stack = Stack(app, "Any")
    with pytest.raises(ValueError, match="specific reason"):
        acknowledge(stack, "AwsSolutions-S1", "because")


def cfn_lint_errors(template_path: Path) -> list[str]:
    matches = lint_file(template_path, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    return [
        f"{match.rule.id} {match.message}" for match in matches if match.rule.id.startswith("E")
    ]


def test_cfn_lint_reports_no_errors(each_env: SynthesizedEnv) -> None:
    templates = sorted(each_env.outdir.glob("*.template.json"))
    assert len(templates) == 4
    errors = {path.name: cfn_lint_errors(path) for path in templates}
    assert errors == {path.name: [] for path in templates}


def test_cfn_lint_catches_an_error_when_there_is_one(tmp_path: Path) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text(
        json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"Nope": 1}}}})
    )
    assert cfn_lint_errors(broken) != []
