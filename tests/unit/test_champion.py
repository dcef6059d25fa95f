"""The champion a challenger is gated against is what the endpoint serves.

An Approved version whose deploy was rolled back (CodeDeploy alarms, a failed canary) never
served: a later challenger is compared with the version that does, not with the newest
Approved one.
"""

from __future__ import annotations

import pytest

from functions.evaluate import handler as evaluate
from functions.shared.settings import SettingsError, get_settings
from tests.unit.conftest import LAMBDA_CONTEXT
from tests.unit.test_training_handlers import (
    FAST_CONFIG,
    breast_cancer_csv,
    execute,
    model_versions,
    put_override,
    run_item,
    start_state,
)

pytestmark = pytest.mark.unit


def test_a_rolled_back_version_is_not_the_champion_the_serving_one_is(pipeline_aws: None) -> None:
    put_override(FAST_CONFIG)
    first = execute(start_state(breast_cancer_csv(), "run-v1"))
    assert first["registered"]["version"] == 1
    assert first["evaluation"]["champion_version"] is None  # nothing served yet

    second = execute(start_state(breast_cancer_csv(), "run-v2"), goes_live=False)
    assert (second["registered"]["version"], second["registered"]["status"]) == (2, "Approved")
    assert second["evaluation"]["champion_version"] == 1

    third = execute(start_state(breast_cancer_csv(), "run-v3"))

    assert [v["status"] for v in model_versions()] == ["Approved"] * 3  # v2 stays Approved
    assert third["evaluation"]["champion_version"] == 1  # ... but v1 is what serves
    assert run_item("run-v3")["champion_version"] == 1
    fourth = execute(start_state(breast_cancer_csv(), "run-v4"))
    assert fourth["evaluation"]["champion_version"] == 3  # v3 went live


def test_evaluate_without_the_endpoints_table_names_the_variable(
    pipeline_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_override(FAST_CONFIG)
    state = execute(start_state(breast_cancer_csv(), "run-v1"))
    monkeypatch.delenv("DRIFTLINE_ENDPOINTS_TABLE")
    get_settings.cache_clear()
    event = {key: value for key, value in state.items() if key not in ("evaluation", "gate")}
    with pytest.raises(SettingsError, match="DRIFTLINE_ENDPOINTS_TABLE is not set"):
        evaluate.handler(event, LAMBDA_CONTEXT)
