"""A drift report as one self-contained HTML file: inline CSS and SVG, no scripts, no network.

What a reader sees, top to bottom (the layout people know from Evidently's data drift report,
plus what this one says better):

- the verdict and a summary: "N of M features drifted" (and the prediction's status);
- one row per feature (and the prediction), **sorted by drift score**: the largest effect size
  relative to its threshold (1.0 = at the threshold), so the worst shift is on top whatever
  its kind; drifted first, then undecided, then the rest;
- each row expands on click (`<details>`, no script) to the two distributions **overlaid on
  one labelled axis** (numeric: shared bins, x in the feature's units, y the share of rows;
  categorical and low-cardinality numeric columns such as a 0/1 target: bars per category),
  the statistics, and the plain-English reason;
- how p-values were judged: Benjamini-Hochberg across the report's features.

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

CHART_WIDTH = 640
CHART_HEIGHT = 220
MARGIN_LEFT = 48
MARGIN_BOTTOM = 46
MARGIN_TOP = 12
MARGIN_RIGHT = 28
PLOT_WIDTH = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
PLOT_HEIGHT = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
PLOT_BASE = MARGIN_TOP + PLOT_HEIGHT  # the x axis's y
X_TICKS = 5
Y_TICKS = 4
COLOURS = {"reference": "#4c78a8", "current": "#f58518"}
STATUS_COLOURS = {"drift": "#c0392b", "no_drift": "#1e8449", "insufficient_data": "#b9770e"}
STATUS_RANK = {"drift": 0, "insufficient_data": 1, "no_drift": 2}
STATUS_WORDS = {"drift": "drift", "no_drift": "no drift", "insufficient_data": "undecided"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 84em; }
h1 { margin-bottom: 0.2em; }
.summary { font-size: 1.15em; margin: 0.4em 0 0.8em; }
.cards { display: flex; gap: 1em; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 0.4em; padding: 0.5em 1em; min-width: 8em; }
.card b { font-size: 1.6em; display: block; }
.badge { display: inline-block; padding: 0.15em 0.6em; border-radius: 0.8em; color: #fff;
         font-weight: 600; font-size: 0.85em; white-space: nowrap; }
.features { border-top: 1px solid #ccc; }
.grid { display: grid; gap: 0 0.8em; align-items: center; padding: 0.35em 0.4em;
        grid-template-columns: 15em 6.5em 8em 4.5em 4.5em 4.5em 7.5em minmax(16em, 1fr); }
.head { font-weight: 600; background: #f4f4f4; }
.head span { font-size: 0.9em; }
details.feature { border-bottom: 1px solid #ddd; }
details.feature > summary { list-style: none; cursor: pointer; }
details.feature > summary::-webkit-details-marker { display: none; }
details.feature > summary:hover { background: #fafafa; }
details.feature[open] > summary { background: #f0f4fa; }
.name::before { content: "\\25B8  "; color: #888; }
details[open] .name::before { content: "\\25BE  "; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.score { display: flex; align-items: center; gap: 0.4em; }
.bar { height: 0.6em; background: #ccc; border-radius: 0.3em; }
.bar.over { background: #d68910; }
.bar.drift { background: #c0392b; }
.reason { color: #444; font-size: 0.9em; }
.detail { padding: 0.5em 1em 1em 2em; }
.detail table { border-collapse: collapse; font-size: 0.85em; margin-top: 0.5em; }
.detail td, .detail th { border-bottom: 1px solid #eee; padding: 0.2em 0.6em; text-align: left; }
.legend span { margin-right: 1.2em; font-size: 0.85em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: middle;
          margin-right: 0.3em; opacity: 0.75; }
.note { color: #555; font-size: 0.9em; }
"""

# Statistics of the details table: (key, label, how to print).
STATISTICS = (
    ("psi", "PSI"),
    ("ks_statistic", "KS statistic"),
    ("ks_pvalue", "KS p-value"),
    ("wasserstein_normalized", "Wasserstein / reference sd"),
    ("chi2_pvalue", "χ² p-value"),
    ("adjusted_pvalue", "p-value after Benjamini-Hochberg"),
    ("js_distance", "Jensen-Shannon distance"),
)


