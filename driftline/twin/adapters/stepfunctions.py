"""Section 2: one Step Functions backend that executes what CloudFormation creates."""

from __future__ import annotations

import json
import uuid
from typing import Any

from driftline.twin.adapters.base import patch, wrap_template_methods


def _definition_string(properties: dict[str, Any]) -> None:
    """Fold `Definition` and `DefinitionSubstitutions` into the DefinitionString moto reads."""
    definition = properties.get("DefinitionString")
    if definition is None and "Definition" in properties:
        definition = json.dumps(properties["Definition"])
    if definition is None:
        return
    for key, value in properties.get("DefinitionSubstitutions", {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    properties["DefinitionString"] = definition


def adapt_stepfunctions_backend() -> None:
    """moto's ASL interpreter is opt-in and lives in a second backend CloudFormation never uses.

    The switch is `moto.core.config.default_user_config["stepfunctions"]
    ["execute_state_machine"]`; with it on, the API uses `stepfunctions_parser_backends` while
    `StateMachine.create_from_cloudformation_json` writes to `stepfunctions_backends`, so a
    CFN-created machine "does not exist" for StartExecution. Here the models module's name is
    bound to the parser backends too (not the package's: that one tells moto's server where
    the Step Functions URL module lives). Also: an execution started without a name gets a
    UUID (moto names it "None", and the second one then clashes), and `Definition` /
    `DefinitionSubstitutions` are honoured.
    """
    from moto.core.config import default_user_config
    from moto.stepfunctions import models as sfn_models
    from moto.stepfunctions.parser.models import (
        StepFunctionsParserBackend,
        stepfunctions_parser_backends,
    )

    default_user_config["stepfunctions"]["execute_state_machine"] = True
    patch(sfn_models, "stepfunctions_backends", stepfunctions_parser_backends)

    start_execution: Any = StepFunctionsParserBackend.start_execution

    def start_named_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: str | None = None,
    ) -> Any:
        return start_execution(
            self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header
        )

    patch(StepFunctionsParserBackend, "start_execution", start_named_execution)

    wrap_template_methods(sfn_models.StateMachine, before=_definition_string)
