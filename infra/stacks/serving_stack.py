"""Stateless serving: inference endpoints, their aliases and deployment groups."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from infra.config import EnvConfig
from infra.stacks.data_stack import DataStack


class ServingStack(Stack):
    """Inference endpoints per model; filled by the serving issue."""

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
            description=f"Driftline {config.name}: serverless inference endpoints",
            **kwargs,
        )
        self.config = config
        self.data = data