def page_start(title: str, style: str) -> list[str]:
    """A self-contained page's opening up to its heading: the drift report and the runs page
    (driftline/runs_view.py) open alike, each with its own style sheet inline."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{style}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]


def render_html(report: DriftReport | Mapping[str, Any], *, title: str = "Drift report") -> str:
    """The whole page; ``report`` is a ``DriftReport`` or its ``to_dict()`` document."""
    document = report.to_dict() if isinstance(report, DriftReport) else report
    thresholds: Mapping[str, Any] = document["thresholds"]
    features: Mapping[str, Mapping[str, Any]] = document["features"]
    entries: list[tuple[str, bool, Mapping[str, Any]]] = [
        (name, False, entry) for name, entry in features.items()
    ]
    prediction = document.get("prediction")
    if prediction is not None:
        entries.append((str(prediction["name"]), True, prediction))
    ranked = sorted(
        entries,
        key=lambda item: (
            STATUS_RANK.get(str(item[2]["status"]), 3),
            -drift_score(item[2], thresholds, prediction=item[1]),
            item[0],
        ),
    )
    counts = dict.fromkeys(STATUS_RANK, 0)
    for entry in features.values():
        counts[str(entry["status"])] = counts.get(str(entry["status"]), 0) + 1
    total = len(features)
    parts = [
        *page_start(title, STYLE),
        f'<p class="summary" id="summary">{_badge(str(document["verdict"]))} '
        f"<strong>{counts['drift']} of {total} features drifted</strong>"
        f"{_prediction_note(prediction)}. {escape(str(document['summary']))}</p>",
        _cards(counts, document),
        f'<p class="note">{document["n_reference"]:,} reference rows, '
        f"{document['n_current']:,} current rows. {_method(thresholds)}</p>",
    ]
    if document.get("ignored_columns"):
        ignored = ", ".join(escape(str(name)) for name in document["ignored_columns"])
        parts.append(f'<p class="note">Not compared (unsupported type): {ignored}</p>')
    parts.append(
        '<div class="features" id="features">'
        '<div class="grid head"><span>feature</span><span>status</span>'
        '<span>drift score</span><span class="num">PSI</span><span class="num">KS</span>'
        '<span class="num">W / sd</span><span class="num">null rate</span><span>reason</span>'
        "</div>"
    )
    parts.extend(
        _feature(
            name,
            entry,
            thresholds,
            is_prediction=is_prediction,
            open_=index == 0 and entry["status"] == "drift",
        )
        for index, (name, is_prediction, entry) in enumerate(ranked)
    )
    parts.append("</div>")
    parts.append(
        '<p class="note">Drift score: the largest of PSI, KS statistic and Wasserstein / sd, '
        "each divided by its threshold (1.0 = at the threshold). Rows are sorted by status, "
        "then score. Click a row for its distributions; the worst drifted feature starts "
        "open.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def drift_score(
    entry: Mapping[str, Any], thresholds: Mapping[str, Any], *, prediction: bool = False
) -> float:
    """The largest effect size over its threshold: 1.0 means at the threshold."""
    psi_threshold = thresholds.get("prediction_psi" if prediction else "psi") or 0.2
    ratios = [
        _ratio(entry.get("psi"), psi_threshold),
        _ratio(entry.get("ks_statistic"), thresholds.get("ks_statistic")),
        _ratio(entry.get("wasserstein_normalized"), thresholds.get("wasserstein_normalized")),
    ]
    finite = [r for r in ratios if r is not None]
    return max(finite, default=0.0)


def _ratio(value: Any, threshold: Any) -> float | None:
    if not isinstance(value, (int, float)) or not isinstance(threshold, (int, float)):
        return None
    if threshold <= 0 or not math.isfinite(float(value)):
        return None
    return float(value) / float(threshold)


def _prediction_note(prediction: Mapping[str, Any] | None) -> str:
    if prediction is None:
        return ""
    words = STATUS_WORDS.get(str(prediction["status"]), str(prediction["status"]))
    return f"; prediction {escape(str(prediction['name']))}: {escape(words)}"


def _cards(counts: Mapping[str, int], document: Mapping[str, Any]) -> str:
    share = document.get("drifted_share")
    share_text = f"{share:.0%}" if isinstance(share, (int, float)) else "-"
    cards = [
        ("drifted", counts.get("drift", 0)),
        ("undecided", counts.get("insufficient_data", 0)),
        ("no drift", counts.get("no_drift", 0)),
        ("drifted share", share_text),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><b>{value}</b>{escape(label)}</div>' for label, value in cards
        )
        + "</div>"
    )


def _method(thresholds: Mapping[str, Any]) -> str:
    return escape(
        f"A feature drifts when an effect size is over its threshold (PSI > "
        f"{thresholds.get('psi')}, KS > {thresholds.get('ks_statistic')}, Wasserstein > "
        f"{thresholds.get('wasserstein_normalized')} reference sd) and its p-value survives the "
        f"Benjamini-Hochberg correction across all features at false-discovery rate "
        f"{thresholds.get('significance')}. The report drifts when the share of drifted "
        f"features is over {thresholds.get('drifted_share')} (0: any one feature) or the "
        f"prediction drifts."
    )


def _badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#555")
    words = STATUS_WORDS.get(status, status)
    return (
        f'<span class="badge" data-status="{escape(status)}" style="background:{colour}">'
        f"{escape(words)}</span>"
    )


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


def _anchor(name: str) -> str:
    return "f-" + "".join(ch if ch.isalnum() else f"_{ord(ch):x}" for ch in name)


def _feature(
    name: str,
    entry: Mapping[str, Any],
    thresholds: Mapping[str, Any],
    *,
    is_prediction: bool,
    open_: bool = False,
) -> str:
    """One row; the worst drifted feature starts open, every other expands on click."""
    score = drift_score(entry, thresholds, prediction=is_prediction)
    shown = f"{name} (prediction)" if is_prediction else name
    width = min(score, 2.0) / 2.0 * 5.0  # 5em = twice the threshold
    level = " drift" if entry["status"] == "drift" else " over" if score > 1 else ""
    bar = f'<span class="bar{level}" style="width:{width:.2f}em"></span>'
    nulls = (
        f"{_percent(entry.get('null_rate_reference'))} → {_percent(entry.get('null_rate_current'))}"
    )
    summary = (
        f'<summary class="grid"><span class="name">{escape(shown)}</span>'
        f"<span>{_badge(str(entry['status']))}</span>"
        f'<span class="score">{bar}<span class="num">{score:.2f}</span></span>'
        f'<span class="num">{_number(entry.get("psi"))}</span>'
        f'<span class="num">{_number(entry.get("ks_statistic"))}</span>'
        f'<span class="num">{_number(entry.get("wasserstein_normalized"))}</span>'
        f'<span class="num">{nulls}</span>'
        f'<span class="reason">{escape(str(entry["reason"]))}</span></summary>'
    )
    statistics = "".join(
        f"<tr><th>{escape(label)}</th><td>{_number(entry.get(key))}</td></tr>"
        for key, label in STATISTICS
        if entry.get(key) is not None
    )
    rows = (
        f"<tr><th>rows (reference / current)</th><td>{entry['n_reference']:,} / "
        f"{entry['n_current']:,}</td></tr>"
        f"<tr><th>kind</th><td>{escape(str(entry['kind']))}</td></tr>"
    )
    new = entry.get("new_categories")
    if new:
        rows += (
            "<tr><th>categories not in the reference</th><td>"
            f"{escape(', '.join(str(c) for c in new[:20]))}</td></tr>"
        )
    histogram = entry.get("histogram")
    chart = _chart(name, histogram) if histogram else "<p>No values to plot.</p>"
    if entry.get("missing") or (histogram and histogram.get("current") is None):
        chart += '<p class="note">current: missing (the column is not in the current data)</p>'
    return (
        f'<details class="feature"{" open" if open_ else ""} id="{_anchor(name)}" '
        f'data-feature="{escape(name)}" '
        f'data-status="{escape(str(entry["status"]))}" data-score="{score:.6f}">'
        f'{summary}<div class="detail">'
        f'<p class="reason">{escape(str(entry["reason"]))}</p>{chart}'
        f"<table>{rows}{statistics}</table></div></details>"
    )


def _chart(name: str, histogram: Mapping[str, Any]) -> str:
    """Reference and current on one axis: overlaid bins, or bars side by side per category."""
    reference = [float(v) for v in histogram.get("reference") or []]
    current_values = histogram.get("current")
    current = [float(v) for v in current_values] if current_values is not None else None
    if not reference and not current:
        return "<p>No values to plot.</p>"
    tallest = max([*reference, *(current or []), 1e-12])
    top = _nice_top(tallest)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{CHART_WIDTH}" '
        f'height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" '
        f'aria-label="distribution of {escape(name)}: reference and current">'
    ]
    for index in range(Y_TICKS + 1):  # y axis: share of rows
        share = top * index / Y_TICKS
        y = PLOT_BASE - PLOT_HEIGHT * index / Y_TICKS
        parts.append(
            f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{MARGIN_LEFT + PLOT_WIDTH}" y2="{y:.1f}" '
            f'stroke="#eee"/><text x="{MARGIN_LEFT - 4}" y="{y + 3:.1f}" font-size="10" '
            f'text-anchor="end">{share:.0%}</text>'
        )
    edges = histogram.get("edges")
    if edges:
        parts.extend(_numeric_bars(edges, reference, current, top))
        x_label = escape(name)
    else:
        labels = [str(label) for label in histogram.get("labels") or []]
        parts.extend(_category_bars(labels, reference, current, top))
        x_label = f"{escape(name)} (category)"
    parts.append(
        f'<line x1="{MARGIN_LEFT}" y1="{PLOT_BASE}" x2="{MARGIN_LEFT + PLOT_WIDTH}" '
        f'y2="{PLOT_BASE}" stroke="#666"/><line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" '
        f'x2="{MARGIN_LEFT}" '
        f'y2="{PLOT_BASE}" stroke="#666"/>'
        f'<text x="{MARGIN_LEFT + PLOT_WIDTH / 2:.1f}" y="{CHART_HEIGHT - 4}" font-size="11" '
        f'text-anchor="middle">{x_label}</text>'
        f'<text x="12" y="{MARGIN_TOP + PLOT_HEIGHT / 2:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {MARGIN_TOP + PLOT_HEIGHT / 2:.1f})">share of rows</text></svg>'
    )
    legend = [_legend("reference", reference)]
    if current is not None:
        legend.append(_legend("current", current))
    return f'<div class="legend">{"".join(legend)}</div>{"".join(parts)}'


def _legend(side: str, shares: Sequence[float]) -> str:
    """Each side's own tallest bar (the two differ: the axis is shared, the caption is not)."""
    peak = max(shares, default=0.0)
    return (
        f'<span data-side="{side}"><i class="swatch" style="background:{COLOURS[side]}"></i>'
        f"{side} (tallest bar {peak:.1%})</span>"
    )


