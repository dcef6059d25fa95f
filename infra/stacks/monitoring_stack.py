"""Stateless monitoring: dashboards, drift monitor and the alarms that close the loop."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra.config import EnvConfig
from infra.stacks.data_stack import DataStack


class MonitoringStack(Stack):
    """One dashboard per env; drift monitor and alarms arrive with the monitoring issue."""

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
            description=f"Driftline {config.name}: drift monitoring, alarms and dashboard",
            **kwargs,
        )
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            widgets=[
                [
                    cloudwatch.TextWidget(
                        markdown=f"# Driftline {config.name}\nRuns, drift, endpoints, alarms.",
                        width=24,
                        height=2,
                    )
                ]
            ],
        )
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name)
        self.data = data
