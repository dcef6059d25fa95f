"""The static runs and models view behind `driftline report runs --html OUT`.

`collect(env)` reads the registries (runs, models, endpoint history, accepted dataset versions)
into one JSON-able document; `render_runs_html(document)` turns it into one self-contained page
(inline CSS and SVG, one small inline script for the compare picker, nothing fetched):

- **Metrics over time**: per dataset, each run's primary test metric by start time, one point
  per run (hollow: the gate rejected it; red: it failed), so a retrain's effect is visible;
- **Runs**: newest first, with status, trigger, metric, model version, whether it serves;
- **Compare two runs**: pick A and B, see their parameters and metrics with B - A deltas (the
  newest two are compared without the script, so the page also reads with scripts off);
- **Lineage**: dataset version (s3://…?versionId) → run → model version → endpoint history;
- **Artifacts**: every s3:// key a run or a model version recorded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from driftline.output import principal
from pipelines.drift_html import page_start

CHART_WIDTH = 720
CHART_HEIGHT = 240
MARGIN = {"left": 56, "right": 16, "top": 14, "bottom": 40}
STATUS_COLOURS = {
    "Succeeded": "#1e8449",
    "Rejected": "#b9770e",
    "Failed": "#c0392b",
    "Running": "#4c78a8",
    "Approved": "#1e8449",
    "PendingApproval": "#b9770e",
}
SPLITS = ("test", "validation", "train")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 80em; }
nav a { margin-right: 1em; }
section { border-top: 2px solid #eee; margin-top: 1.5em; padding-top: 0.3em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.6em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.85em; background: #f6f6f6; padding: 0 0.2em; word-break: break-all; }
.badge { display: inline-block; padding: 0.1em 0.5em; border-radius: 0.7em; color: #fff;
         font-size: 0.8em; font-weight: 600; }
.note { color: #555; font-size: 0.9em; }
.chain { list-style: none; padding-left: 0; }
.chain li { margin: 0.3em 0; }
.arrow { color: #888; margin: 0 0.4em; }
.changed { background: #fff4e0; }
.better { color: #1e8449; } .worse { color: #c0392b; }
"""

