"""One way to print results: `--json` gives one JSON document on stdout, otherwise a table.

Tables and progress are drawn by `rich` (imported only when something is drawn, so the CLI's
start-up does not pay for it): columns fit the terminal, long cells end in "…" instead of
wrapping, colour only on a terminal (and never with NO_COLOR). Piped output is plain text of
a fixed generous width, so `grep` and `awk` see one row per line. `--json` output does not go
through rich at all: it is `json.dump`, byte for byte what it always was.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

# The widest a prose cell (a reason, a list, JSON: text with spaces) gets before it is cut
# with "…". Identifiers (names, ARNs, s3:// keys, URLs: no spaces) are never cut for length, so
# they can be copied; a terminal narrower than the table still squeezes every column.
MAX_CELL = 72
# Width of piped (non-terminal) output: wide enough that nothing is squeezed.
PIPE_WIDTH = 4096


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def console(*, stderr: bool = False) -> Any:
    """A rich Console on the current sys.stdout/sys.stderr (tests swap them)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    width = None if terminal else int(os.environ.get("COLUMNS") or PIPE_WIDTH)
    return Console(
        file=stream,
        width=width,
        soft_wrap=False,
        highlight=False,
        emoji=False,
        no_color=not terminal or "NO_COLOR" in os.environ,
    )


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    title: str | None = None,
    max_cell: int = MAX_CELL,
) -> None:
    """Columns sized to their content, prose cut with "…" past `max_cell`; an empty result
    says so."""
    if not rows:
        print("(none)")
        return
    from rich.table import Table
    from rich.text import Text

    headers = list(columns) if columns else list(rows[0].keys())
    cells = [[cell(row.get(header)) for header in headers] for row in rows]
    table = Table(
        box=None,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
        title=title,
        title_justify="left",
        title_style="bold",
    )
    for index, header in enumerate(headers):
        numeric = all(_is_number(row.get(header)) or row.get(header) is None for row in rows)
        prose = any(" " in line[index] for line in cells)
        table.add_column(
            header.upper(),
            justify="right" if numeric and any(line[index] != "-" for line in cells) else "left",
            overflow="ellipsis",
            no_wrap=True,
            max_width=max_cell if prose else None,
        )
    for line in cells:
        table.add_row(*(Text(value) for value in line))
    out = console()
    with out.capture() as captured:
        out.print(table)
    # Lines end where their text ends (rich pads the last column): friendlier to diff and grep.
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def emit(document: Any, *, as_json: bool, rows: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Print `document` as JSON, or `rows` (default: the document itself) as a table."""
    if as_json:
        print_json(document)
        return
    if rows is None:
        rows = document if isinstance(document, list) else [document]
    print_table(rows)


def cell(value: Any) -> str:
    """A table cell: "-" for nothing, 4 significant digits for floats, JSON for structures."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def shorten_list(values: Sequence[Any], *, noun: str, shown: int = 3) -> str:
    """`30 features (mean_radius, mean_texture, …)`: a long list as its size and its head."""
    if not values:
        return f"0 {noun}"
    if not all(isinstance(value, (str, int, float)) for value in values[:shown]):
        return f"{len(values)} {noun}"  # structures: `runs show --json` has them whole
    head = ", ".join(str(value) for value in values[:shown])
    more = ", …" if len(values) > shown else ""
    return f"{len(values)} {noun} ({head}{more})"


def principal(value: Any) -> Any:
    """Who did it, short: a run's execution ARN → `run:<execution name>`, a role session ARN →
    `<role>/<session>`, any other ARN → its last name; `cli:user` stays as it is.

    `arn:aws:states:…:execution:Driftline-…:breast_cancer-3f2a` → `run:breast_cancer-3f2a`.
    """
    if not isinstance(value, str) or not value.startswith("arn:") or value.count(":") < 5:
        return value
    _, _, service, _, _, resource = value.split(":", 5)
    if service == "states" and resource.startswith("execution:"):
        return "run:" + resource.rsplit(":", 1)[-1]
    if resource.startswith("assumed-role/"):
        return resource.removeprefix("assumed-role/")
    return resource.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


@contextmanager
def progress(label: str) -> Iterator[Callable[[str], None]]:
    """Long work: a spinner with the latest message on a terminal's stderr, each message kept
    as a line above it; plain lines on stderr otherwise. Yields the `say(message)` callable."""
    if not sys.stderr.isatty():

        def plain(message: str) -> None:
            print(message, file=sys.stderr, flush=True)

        yield plain
        return
    err = console(stderr=True)
    with err.status(label) as status:

        def say(message: str) -> None:
            err.print(message, markup=False, highlight=False)
            status.update(f"{label}: {message}")

        yield say


@contextmanager
def spinner(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner on a terminal's stderr while waiting (nothing when stderr is not a terminal);
    yields `update(message)` to show what is happening now."""
    if not sys.stderr.isatty():
        yield lambda _message: None
        return
    with console(stderr=True).status(label) as status:
        yield lambda message: status.update(f"{label}: {message}")
