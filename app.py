#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth -c env=<local|dev|staging|prod>`.

The only place that reads the process environment: the account/region the CDK CLI resolved
for non-local envs whose cdk.json leaves the account unset.
"""

from __future__ import annotations

import os
import sys

from aws_cdk import App

from infra.app_builder import build_environment
from infra.config import ConfigError, load_env_config


def main() -> None:
    app = App()
    env_name = app.node.try_get_context("env")
    context = {"driftline": app.node.try_get_context("driftline")}
    git_sha = app.node.try_get_context("git_sha") or "unknown"
    try:
        config = load_env_config(context, env_name, git_sha=str(git_sha))
    except ConfigError as error:
        print(f"driftline: {error}", file=sys.stderr)
        sys.exit(2)
    if config.account is None and os.environ.get("CDK_DEFAULT_ACCOUNT"):
        config = config.model_copy(update={"account": os.environ["CDK_DEFAULT_ACCOUNT"]})
    build_environment(app, config)
    app.synth()


if __name__ == "__main__":
    main()