# The compare picker: fills the table from the embedded document. No network, no eval.
SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("runs-data").textContent);
  var byId = {};
  data.runs.forEach(function (run) { byId[run.run_id] = run; });
  var pickA = document.getElementById("compare-a"), pickB = document.getElementById("compare-b");
  var body = document.getElementById("compare-body");
  function flat(value, prefix, out) {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      Object.keys(value).sort().forEach(function (k) { flat(value[k], prefix + k + ".", out); });
    } else { out[prefix.slice(0, -1)] = value; }
    return out;
  }
  function text(value) {
    if (value === undefined || value === null) { return "-"; }
    if (Array.isArray(value)) {
      return value.length + " items (" + value.slice(0, 3).join(", ") +
        (value.length > 3 ? ", \\u2026" : "") + ")";
    }
    if (typeof value === "number") { return String(Math.round(value * 1e4) / 1e4); }
    return String(value);
  }
  function row(name, a, b) {
    var tr = document.createElement("tr");
    var delta = "";
    if (typeof a === "number" && typeof b === "number") {
      var d = b - a;
      if (d !== 0) { delta = (d > 0 ? "+" : "") + d.toFixed(4); }
    } else if (JSON.stringify(a) !== JSON.stringify(b)) { delta = "changed"; }
    if (delta) { tr.className = "changed"; }
    [name, text(a), text(b), delta].forEach(function (cell) {
      var td = document.createElement("td"); td.textContent = cell; tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  function render() {
    var a = byId[pickA.value], b = byId[pickB.value];
    if (!a || !b) { return; }
    while (body.firstChild) { body.removeChild(body.firstChild); }
    var pa = flat(a.params || {}, "params.", {}), pb = flat(b.params || {}, "params.", {});
    var ma = flat(a.metrics || {}, "", {}), mb = flat(b.metrics || {}, "", {});
    ["dataset", "status", "dataset_version_id", "code_version", "model_version"]
      .forEach(function (key) { row(key, a[key], b[key]); });
    Object.keys(Object.assign({}, ma, mb)).sort().forEach(function (k) { row(k, ma[k], mb[k]); });
    Object.keys(Object.assign({}, pa, pb)).sort().forEach(function (k) { row(k, pa[k], pb[k]); });
  }
  pickA.addEventListener("change", render);
  pickB.addEventListener("change", render);
  render();
  document.documentElement.setAttribute("data-compare", "ready");
})();
"""


# --------------------------------------------------------------------------- collecting


def collect(env: str, *, dataset: str | None = None, limit: int = 200) -> dict[str, Any]:
    """The registries of `env` as one document (see the module docstring)."""
    from driftline.aws import client, require_output, stack_outputs
    from driftline.commands.runs import registry_errors
    from functions.shared.datasets import DatasetRegistry
    from functions.shared.endpoints import EndpointRegistry
    from functions.shared.registry import ModelRegistry, RunRegistry

    outputs = stack_outputs(env)
    dynamodb = client("dynamodb")
    with registry_errors():
        runs = RunRegistry(dynamodb, require_output(outputs, "RunsTableName", env)).list_runs(
            dataset=dataset, limit=limit
        )
        models_registry = ModelRegistry(dynamodb, require_output(outputs, "ModelsTableName", env))
        names = [name for name in models_registry.list_models() if dataset in (None, name)]
        models = {name: list(models_registry.versions(name)) for name in names}
        endpoints: dict[str, list[dict[str, Any]]] = {}
        if outputs.get("EndpointsTableName"):
            registry = EndpointRegistry(dynamodb, outputs["EndpointsTableName"])
            endpoints = {name: registry.history(name, limit=50) for name in names}
        datasets: dict[str, list[dict[str, Any]]] = {}
        if outputs.get("DatasetsTableName"):
            accepted = DatasetRegistry(dynamodb, outputs["DatasetsTableName"])
            wanted = {str(run.get("dataset")) for run in runs if run.get("dataset")}
            datasets = {name: list(accepted.versions(name, limit=100)) for name in sorted(wanted)}
    return {
        "env": env,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "artifacts_bucket": outputs.get("ArtifactsBucketName"),
        "datasets_bucket": outputs.get("DatasetsBucketName"),
        "runs": runs,
        "models": models,
        "endpoints": endpoints,
        "datasets": datasets,
    }


# --------------------------------------------------------------------------- rendering


def render_runs_html(document: Mapping[str, Any]) -> str:
    """The page for a `collect()` document."""
    runs: list[Mapping[str, Any]] = sorted(
        document.get("runs") or [],
        key=lambda run: (str(run.get("started_at", "")), str(run.get("run_id"))),
        reverse=True,
    )
    models: Mapping[str, Sequence[Mapping[str, Any]]] = document.get("models") or {}
    title = f"Driftline {document.get('env', '')}: runs and models"
    embedded = json.dumps(
        {"runs": [_compare_fields(run) for run in runs]}, default=str, sort_keys=True
    ).replace("</", "<\\/")
    parts = [
        *page_start(title, STYLE),
        f'<p class="note" id="summary">{len(runs)} runs, {len(models)} models; generated '
        f"{escape(str(document.get('generated_at', '')))}.</p>",
        '<nav><a href="#metrics">metrics over time</a><a href="#runs">runs</a>'
        '<a href="#compare">compare</a><a href="#lineage">lineage</a>'
        '<a href="#artifacts">artifacts</a></nav>',
        _metrics_section(runs),
        _runs_section(runs, document),
        _compare_section(runs),
        _lineage_section(runs, models, document),
        _artifacts_section(runs, models, document),
        f'<script type="application/json" id="runs-data">{embedded}</script>',
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _badge(status: Any) -> str:
    colour = STATUS_COLOURS.get(str(status), "#666")
    return f'<span class="badge" style="background:{colour}">{escape(str(status))}</span>'


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        head = ", ".join(str(v) for v in value[:3])
        return escape(f"{len(value)} items ({head}{', …' if len(value) > 3 else ''})")
    if isinstance(value, dict):
        return escape(json.dumps(value, default=str, sort_keys=True))
    return escape(str(value))


def _primary(run: Mapping[str, Any]) -> tuple[str | None, float | None]:
    metric = run.get("primary_metric")
    value = ((run.get("metrics") or {}).get("test") or {}).get(metric) if metric else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(metric), float(value)
    return (str(metric) if metric else None), None


def _when(run: Mapping[str, Any]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(run.get("started_at", "")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _metrics_section(runs: Sequence[Mapping[str, Any]]) -> str:
    by_dataset: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        by_dataset.setdefault(str(run.get("dataset")), []).append(run)
    charts = [
        _metric_chart(name, dataset_runs) for name, dataset_runs in sorted(by_dataset.items())
    ]
    return (
        '<section id="metrics"><h2>Metrics over time</h2>'
        '<p class="note">Each run\'s primary metric on the test split, by start time. '
        "Filled: the run succeeded; hollow: the gate rejected the model; red: the run failed."
        f"</p>{''.join(charts) or '<p>No runs.</p>'}</section>"
    )


def _metric_chart(dataset: str, runs: Sequence[Mapping[str, Any]]) -> str:
    points = []
    for run in runs:
        metric, value = _primary(run)
        moment = _when(run)
        if value is not None and moment is not None and math.isfinite(value):
            points.append((moment, value, metric, run))
    if not points:
        return f"<h3>{escape(dataset)}</h3><p>No run of {escape(dataset)} has a test metric.</p>"
    points.sort(key=lambda point: point[0])
    metric_name = points[-1][2] or "metric"
    times = [point[0].timestamp() for point in points]
    values = [point[1] for point in points]
    t0, t1 = min(times), max(times)
    if t1 == t0:
        t0, t1 = t0 - 3600, t1 + 3600
    v0, v1 = min(values), max(values)
    pad = (v1 - v0) * 0.1 or 0.01
    v0, v1 = v0 - pad, v1 + pad
    left, top = MARGIN["left"], MARGIN["top"]
    width = CHART_WIDTH - MARGIN["left"] - MARGIN["right"]
    height = CHART_HEIGHT - MARGIN["top"] - MARGIN["bottom"]
    base = top + height

    def x_of(t: float) -> float:
        return left + width * (t - t0) / (t1 - t0)

    def y_of(v: float) -> float:
        return base - height * (v - v0) / (v1 - v0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="metric-chart" width="{CHART_WIDTH}" '
        f'height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" '
        f'aria-label="{escape(metric_name)} of {escape(dataset)} over time">'
    ]
    for index in range(5):
        value = v0 + (v1 - v0) * index / 4
        y = y_of(value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">'
            f"{value:.3f}</text>"
        )
    # Runs minutes apart (a demo, a twin) need seconds on the axis; weeks apart, only the day.
    stamp = "%m-%d %H:%M:%S" if t1 - t0 < 2 * 86400 else "%Y-%m-%d %H:%M"
    for index in range(4):
        moment = datetime.fromtimestamp(t0 + (t1 - t0) * index / 3, tz=UTC)
        x = x_of(moment.timestamp())
        parts.append(
            f'<text x="{x:.1f}" y="{base + 15}" font-size="10" text-anchor="middle">'
            f"{moment.strftime(stamp)}</text>"
        )
    line = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in zip(times, values, strict=True))
    parts.append(f'<polyline points="{line}" fill="none" stroke="#4c78a8" stroke-width="1.5"/>')
    for (moment, value, _, run), t in zip(points, times, strict=True):
        status = str(run.get("status"))
        colour = STATUS_COLOURS.get(status, "#4c78a8")
        fill = "#fff" if status == "Rejected" else colour
        parts.append(
            f'<a href="#run-{escape(str(run.get("run_id")))}"><circle class="point" '
            f'cx="{x_of(t):.1f}" cy="{y_of(value):.1f}" r="4.5" fill="{fill}" '
            f'stroke="{colour}" stroke-width="2"><title>{escape(str(run.get("run_id")))}: '
            f"{escape(metric_name)} = {value:.4f} ({escape(status)}, {moment:%Y-%m-%d %H:%M})"
            "</title></circle></a>"
        )
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{left + width}" y2="{base}" stroke="#666"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#666"/>'
        f'<text x="{left + width / 2:.1f}" y="{CHART_HEIGHT - 4}" font-size="11" '
        f'text-anchor="middle">run started (UTC)</text>'
        f'<text x="12" y="{top + height / 2:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + height / 2:.1f})">{escape(metric_name)} (test)</text>'
        "</svg>"
    )
    return f"<h3>{escape(dataset)}</h3>{''.join(parts)}"


def _runs_section(runs: Sequence[Mapping[str, Any]], document: Mapping[str, Any]) -> str:
    rows = []
    for run in runs:
        metric, value = _primary(run)
        shown = f"{metric} = {value:.4f}" if value is not None else "-"
        deployed = {"Deployed": "yes", "NotDeployed": "NO"}.get(
            str(run.get("deployment_status")), "-"
        )
        version = run.get("model_version")
        model_link = (
            f'<a href="#model-{escape(str(run.get("dataset")))}-{escape(str(version))}">'
            f"v{escape(str(version))}</a>"
            if version is not None
            else "-"
        )
        rows.append(
            f'<tr id="run-{escape(str(run.get("run_id")))}"><td><code>'
            f"{escape(str(run.get('run_id')))}</code></td><td>{_text(run.get('dataset'))}</td>"
            f"<td>{_badge(run.get('status'))}</td><td>{_text(run.get('trigger'))}</td>"
            f"<td>{_text(run.get('started_at'))}</td>"
            f'<td class="num">{_text(run.get("duration_total"))}</td><td>{escape(shown)}</td>'
            f"<td>{model_link}</td><td>{deployed}</td>"
            f"<td>{_text(run.get('deployment_reason') or run.get('cause'))}</td></tr>"
        )
    return (
        '<section id="runs"><h2>Runs</h2><table class="runs"><thead><tr><th>run</th>'
        "<th>dataset</th><th>status</th><th>trigger</th><th>started</th><th>seconds</th>"
        "<th>metric (test)</th><th>model</th><th>serves</th><th>why</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _compare_fields(run: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "run_id",
        "dataset",
        "status",
        "dataset_version_id",
        "code_version",
        "model_version",
        "params",
        "metrics",
    )
    return {key: run.get(key) for key in keys}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key in sorted(value):
            flat.update(_flatten(value[key], f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value} if prefix else {}


def compare_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any, str]]:
    """(field, a, b, delta) for identity, metrics and params: what the picker shows."""
    rows: list[tuple[str, Any, Any, str]] = []
    for key in ("dataset", "status", "dataset_version_id", "code_version", "model_version"):
        rows.append((key, a.get(key), b.get(key), _delta(a.get(key), b.get(key))))
    for group, prefix in (("metrics", ""), ("params", "params.")):
        flat_a = _flatten(a.get(group) or {}, prefix)
        flat_b = _flatten(b.get(group) or {}, prefix)
        for name in sorted(set(flat_a) | set(flat_b)):
            rows.append(
                (
                    name,
                    flat_a.get(name),
                    flat_b.get(name),
                    _delta(flat_a.get(name), flat_b.get(name)),
                )
            )
    return rows


def _delta(a: Any, b: Any) -> str:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if numbers:
        return f"{float(b) - float(a):+.4f}" if a != b else ""
    if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
        return "changed"
    return ""


def _compare_section(runs: Sequence[Mapping[str, Any]]) -> str:
    if len(runs) < 2:
        return (
            '<section id="compare"><h2>Compare two runs</h2><p>Fewer than two runs.</p></section>'
        )
    options_a = "".join(
        f'<option value="{escape(str(run.get("run_id")))}"{" selected" if i == 1 else ""}>'
        f"{escape(str(run.get('run_id')))}</option>"
        for i, run in enumerate(runs)
    )
    options_b = "".join(
        f'<option value="{escape(str(run.get("run_id")))}"{" selected" if i == 0 else ""}>'
        f"{escape(str(run.get('run_id')))}</option>"
        for i, run in enumerate(runs)
    )
    changed = ' class="changed"'
    rows = "".join(
        f"<tr{changed if delta else ''}><td>{escape(name)}</td><td>{_text(a)}</td>"
        f"<td>{_text(b)}</td><td>{escape(delta)}</td></tr>"
        for name, a, b, delta in compare_rows(runs[1], runs[0])
    )
    return (
        '<section id="compare"><h2>Compare two runs</h2>'
        '<p><label>A <select id="compare-a">'
        f"{options_a}</select></label> <label>B <select "
        f'id="compare-b">{options_b}</select></label> <span class="note">(B - A; the newest '
        "run is B)</span></p>"
        '<table class="compare"><thead><tr><th>field</th><th>A</th><th>B</th><th>B - A</th>'
        f'</tr></thead><tbody id="compare-body">{rows}</tbody></table></section>'
    )


def _dataset_uri(
    run: Mapping[str, Any], datasets: Mapping[str, Sequence[Mapping[str, Any]]], bucket: Any
) -> str:
    version = run.get("dataset_version_id")
    accepted = next(
        (
            item
            for item in datasets.get(str(run.get("dataset")), [])
            if item.get("version_id") == version
        ),
        None,
    )
    key = (accepted or {}).get("key")
    if key and bucket:
        return f"s3://{bucket}/{key}?versionId={version}"
    return f"{run.get('dataset')} version {version}"


def _lineage_section(
    runs: Sequence[Mapping[str, Any]],
    models: Mapping[str, Sequence[Mapping[str, Any]]],
    document: Mapping[str, Any],
) -> str:
    endpoints: Mapping[str, Sequence[Mapping[str, Any]]] = document.get("endpoints") or {}
    datasets: Mapping[str, Sequence[Mapping[str, Any]]] = document.get("datasets") or {}
    by_run = {str(run.get("run_id")): run for run in runs}
    blocks = []
    for model, versions in sorted(models.items()):
        items = []
        for version in versions:
            number = version.get("version")
            run = by_run.get(str(version.get("run_id")), {})
            lineage = version.get("lineage") or {}
            source = _dataset_uri(
                {
                    "dataset": lineage.get("dataset", model),
                    "dataset_version_id": lineage.get("s3_version_id")
                    or run.get("dataset_version_id"),
                },
                datasets,
                document.get("datasets_bucket"),
            )
            history = [
                entry
                for entry in endpoints.get(model, [])
                if str(entry.get("model_version")) == str(number)
            ]
            served = "; ".join(
                f"{entry.get('action', 'deploy')} {entry.get('status', '')} "
                f"{entry.get('recorded_at', '')} by {principal(entry.get('deployed_by'))}".strip()
                for entry in history
            )
            run_id = version.get("run_id")
            items.append(
                f'<li id="model-{escape(model)}-{escape(str(number))}"><code>{escape(source)}'
                f'</code><span class="arrow">→</span>run <a href="#run-{escape(str(run_id))}">'
                f"<code>{escape(str(run_id))}</code></a>"
                f'<span class="arrow">→</span><b>{escape(model)} v{escape(str(number))}</b> '
                f"{_badge(version.get('status'))}"
                f'<span class="arrow">→</span>'
                f"{escape(served) if served else 'never deployed'}</li>"
            )
        blocks.append(f'<h3>{escape(model)}</h3><ul class="chain">{"".join(items)}</ul>')
    return (
        '<section id="lineage"><h2>Lineage</h2><p class="note">dataset version → run → model '
        "version → endpoint history (deployments and rollbacks of that version).</p>"
        f"{''.join(blocks) or '<p>No models.</p>'}</section>"
    )


def _artifacts_section(
    runs: Sequence[Mapping[str, Any]],
    models: Mapping[str, Sequence[Mapping[str, Any]]],
    document: Mapping[str, Any],
) -> str:
    bucket = document.get("artifacts_bucket") or "<artifacts bucket>"
    rows = []
    for run in runs:
        for name, key in sorted((run.get("artifacts") or {}).items()):
            rows.append(
                f"<tr><td>run <code>{escape(str(run.get('run_id')))}</code></td>"
                f"<td>{escape(str(name))}</td><td><code>s3://{escape(str(bucket))}/"
                f"{escape(str(key))}</code></td></tr>"
            )
    for model, versions in sorted(models.items()):
        for version in versions:
            for name, key in sorted((version.get("artifacts") or {}).items()):
                rows.append(
                    f"<tr><td>model {escape(model)} v{escape(str(version.get('version')))}</td>"
                    f"<td>{escape(str(name))}</td><td><code>s3://{escape(str(bucket))}/"
                    f"{escape(str(key))}</code></td></tr>"
                )
    return (
        '<section id="artifacts"><h2>Artifacts</h2><table><thead><tr><th>of</th><th>artifact'
        f"</th><th>where</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )
