"""Synthesize each environment once per session; tests read the written templates.

`SynthesizedEnv` looks resources up (`resources`, `properties`, `resource`, `only`,
`function_properties`); `local`, `dev` and `prod` are those envs synthesized (once per
session); `cfn_text` reads a CloudFormation string expression with its tokens as placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.app_builder import build_environment, new_app
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

    def resources(self, part: str, type_name: str | None = None) -> dict[str, dict[str, Any]]:
        """Logical ID → resource of the part's template (of one type, if given)."""
        return resources_in(self.template_json(part), type_name)

    def properties(self, part: str, type_name: str) -> dict[str, dict[str, Any]]:
        """Logical ID → Properties of the part's resources of one type."""
        return {
            key: value.get("Properties", {})
            for key, value in self.resources(part, type_name).items()
        }

    def resource(self, part: str, logical_id: str) -> dict[str, Any]:
        resources = self.resources(part)
        assert logical_id in resources, f"{logical_id} missing from {self.name} {part} stack"
        return resources[logical_id]

    def only(self, part: str, type_name: str, fragment: str) -> tuple[str, dict[str, Any]]:
        """(logical ID, Properties) of the one resource of the type whose ID has `fragment`."""
        matches = [(k, v) for k, v in self.properties(part, type_name).items() if fragment in k]
        assert len(matches) == 1, (fragment, [k for k, _ in matches])
        return matches[0]

    def function_properties(self, part: str, module: str) -> dict[str, Any]:
        """Properties of the one function running `functions.<module>.handler.handler`."""
        command = [f"functions.{module}.handler.handler"]
        (found,) = [
            properties
            for properties in self.properties(part, "AWS::Lambda::Function").values()
            if properties.get("ImageConfig", {}).get("Command") == command
        ]
        return found

    def state_machine_definition(self) -> dict[str, Any]:
        """The training state machine's ASL, every CloudFormation token as `TOKEN` (its ARNs
        are tokens, so the definition is an Fn::Join that Match.serialized_json cannot read)."""
        (machine,) = self.properties("Pipeline", "AWS::StepFunctions::StateMachine").values()
        document: dict[str, Any] = json.loads(cfn_text(machine["DefinitionString"]))
        return document


def resources_in(template: dict[str, Any], type_name: str | None = None) -> dict[str, Any]:
    """Logical ID → resource of a template (of one type, if given)."""
    found: dict[str, Any] = template["Resources"]
    return {k: v for k, v in found.items() if type_name is None or v["Type"] == type_name}


def cfn_text(value: Any, token: str = "TOKEN") -> str:
    """A CloudFormation string expression as text, every token (Ref, GetAtt...) as `token`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(cfn_text(part, token) for part in parts)
    return token


def synthesize(
    env_name: str, outdir: Path, context_overrides: dict[str, Any] | None = None
) -> SynthesizedEnv:
    context = {**cdk_context(), "env": env_name, **(context_overrides or {})}
    app = new_app(context=context, outdir=str(outdir))
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


@pytest.fixture(scope="session")
def local(synth_env: Callable[[str], SynthesizedEnv]) -> SynthesizedEnv:
    return synth_env("local")


@pytest.fixture(scope="session")
def dev(synth_env: Callable[[str], SynthesizedEnv]) -> SynthesizedEnv:
    return synth_env("dev")


@pytest.fixture(scope="session")
def prod(synth_env: Callable[[str], SynthesizedEnv]) -> SynthesizedEnv:
    return synth_env("prod")


@pytest.fixture(scope="session", params=ENV_NAMES)
def each_env(
    request: pytest.FixtureRequest, synth_env: Callable[[str], SynthesizedEnv]
) -> SynthesizedEnv:
    return synth_env(request.param)
