"""Benchmark synth of all four envs: `make synth`'s loop vs one process (floor) vs CDK's
default (peer). Prints one JSON object.

* ours: what `make synth` runs, `npx cdk synth -c env=<env> -q -o <dir>` per env, one after
  another (a node CLI and a Python app per env; cdk-nag on every stack);
* floor: the same four envs built and synthesized in this one Python process (one jsii
  kernel, no CLI), as the infra tests do: what remains is the construct tree and cdk-nag;
* peer: the floor with CDK's built-in CloudFormation validation left on, CDK's default that
  `infra.app_builder.new_app` turns off (it only warns here; cfn-lint is the failing check).

The floor and peer run in fresh subprocesses so neither inherits a warm jsii kernel.
Run: `.venv/bin/python bench/synth.py` (needs `make setup`: the CDK CLI in node_modules).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENVS = ("local", "dev", "staging", "prod")
GOAL_SECONDS = 30.0  # issue 14: synth of all four envs

IN_PROCESS = """
import json, sys
from pathlib import Path
from infra.app_builder import build_environment, new_app
from infra.config import load_env_config
from aws_cdk import App

validation = sys.argv[2] == "on"
context = json.loads(Path("cdk.json").read_text())["context"]
for env in {envs!r}:
    env_context = {{**context, "env": env}}
    out = str(Path(sys.argv[1]) / env)
    app = (
        App(context=env_context, outdir=out)
        if validation
        else new_app(context=env_context, outdir=out)
    )
    build_environment(app, load_env_config(env_context, env, git_sha="bench"))
    app.synth()
"""


def main() -> None:
    environment = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    with tempfile.TemporaryDirectory(prefix="driftline-synth-") as directory:
        out = Path(directory)
        cdk_synth = ["npx", "cdk", "synth", "-c", "git_sha=bench", "-q"]
        ours = _timed(
            [[*cdk_synth, "-c", f"env={env}", "-o", str(out / "cli" / env)] for env in ENVS],
            environment,
        )
        script = IN_PROCESS.format(envs=ENVS)
        floor = _timed([[sys.executable, "-c", script, str(out / "floor"), "off"]], environment)
        peer = _timed([[sys.executable, "-c", script, str(out / "peer"), "on"]], environment)
    print(
        json.dumps(
            {
                "benchmark": "synth",
                "envs": list(ENVS),
                "ours_seconds": round(ours, 2),
                "ours": "make synth: npx cdk synth per env",
                "goal_seconds": GOAL_SECONDS,
                "within_goal": ours <= GOAL_SECONDS,
                "floor_seconds": round(floor, 2),
                "floor": "the four envs built and synthesized in one Python process, no CLI",
                "ours_over_floor": round(ours / floor, 2),
                "peer_seconds": round(peer, 2),
                "peer": "the floor with CDK's built-in CloudFormation validation on (default)",
                "ours_over_peer": round(ours / peer, 2),
            },
            sort_keys=True,
        )
    )


def _timed(commands: list[list[str]], environment: dict[str, str]) -> float:
    started = time.perf_counter()
    for command in commands:
        subprocess.run(
            command, cwd=REPO, env=environment, check=True, capture_output=True, text=True
        )
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
