"""The per-env config: valid envs parse, malformed values fail on one line naming the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, RemovalMode, TrainingBackend, load_env_config

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def context() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]
    return loaded


def with_env_value(env: str, key: str, value: Any) -> dict[str, Any]:
    ctx = context()
    ctx["driftline"]["envs"][env][key] = value
    return ctx


@pytest.mark.parametrize("env", ["local", "dev", "staging", "prod"])
def test_every_shipped_env_parses(env: str) -> None:
    config = load_env_config(context(), env)
    assert config.name == env
    assert config.stack_prefix == f"Driftline-{env}"


def test_local_env_gets_the_fixed_fake_account() -> None:
    assert load_env_config(context(), "local").account == "000000000000"


def test_prod_retains_data_and_trains_on_sagemaker() -> None:
    prod = load_env_config(context(), "prod")
    assert prod.removal_policy is RemovalMode.RETAIN
    assert prod.protects_stateful_resources
    assert prod.training_backend is TrainingBackend.SAGEMAKER


def test_unknown_env_lists_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown env 'nope': valid envs are local, dev, staging, prod"
    ):
        load_env_config(context(), "nope")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "log_retention_days",
            -1,
            r"driftline\.envs\.dev\.log_retention_days': Input should be greater than 0",
        ),
        (
            "alarm_emails",
            ["not-an-email"],
            r"driftline\.envs\.dev\.alarm_emails': 'not-an-email' is not an e-mail",
        ),
        (
            "training_backend",
            "kubernetes",
            r"driftline\.envs\.dev\.training_backend': Input should be 'lambda'",
        ),
        ("region", "mars-1", r"driftline\.envs\.dev\.region': 'mars-1' is not an AWS region"),
        ("account", "123", r"driftline\.envs\.dev\.account': must be a 12-digit"),
        ("surprise", 1, r"driftline\.envs\.dev\.surprise': Extra inputs are not permitted"),
        (
            "inference_reserved_concurrency",
            0,
            r"driftline\.envs\.dev\.inference_reserved_concurrency': Input should be greater",
        ),
    ],
)
def test_malformed_context_value_names_the_key_and_reason(
    key: str, value: Any, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as raised:
        load_env_config(with_env_value("dev", key, value), "dev")
    assert "\n" not in str(raised.value)


def test_inference_reserved_concurrency_defaults_and_can_be_switched_off() -> None:
    without = context()
    del without["driftline"]["envs"]["dev"]["inference_reserved_concurrency"]
    assert load_env_config(without, "dev").inference_reserved_concurrency == 20
    switched_off = with_env_value("dev", "inference_reserved_concurrency", None)
    assert load_env_config(switched_off, "dev").inference_reserved_concurrency is None


def test_prod_cannot_be_configured_to_destroy_its_data() -> None:
    with pytest.raises(ConfigError, match="'destroy' is allowed only in local and dev"):
        load_env_config(with_env_value("prod", "removal_policy", "destroy"), "prod")


def test_nested_threshold_errors_name_the_full_path() -> None:
    ctx = with_env_value("dev", "thresholds", {"psi": 0})
    with pytest.raises(ConfigError, match=r"driftline\.envs\.dev\.thresholds\.psi'"):
        load_env_config(ctx, "dev")


def run_app(env: str, ctx: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run app.py as the CDK CLI does: context arrives as CDK_CONTEXT_JSON."""
    return subprocess.run(
        [sys.executable, str(REPO / "app.py")],
        env={
            "CDK_CONTEXT_JSON": json.dumps({**ctx, "env": env}),
            "CDK_OUTDIR": "/nonexistent-never-written",
            "PATH": "/usr/bin:/bin",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        },
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("env", "ctx", "expected"),
    [
        (
            "nope",
            context(),
            "driftline: unknown env 'nope': valid envs are local, dev, staging, prod",
        ),
        (
            "dev",
            with_env_value("dev", "log_retention_days", -5),
            "driftline: invalid context value 'driftline.envs.dev.log_retention_days': "
            "Input should be greater than 0",
        ),
    ],
)
def test_app_rejects_bad_context_with_one_line_and_no_traceback(
    env: str, ctx: dict[str, Any], expected: str
) -> None:
    result = run_app(env, ctx)
    assert result.returncode == 2
    assert result.stderr.strip() == expected
    assert "Traceback" not in result.stderr
