"""Synthesize each environment once per session; tests read the written templates."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from infra.app_builder import build_environment
from infra.config import ENV_NAMES, load_env_config

REPO = Path(__file__).resolve().parents[2]


def cdk_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]
    return context


@dataclass(frozen=True)
class SynthesizedEnv:
    name: str
    outdir: Path
    manifest: dict[str, Any]

    def template_path(self, part: str) -> Path:
        return self.outdir / f"Driftline-{self.name}-{part}.template.json"

    def template_json(self, part: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.template_path(part).read_text())
        return document

    def template(self, part: str) -> Template:
        return Template.from_json(self.template_json(part))

    def termination_protection(self, part: str) -> bool:
        artifact = self.manifest["artifacts"][f"Driftline-{self.name}-{part}"]
        return bool(artifact["properties"].get("terminationProtection", False))


def synthesize(
    env_name: str, outdir: Path, context_overrides: dict[str, Any] | None = None
) -> SynthesizedEnv:
    context = {**cdk_context(), "env": env_name, **(context_overrides or {})}
    app = App(context=context, outdir=str(outdir))
    build_environment(app, load_env_config(context, env_name, git_sha="0123abc"))
    app.synth()
    manifest = json.loads((outdir / "manifest.json").read_text())
    return SynthesizedEnv(name=env_name, outdir=outdir, manifest=manifest)


@pytest.fixture(scope="session")
def synth_env(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], SynthesizedEnv]:
    cache: dict[str, SynthesizedEnv] = {}

    def get(env_name: str) -> SynthesizedEnv:
        if env_name not in cache:
            cache[env_name] = synthesize(env_name, tmp_path_factory.mktemp(f"cdk-{env_name}"))
        return cache[env_name]

    return get


@pytest.fixture(scope="session", params=ENV_NAMES)
def each_env(
    request: pytest.FixtureRequest, synth_env: Callable[[str], SynthesizedEnv]
) -> SynthesizedEnv:
    return synth_env(request.param)
