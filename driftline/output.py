"""One way to print results: `--json` gives one JSON document on stdout, otherwise a table."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Left-aligned columns sized to their widest cell; an empty result says so."""
    if not rows:
        print("(none)")
        return
    headers = list(columns) if columns else list(rows[0].keys())
    cells = [[_cell(row.get(header)) for header in headers] for row in rows]
    widths = [
        max(len(header), *(len(line[i]) for line in cells)) for i, header in enumerate(headers)
    ]
    print("  ".join(header.upper().ljust(widths[i]) for i, header in enumerate(headers)).rstrip())
    for line in cells:
        print("  ".join(value.ljust(widths[i]) for i, value in enumerate(line)).rstrip())


def emit(document: Any, *, as_json: bool, rows: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Print `document` as JSON, or `rows` (default: the document itself) as a table."""
    if as_json:
        print_json(document)
        return
    if rows is None:
        rows = document if isinstance(document, list) else [document]
    print_table(rows)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)
