"""A drift report as one self-contained HTML file: inline CSS and SVG, no scripts, no network.

It renders the ``DriftReport.to_dict()`` document rather than the live objects, so a report
stored as JSON (by the monitor, say) can be turned into HTML later. Every name, label and
reason comes from the data and is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from pipelines.drift import DriftReport

PANEL_WIDTH = 300
PANEL_HEIGHT = 130
AXIS_HEIGHT = 18
COLOURS = {"reference": "#4c78a8", "current": "#f58518"}
STATUS_COLOURS = {"drift": "#c0392b", "no_drift": "#1e8449", "insufficient_data": "#b9770e"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0.15em 0.6em; border-radius: 0.8em; color: #fff;
         font-weight: 600; font-size: 0.85em; }
section { border-top: 2px solid #eee; margin-top: 1.5em; padding-top: 0.5em; }
.panels { display: flex; gap: 1.5em; flex-wrap: wrap; }
.panel figcaption { font-size: 0.85em; color: #555; }
.reason { color: #444; }
"""


def render_html(report: DriftReport | Mapping[str, Any], *, title: str = "Drift report") -> str:
    """The whole page; ``report`` is a ``DriftReport`` or its ``to_dict()`` document."""
    document = report.to_dict() if isinstance(report, DriftReport) else report
    features: Mapping[str, Mapping[str, Any]] = document["features"]
    entries: list[tuple[str, Mapping[str, Any]]] = []
    prediction = document.get("prediction")
    if prediction is not None:
        entries.append((f"prediction: {prediction['name']}", prediction))
    entries.extend(features.items())
    thresholds = ", ".join(f"{k} {v}" for k, v in document["thresholds"].items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>Verdict: {_badge(document['verdict'])} {escape(str(document['summary']))}</p>",
        f"<p>{document['n_reference']:,} reference rows, {document['n_current']:,} current rows. "
        f"Thresholds: {escape(thresholds)}.</p>",
    ]
    if document.get("ignored_columns"):
        ignored = ", ".join(escape(str(name)) for name in document["ignored_columns"])
        parts.append(f"<p>Not compared (unsupported type): {ignored}</p>")
    parts.append(_summary_table(entries))
    parts.extend(_section(name, entry) for name, entry in entries)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#555")
    return f'<span class="badge" style="background:{colour}">{escape(status)}</span>'


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return escape(str(value))
        return f"{value:.3g}"
    return escape(str(value))


def _percent(value: Any) -> str:
    return "-" if value is None else f"{value:.1%}"


COLUMNS = (
    ("kind", "kind"),
    ("psi", "PSI"),
    ("ks_statistic", "KS"),
    ("ks_pvalue", "KS p"),
    ("wasserstein_normalized", "Wasserstein / sd"),
    ("chi2_pvalue", "χ² p"),
    ("js_distance", "JS distance"),
)


def _summary_table(entries: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    header = "".join(f"<th>{escape(label)}</th>" for _, label in COLUMNS)
    rows = []
    for name, entry in entries:
        cells = "".join(
            f'<td class="num">{_number(entry.get(key))}</td>'
            if key != "kind"
            else f"<td>{escape(str(entry.get(key)))}</td>"
            for key, _ in COLUMNS
        )
        nulls = (
            f"{_percent(entry.get('null_rate_reference'))} → "
            f"{_percent(entry.get('null_rate_current'))}"
        )
        rows.append(
            f'<tr><td><a href="#{_anchor(name)}">{escape(name)}</a></td>'
            f"<td>{_badge(entry['status'])}</td>{cells}<td>{nulls}</td>"
            f'<td class="reason">{escape(str(entry["reason"]))}</td></tr>'
        )
    return (
        f"<table><tr><th>feature</th><th>status</th>{header}<th>null rate</th>"
        f"<th>reason</th></tr>{''.join(rows)}</table>"
    )


def _anchor(name: str) -> str:
    return "f-" + "".join(ch if ch.isalnum() else f"_{ord(ch):x}" for ch in name)


def _section(name: str, entry: Mapping[str, Any]) -> str:
    stats = ", ".join(
        f"{escape(label)} {_number(entry.get(key))}"
        for key, label in COLUMNS[1:]
        if entry.get(key) is not None
    )
    counts = f"{entry['n_reference']:,} reference / {entry['n_current']:,} current rows"
    histogram = entry.get("histogram")
    panels = _panels(histogram) if histogram else "<p>No values to plot.</p>"
    return (
        f'<section id="{_anchor(name)}"><h2>{escape(name)} {_badge(entry["status"])}</h2>'
        f'<p class="reason">{escape(str(entry["reason"]))}</p>'
        f"<p>{escape(counts)}. {stats}</p>{panels}</section>"
    )


def _panels(histogram: Mapping[str, Any]) -> str:
    reference: list[float] = list(histogram["reference"])
    current: list[float] | None = histogram["current"]
    tallest = max([*reference, *(current or []), 1e-12])
    if histogram.get("edges") is not None:
        edges: list[float] = list(histogram["edges"])
        ticks = [f"{edge:.4g}" for edge in edges]
        labels = [f"[{ticks[i]}, {ticks[i + 1]})" for i in range(len(edges) - 1)]
        axis = (ticks[0], ticks[-1]) if ticks else ("", "")
    else:
        labels = [str(label) for label in histogram.get("labels") or []]
        axis = (labels[0], labels[-1]) if labels else ("", "")
    figures = [_figure("reference", reference, labels, tallest, axis)]
    if current is None:
        figures.append('<figure class="panel"><figcaption>current: missing</figcaption></figure>')
    else:
        figures.append(_figure("current", current, labels, tallest, axis))
    return f'<div class="panels">{"".join(figures)}</div>'


def _figure(
    side: str, shares: Sequence[float], labels: Sequence[str], tallest: float, axis: tuple[str, str]
) -> str:
    count = max(len(shares), 1)
    width = PANEL_WIDTH / count
    bars = []
    for index, share in enumerate(shares):
        height = PANEL_HEIGHT * share / tallest
        label = labels[index] if index < len(labels) else ""
        bars.append(
            f'<rect x="{index * width:.2f}" y="{PANEL_HEIGHT - height:.2f}" '
            f'width="{max(width - 1, 0.5):.2f}" height="{height:.2f}" fill="{COLOURS[side]}">'
            f"<title>{escape(label)}: {share:.2%}</title></rect>"
        )
    total_height = PANEL_HEIGHT + AXIS_HEIGHT
    axis_text = (
        f'<text x="0" y="{total_height - 4}" font-size="10">{escape(axis[0][:24])}</text>'
        f'<text x="{PANEL_WIDTH}" y="{total_height - 4}" font-size="10" '
        f'text-anchor="end">{escape(axis[1][:24])}</text>'
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PANEL_WIDTH}" height="{total_height}" '
        f'role="img" aria-label="{escape(side)} distribution">'
        f'<line x1="0" y1="{PANEL_HEIGHT}" x2="{PANEL_WIDTH}" y2="{PANEL_HEIGHT}" stroke="#999"/>'
        f"{''.join(bars)}{axis_text}</svg>"
    )
    return (
        f'<figure class="panel">{svg}<figcaption>{escape(side)} '
        f"(tallest bar {tallest:.1%})</figcaption></figure>"
    )
