"""Close the loop: a drift (or concept-drift) alarm, or the retrain schedule, starts a run.

The run is the ordinary training state machine on the dataset's newest accepted version, so
the challenger passes the same validation and champion/challenger gate as an upload's run.
At most one retrain per model starts within `DRIFTLINE_RETRAIN_COOLDOWN_HOURS`: the slot is a
conditional write in the Runs table (`pipelines`' cooldown rules, `shared.loop_state`), so
an alarm that flaps, or two alarms at once, start one run. Every outcome is sent to SNS.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from functions.shared.clients import client
from functions.shared.errors import error_code, transient_aws_errors
from functions.shared.loop_state import claim_retrain, last_retrain_started, release_retrain
from functions.shared.notifications import notify
from functions.shared.registry_reads import latest_accepted_dataset
from functions.shared.settings import RetrainSettings, parse_event, retrain_settings
from pipelines.monitoring import cooldown_until, iso, retrain_execution_name

logger = Logger()

TRIGGER = "retrain"


class RetrainRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    cause: Literal["alarm", "schedule", "manual"]
    alarm: str | None = None
    reason: str | None = None


@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(RetrainRequest, event, what="retrain input")
    logger.append_keys(model=request.model, cause=request.cause)
    return run(request, retrain_settings(), datetime.now(UTC))


def _why(request: RetrainRequest) -> str:
    if request.cause == "alarm":
        return f"alarm {request.alarm} went to ALARM" + (
            f" ({request.reason})" if request.reason else ""
        )
    if request.cause == "schedule":
        return "scheduled retraining"
    return "requested by hand"


def run(request: RetrainRequest, settings: RetrainSettings, now: datetime) -> dict[str, Any]:
    model, topic, env = request.model, settings.alerts_topic_arn, settings.env
    why = _why(request)
    dataset = latest_accepted_dataset(settings.datasets_table, model, settings.datasets_bucket)
    if dataset is None:
        notify(
            topic,
            f"Driftline {env}: cannot retrain {model}",
            f"Model {model} should be retrained ({why}), but dataset {model} has no accepted "
            f"version to train on. Upload one to s3://{settings.datasets_bucket}/datasets/{model}/.",
        )
        logger.warning("no accepted dataset version")
        return {"started": False, "reason": "no accepted dataset version"}

    claim = claim_retrain(
        settings.runs_table, model, now, settings.retrain_cooldown_hours, request.cause
    )
    if claim is None:
        last = last_retrain_started(settings.runs_table, model)
        until = cooldown_until(last, settings.retrain_cooldown_hours) if last else "unknown"
        notify(
            topic,
            f"Driftline {env}: retrain of {model} held back (cooldown)",
            f"Model {model} should be retrained ({why}), but a retrain started at {last}; the "
            f"{settings.retrain_cooldown_hours:g} h cooldown lasts until {until}.",
        )
        logger.info("cooldown: retrain not started", extra={"last": last, "until": until})
        return {"started": False, "reason": "cooldown", "cooldown_until": until}

    name = retrain_execution_name(dataset.dataset, dataset.version_id, claim.number)
    document = {
        "dataset": dataset.dataset,
        "bucket": dataset.bucket,
        "key": dataset.key,
        "version_id": dataset.version_id,
        "trigger": TRIGGER,
        "requested_at": iso(now),
    }
    stepfunctions = client("stepfunctions")
    try:
        with transient_aws_errors(f"starting {name}"):
            response = stepfunctions.start_execution(
                stateMachineArn=settings.state_machine_arn, name=name, input=json.dumps(document)
            )
        arn = str(response["executionArn"])
    except ClientError as error:
        if error_code(error) != "ExecutionAlreadyExists":
            release_retrain(settings.runs_table, model, claim)
            raise
        arn = settings.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        logger.info("retrain already started (duplicate delivery)", extra={"execution": name})
    except Exception:  # throttled or unreachable: the next alarm or schedule may try again
        release_retrain(settings.runs_table, model, claim)
        raise
    notify(
        topic,
        f"Driftline {env}: retraining {model}",
        f"Retraining model {model} ({why}) on dataset {dataset.dataset} version "
        f"{dataset.version_id} (s3://{dataset.bucket}/{dataset.key}).\n"
        f"Execution: {arn}\n"
        "The challenger goes through the same validation and champion/challenger gate; the "
        "pipeline reports the outcome.",
    )
    logger.info("retrain started", extra={"execution_arn": arn, "version_id": dataset.version_id})
    return {
        "started": True,
        "execution_name": name,
        "execution_arn": arn,
        "input": document,
        "retrain_number": claim.number,
    }
