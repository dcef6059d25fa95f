#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth -c env=<local|dev|staging|prod>`, or `-c env=delivery` for
the `Driftline-Delivery` pipeline stack alone.

The only place that reads the process environment: the account/region the CDK CLI resolved
for non-local envs whose cdk.json leaves the account unset.
"""

from __future__ import annotations

import os
import sys

from aws_cdk import App

from infra.app_builder import build_environment, new_app
from infra.config import ConfigError, load_env_config
from infra.delivery_config import DELIVERY_ENV, load_delivery_config


def main() -> None:
    app = new_app()
    env_name = app.node.try_get_context("env")
    context = {"driftline": app.node.try_get_context("driftline")}
    git_sha = app.node.try_get_context("git_sha") or "unknown"
    if env_name == DELIVERY_ENV:
        _build_delivery(app, context, str(git_sha))
        return
    try:
        config = load_env_config(context, env_name, git_sha=str(git_sha))
    except ConfigError as error:
        print(f"driftline: {error}", file=sys.stderr)
        sys.exit(2)
    if config.account is None and os.environ.get("CDK_DEFAULT_ACCOUNT"):
        config = config.model_copy(update={"account": os.environ["CDK_DEFAULT_ACCOUNT"]})
    build_environment(app, config)
    app.synth()


def _build_delivery(app: App, context: dict[str, object], git_sha: str) -> None:
    """`-c env=delivery`: the `Driftline-Delivery` stack alone (infra/delivery_config.py)."""
    from infra.stacks.delivery_stack import build_delivery

    try:
        config = load_delivery_config(context, git_sha=git_sha)
    except ConfigError as error:
        print(f"driftline: {error}", file=sys.stderr)
        sys.exit(2)
    build_delivery(app, config)
    app.synth()


if __name__ == "__main__":
    main()
