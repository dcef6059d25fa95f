"""The adapters' upgrade guard: every moto internal they patch exists in the installed moto.

Needs no moto server: it checks the installed moto itself.
"""

from __future__ import annotations

import moto
import pytest

from driftline.twin.adapters import (
    MOTO_VERSION,
    TwinAdapterError,
    check_moto_internals,
)

pytestmark = [pytest.mark.twin]


def test_adapters_fail_loudly_when_moto_moves_a_patched_internal() -> None:
    check_moto_internals()  # every patched internal exists in the installed moto
    moved = (("moto.awslambda.models", "LambdaFunction.run_in_docker", "adapt_lambda_invoke"),)
    with pytest.raises(TwinAdapterError, match=r"LambdaFunction\.run_in_docker \(used by adapt_"):
        check_moto_internals(moved)
    assert moto.__version__ == MOTO_VERSION, (
        f"moto is {moto.__version__}, the adapters were verified on {MOTO_VERSION}: run "
        "tests/twin/test_adapters_*.py, port what broke, then bump MOTO_VERSION"
    )