def _nice_top(tallest: float) -> float:
    """A round upper end for the share axis, at or above the tallest bar."""
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0):
        if tallest <= step * Y_TICKS:
            return step * Y_TICKS if step * Y_TICKS <= 1.0 else 1.0
    return 1.0


def _numeric_bars(
    edges: Sequence[float],
    reference: Sequence[float],
    current: Sequence[float] | None,
    top: float,
) -> list[str]:
    low, high = float(edges[0]), float(edges[-1])
    span = (high - low) or 1.0

    def x_of(value: float) -> float:
        return MARGIN_LEFT + PLOT_WIDTH * (value - low) / span

    parts: list[str] = []
    for side, shares, opacity in (("reference", reference, 0.55), ("current", current, 0.45)):
        if shares is None:
            continue
        for index, share in enumerate(shares):
            if index + 1 >= len(edges):
                break
            left, right = x_of(float(edges[index])), x_of(float(edges[index + 1]))
            height = PLOT_HEIGHT * min(share / top, 1.0)
            parts.append(
                f'<rect class="{side}" x="{left:.2f}" y="{PLOT_BASE - height:.2f}" '
                f'width="{max(right - left - 0.5, 0.5):.2f}" height="{height:.2f}" '
                f'fill="{COLOURS[side]}" fill-opacity="{opacity}">'
                f"<title>{side} [{edges[index]:.4g}, {edges[index + 1]:.4g}): {share:.2%}"
                "</title></rect>"
            )
    for index in range(X_TICKS + 1):  # x axis in the feature's own units
        value = low + span * index / X_TICKS
        x = x_of(value)
        parts.append(
            f'<line x1="{x:.1f}" y1="{PLOT_BASE}" x2="{x:.1f}" y2="{PLOT_BASE + 4}" stroke="#666"/>'
            f'<text x="{x:.1f}" y="{PLOT_BASE + 15}" font-size="10" text-anchor="middle">'
            f"{value:.4g}</text>"
        )
    return parts


