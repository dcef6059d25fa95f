"""Every alarm's description ends with where its runbook section is (docs/runbook.md).

`RunbookLinks` is an aspect: it visits each CloudWatch alarm and composite alarm of a stack and
appends ` Runbook: docs/runbook.md#<section>`, the section chosen by the alarm construct's id
(the ids are stable: they are the alarms' logical ids). An alarm no rule knows gets no link,
and a test fails, so a new alarm comes with its runbook section.
"""

from __future__ import annotations

import jsii
from aws_cdk import IAspect
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import IConstruct

RUNBOOK = "docs/runbook.md"
MAX_DESCRIPTION = 1024  # CloudWatch's limit for AlarmDescription

# Alarm construct id (exact) → runbook section anchor.
SECTIONS: dict[str, str] = {
    "DriftAlarm": "drift-alarm-per-model",
    "FeaturePsiAlarm": "drift-alarm-per-model",
    "DriftedShareAlarm": "drift-alarm-per-model",
    "PredictionPsiAlarm": "drift-alarm-per-model",
    "FleetDriftAlarm": "fleet-drift-alarm",
    "ConceptDriftAlarm": "concept-drift-alarm",
    "ModelErrorsAlarm": "shared-endpoint-modelerrors",
    "ErrorsAlarm": "endpoint-errors",
    "LatencyAlarm": "endpoint-latency",
    "PipelineFailures": "pipeline-failures",
    "WaitingAlarm": "undelivered-events-dead-letter-queues",
}
# Alarm construct id suffix → section, for the ids made per model or per function.
SUFFIXES: tuple[tuple[str, str], ...] = (
    ("Throttles", "endpoint-throttles"),
    ("Errors", "function-errors"),
)


def section_for(construct_id: str) -> str | None:
    if construct_id in SECTIONS:
        return SECTIONS[construct_id]
    return next((anchor for suffix, anchor in SUFFIXES if construct_id.endswith(suffix)), None)


def runbook_link(anchor: str) -> str:
    return f"Runbook: {RUNBOOK}#{anchor}"


@jsii.implements(IAspect)
class RunbookLinks:
    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, (cloudwatch.CfnAlarm, cloudwatch.CfnCompositeAlarm)):
            return
        scope = node.node.scope
        if scope is None:
            return
        anchor = section_for(scope.node.id)
        if anchor is None:
            return
        link = runbook_link(anchor)
        description = node.alarm_description or ""
        if link in description:
            return
        room = MAX_DESCRIPTION - len(link) - 1
        trimmed = description if len(description) <= room else description[: room - 1] + "…"
        node.alarm_description = f"{trimmed} {link}".strip()
