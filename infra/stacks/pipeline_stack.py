"""Stateless training pipeline: rebuilt from code at will, wired to the Data stack's constructs."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from infra.config import EnvConfig
from infra.stacks.data_stack import DataStack


class PipelineStack(Stack):
    """Validate → prepare → train → evaluate → gate → register → deploy → notify."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        data: DataStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Driftline {config.name}: dataset validation and training pipeline",
            **kwargs,
        )
        self.config = config
        self.data = data
