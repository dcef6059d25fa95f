"""The layers import downwards only, checked on the AST of every module (lazy imports included).

pipelines/  pure logic: no AWS SDK, no CDK, and none of the layers above it
functions/  Lambda handlers and their data access: pipelines and the AWS SDK, never the CDK
            app (infra/) or the CLI and twin (driftline/)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "pipelines": ("boto3", "botocore", "aws_cdk", "constructs", "functions", "infra", "driftline"),
    "functions": ("aws_cdk", "constructs", "infra", "driftline"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth (function-level ones too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violations(layer: str) -> list[str]:
    banned = FORBIDDEN[layer]
    return [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sorted((REPO / layer).rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in banned
    ]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    assert violations(layer) == []


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def load():\n    import boto3\n    from infra.config import EnvConfig\n")

    assert [name for _, name in imported_modules(module)] == ["boto3", "infra.config"]


def test_no_module_name_is_used_in_two_layers() -> None:
    """`batches`, `contracts`... mean one module each: data access in functions/shared is
    named for what it stores (`*_store`, `registry_reads`), the logic lives in pipelines/."""
    shared = {path.stem for path in (REPO / "functions" / "shared").glob("*.py")}
    logic = {path.stem for path in (REPO / "pipelines").glob("*.py")}

    assert shared & logic == {"__init__"}
