"""`driftline smoke`: the delivery pipeline's post-deploy check, run against the twin.

CodePipeline itself cannot run locally; the smoke test it runs after each stage can, unchanged.
"""

from __future__ import annotations

import json

import pytest

from driftline.cli import main
from driftline.twin.adapters import inject_faults
from tests.twin.conftest import RunningTwin

pytestmark = pytest.mark.twin


def smoke(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["smoke", "--env", "local", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_freshly_deployed_env_passes_every_check(
    twin: RunningTwin, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = smoke(capsys)
    checks = {check["check"]: check for check in document["checks"]}  # type: ignore[union-attr]
    assert code == 0 and document["ok"] is True
    assert [name for name in checks if name.startswith("stack ")] == [
        "stack Data",
        "stack Pipeline",
        "stack Serving",
        "stack Monitoring",
    ]
    assert {"outputs", "state machine", "drift monitor", "shared endpoint"} <= set(checks)
    # No model is deployed yet: the endpoint answers the probe itself, 503, and that is healthy.
    assert checks["endpoint breast_cancer"]["detail"].startswith("503 NoModelDeployed")
    assert checks["shared endpoint"]["detail"].startswith("404 UnknownModel")


def test_a_failing_drift_monitor_fails_the_smoke_test_with_exit_1(
    twin: RunningTwin, capsys: pytest.CaptureFixture[str]
) -> None:
    inject_faults("drift_monitor", error_type="ImportModuleError", message="broken build")
    code, document = smoke(capsys)
    failed = [c for c in document["checks"] if not c["ok"]]  # type: ignore[union-attr]
    assert code == 1 and document["ok"] is False
    assert [(c["check"], c["detail"]) for c in failed] == [
        ("drift monitor", "ImportModuleError: broken build")
    ]


def test_an_env_with_no_stacks_is_unusable_input(
    twin: RunningTwin, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["smoke", "--env", "dev"])
    assert code == 2
    assert "no stack of env 'dev' exists" in capsys.readouterr().err