def _category_bars(
    labels: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float] | None,
    top: float,
) -> list[str]:
    count = max(len(reference), len(current or []), 1)
    slot = PLOT_WIDTH / count
    width = slot * 0.38
    parts: list[str] = []
    for side, shares, offset in (("reference", reference, 0.1), ("current", current, 0.5)):
        if shares is None:
            continue
        for index, share in enumerate(shares):
            label = labels[index] if index < len(labels) else ""
            height = PLOT_HEIGHT * min(share / top, 1.0)
            x = MARGIN_LEFT + slot * index + slot * offset
            parts.append(
                f'<rect class="{side}" x="{x:.2f}" y="{PLOT_BASE - height:.2f}" '
                f'width="{width:.2f}" height="{height:.2f}" fill="{COLOURS[side]}" '
                f'fill-opacity="0.8">'
                f"<title>{side} {escape(label)}: {share:.2%}</title></rect>"
            )
    limit = max(3, int(slot / 6))
    for index, label in enumerate(labels):
        x = MARGIN_LEFT + slot * (index + 0.5)
        text = label if len(label) <= limit else label[: limit - 1] + "…"
        parts.append(
            f'<text x="{x:.1f}" y="{PLOT_BASE + 15}" font-size="10" text-anchor="middle">'
            f"{escape(text)}<title>{escape(label)}</title></text>"
        )
    return parts
