"""Compose one environment's stacks. Stacks only compose; constructs hold the decisions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import (
    App,
    Aspects,
    CfnResource,
    DefaultStackSynthesizer,
    Environment,
    Stack,
    Stage,
    Tags,
)

from infra.checkov import ExplainDeadLetters
from infra.config import EnvConfig
from infra.constructs.drift_monitoring import monitored_models
from infra.constructs.endpoint import SERVING_ACKNOWLEDGEMENTS
from infra.nag import PATTERN_ACKNOWLEDGEMENTS, acknowledge_cdk_singletons, enable_nag
from infra.runbook import RunbookLinks
from infra.stacks.data_stack import DataStack
from infra.stacks.monitoring_stack import MonitoringStack
from infra.stacks.pipeline_stack import PipelineStack
from infra.stacks.serving_stack import ServingStack

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def new_app(*, context: Mapping[str, Any] | None = None, outdir: str | None = None) -> App:
    """The App every synth builds on: `app.py` (so `cdk synth`, `cdk deploy`, the delivery
    pipeline and the twin), the tests and the benches.

    CDK's built-in CloudFormation validation pass is off: with
    `@aws-cdk/core:validateAgainstDefaultRules` unset it can only warn, yet it is most of the
    synth time (local 0.9 s → 4.8 s, prod 1.0 s → 8.2 s here). cfn-lint is the failing
    template check instead (tests/infra/test_compliance.py, every env, and the delivery synth
    through `make test-fast`); cdk-nag is a validation plugin of ours and keeps running.
    """
    return App(
        context=dict(context) if context is not None else None,
        outdir=outdir,
        builtin_cloud_formation_validation=False,
    )


def shipped_model_names(models_dir: Path = MODELS_DIR) -> tuple[str, ...]:
    """One endpoint per model config shipped in `models/*.yaml` (read here, once, at synth)."""
    return tuple(sorted(path.stem for path in models_dir.glob("*.yaml")))


@dataclass(frozen=True)
class DriftlineStacks:
    data: DataStack
    pipeline: PipelineStack
    serving: ServingStack
    monitoring: MonitoringStack

    def all(self) -> tuple[DataStack, PipelineStack, ServingStack, MonitoringStack]:
        return (self.data, self.pipeline, self.serving, self.monitoring)


def build_environment(
    app: Stage, config: EnvConfig, *, model_names: Sequence[str] | None = None
) -> DriftlineStacks:
    """Build `Driftline-<env>-{Data,Pipeline,Serving,Monitoring}` into `app` and enable cdk-nag.

    `app` is the App, or a Stage of the delivery pipeline (stack names stay the same there).
    `model_names` (default: the configs shipped in `models/`) get one inference endpoint each.
    """
    environment = Environment(account=config.account, region=config.region)
    # The twin has no CDKToolkit stack to read a bootstrap version from.
    synthesizer = DefaultStackSynthesizer(generate_bootstrap_version_rule=not config.is_local)
    common = {"env": environment, "synthesizer": synthesizer}

    def stack_id(part: str) -> str:
        return f"{config.stack_prefix}-{part}"

    def named(part: str) -> dict[str, str]:
        # Explicit, so a Stage does not prefix its own name: the CLI finds stacks by this name.
        return {"stack_name": stack_id(part)}

    data = DataStack(app, stack_id("Data"), config=config, **named("Data"), **common)
    models = shipped_model_names() if model_names is None else tuple(model_names)
    serving = ServingStack(
        app,
        stack_id("Serving"),
        config=config,
        data=data,
        model_names=models,
        **named("Serving"),
        **common,
    )
    pipeline = PipelineStack(
        app,
        stack_id("Pipeline"),
        config=config,
        data=data,
        deploy_function=serving.deploy_function,
        model_names=models,
        **named("Pipeline"),
        **common,
    )
    monitoring = MonitoringStack(
        app,
        stack_id("Monitoring"),
        config=config,
        data=data,
        pipeline=pipeline,
        serving=serving,
        models=monitored_models(models, MODELS_DIR),
        **named("Monitoring"),
        **common,
    )
    stacks = DriftlineStacks(data=data, pipeline=pipeline, serving=serving, monitoring=monitoring)

    for stack in stacks.all():
        Tags.of(stack).add("driftline:env", config.name)
        Tags.of(stack).add("driftline:git-sha", config.git_sha)
        acknowledge_cdk_singletons(stack)
        _ensure_deployable(stack)
        Aspects.of(stack).add(RunbookLinks())
        Aspects.of(stack).add(ExplainDeadLetters())
    enable_nag(app, (*PATTERN_ACKNOWLEDGEMENTS, *SERVING_ACKNOWLEDGEMENTS))
    return stacks


def _ensure_deployable(stack: Stack) -> None:
    """CloudFormation rejects a template without resources; a stack whose issue has not landed
    yet still has to deploy, so it gets an inert wait-condition handle (no cost, no access)."""
    if not any(isinstance(child, CfnResource) for child in stack.node.find_all()):
        CfnResource(stack, "EmptyStackPlaceholder", type="AWS::CloudFormation::WaitConditionHandle")
