"""`make demo` runs the whole loop on a fresh twin and exits 0 only if every step happened."""

from __future__ import annotations

import json

import pytest

from driftline.cli import main

pytestmark = [pytest.mark.twin, pytest.mark.slow]

LOOP = [
    "synth",
    "deploy",
    "upload",
    "validated",
    "trained",
    "gated",
    "registered",
    "deployed",
    "predictions",
    "drift check",
    "drifted",
    "alarm",
    "notified",
    "retrained",
    "promoted",
]


def test_demo_walks_the_whole_loop_from_upload_to_a_retrained_model_in_production(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["demo", "--json"])

    timeline = json.loads(capsys.readouterr().out)
    assert [step["step"] for step in timeline] == LOOP
    assert all(step["ok"] for step in timeline), timeline
    assert code == 0
