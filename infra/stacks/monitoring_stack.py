"""Stateless monitoring: dashboards, drift monitor and the alarms that close the loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra.config import EnvConfig
from infra.constructs.drift_monitoring import DriftMonitoring, MonitoredModel, MonitoringResources
from infra.constructs.log_retention import log_retention
from infra.constructs.on_call import on_call_rows
from infra.constructs.operational_alarms import (
    MonitoredEndpoint,
    OperationalAlarms,
    dashboard_rows,
)
from infra.stacks.data_stack import DataStack
from infra.stacks.pipeline_stack import PipelineStack
from infra.stacks.serving_stack import ServingStack


class MonitoringStack(Stack):
    """Drift monitoring and retraining per model, operational alarms, one dashboard per env."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        data: DataStack,
        pipeline: PipelineStack,
        serving: ServingStack,
        models: Sequence[MonitoredModel],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Driftline {config.name}: drift monitoring, alarms and dashboard",
            **kwargs,
        )
        self.data = data
        state_machine = pipeline.training.state_machine
        self.drift = DriftMonitoring(
            self,
            "Drift",
            resources=MonitoringResources.of(data.resources, state_machine=state_machine),
            models=models,
            thresholds=config.thresholds,
            schedules=config.schedules,
            env_name=config.name,
            log_retention=log_retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        endpoints = [
            MonitoredEndpoint(
                model=model,
                function=endpoint.alias,
                alarms=(endpoint.error_alarm, endpoint.latency_alarm),
            )
            for model, endpoint in sorted(serving.endpoints.items())
        ]
        if serving.shared_endpoint is not None:
            shared = serving.shared_endpoint
            endpoints.append(
                MonitoredEndpoint(
                    model="shared",
                    function=shared.alias,
                    alarms=(shared.error_alarm, shared.latency_alarm, shared.model_errors_alarm),
                )
            )
        undelivered = (pipeline.training.undelivered, self.drift.undelivered)
        queues = {
            "Uploads": pipeline.training.undelivered.queue,
            "Monitoring": self.drift.undelivered.queue,
        }
        self.operations = OperationalAlarms(
            self,
            "Operations",
            state_machine=state_machine,
            endpoints=endpoints,
            topic=data.alerts_topic,
        )
        alarms: list[cloudwatch.IAlarm] = [
            alarm for model in self.drift.model_alarms.values() for alarm in model.all()
        ]
        alarms.append(self.drift.fleet_drift_alarm)
        alarms += self.operations.all()
        alarms += [alarm for events in undelivered for alarm in events.all()]
        alarms += [alarm for endpoint in endpoints for alarm in endpoint.alarms]

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            # Named, so it is found by name in the console (and the twin shows no UUID).
            dashboard_name=f"Driftline-{config.name}",
            widgets=[
                [
                    cloudwatch.TextWidget(
                        markdown=(
                            f"# Driftline {config.name}\nRuns, drift, endpoints, alarms. Every "
                            "alarm's description names its section of the runbook, "
                            "`docs/runbook.md`."
                        ),
                        width=24,
                        height=2,
                    )
                ],
                *dashboard_rows(
                    state_machine=state_machine,
                    dead_letter_queues=queues,
                    drift=self.drift,
                    endpoints=endpoints,
                    alarms=alarms,
                ),
                *on_call_rows(
                    self,
                    env_name=config.name,
                    pipeline_functions=pipeline.training.functions,
                    execution_logs=pipeline.training.execution_logs,
                    artifacts_bucket=data.artifacts_bucket,
                    models=sorted(self.drift.model_alarms),
                ),
            ],
        )
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name)
        CfnOutput(
            self,
            "DriftMonitorFunctionName",
            value=self.drift.functions["drift_monitor"].function_name,
            description='invoke with {"trigger": "schedule"} to check every model now',
        )
        for name in ("drift_notifier", "feedback", "retrain"):
            label = "".join(part.capitalize() for part in name.split("_"))
            CfnOutput(self, f"{label}FunctionName", value=self.drift.functions[name].function_name)
