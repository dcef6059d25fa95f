"""`driftline runs list|show|compare|wait|logs|rerun`: training runs.

`list`, `show` and `compare` read the Runs registry; `wait`, `logs` and `rerun` work from the
run's Step Functions execution (the run id is the execution name), see `driftline.run_follow`.

`compare A B` puts two runs' parameters and metrics side by side with B - A deltas, the
question after every retrain ("what changed, and did it help?").
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from driftline.aws import client, require_output, stack_outputs
from driftline.envs import add_env_action
from driftline.errors import UsageError
from driftline.output import emit, print_table, shorten_list
from functions.shared.errors import TransientError
from functions.shared.registry import RegistryError, RunRegistry

SPLIT_ORDER = ("test", "validation", "train")
DEFAULT_WAIT_SECONDS = 3600.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "runs", help="list, show, compare, wait for, read the logs of and rerun training runs"
    )
    actions = parser.add_subparsers(dest="runs_command", required=True)

    add = functools.partial(add_env_action, actions, handler=run)

    listing = add("list", "runs, newest first")
    listing.add_argument("--dataset", help="only this dataset's runs")
    listing.add_argument("--limit", type=_positive, default=20, help="at most N runs (20)")
    add("show", "one run: params, metrics, gate, artifacts, durations").add_argument(
        "run_id", metavar="RUN"
    )
    compare = add("compare", "two runs side by side, with B - A deltas")
    compare.add_argument("run_a", metavar="RUN_A")
    compare.add_argument("run_b", metavar="RUN_B")
    waiting = add(
        "wait",
        "follow a run step by step until it ends (exit 0 deployed, 1 a 'no', 2 failed)",
    )
    waiting.add_argument("run_id", metavar="RUN", help="run id (execution name) or ARN")
    add_timeout(waiting)
    logs = add("logs", "the CloudWatch Logs lines of a run's Lambda steps")
    logs.add_argument("run_id", metavar="RUN", help="run id (execution name) or ARN")
    logs.add_argument("--step", help="only this step (e.g. Validate, Prepare, Train)")
    rerun = add("rerun", "start the pipeline again on the run's accepted dataset version")
    rerun.add_argument("run_id", metavar="RUN", help="run id (execution name) or ARN")
    rerun.add_argument("--wait", action="store_true", help="then follow it like `runs wait`")
    add_timeout(rerun)


def add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_WAIT_SECONDS,
        help=f"give up after S seconds (default {DEFAULT_WAIT_SECONDS:g}; the run goes on)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


@contextmanager
def registry_errors() -> Iterator[None]:
    """Registry lookups and throttling as one-line CLI errors (exit 2)."""
    try:
        yield
    except RegistryError as error:
        raise UsageError(str(error)) from None
    except TransientError as error:
        raise UsageError(f"AWS call failed: {error}") from None


def runs_registry(env: str) -> RunRegistry:
    table = require_output(stack_outputs(env), "RunsTableName", env)
    return RunRegistry(client("dynamodb"), table)


def run(args: argparse.Namespace) -> int:
    if args.runs_command in ("wait", "logs", "rerun"):
        from driftline import run_follow

        with registry_errors():
            if args.runs_command == "wait":
                return run_follow.wait_command(args.env, args.run_id, args.timeout, args.json)
            if args.runs_command == "logs":
                return run_follow.logs_command(args.env, args.run_id, args.step, args.json)
            return run_follow.rerun_command(
                args.env, args.run_id, wait=args.wait, timeout=args.timeout, as_json=args.json
            )
    with registry_errors():
        registry = runs_registry(args.env)
        if args.runs_command == "list":
            from driftline.undelivered import with_uploads_not_started

            runs = registry.list_runs(dataset=args.dataset, limit=args.limit)
            runs = with_uploads_not_started(args.env, runs, dataset=args.dataset, limit=args.limit)
            emit(runs, as_json=args.json, rows=[summary_row(r) for r in runs])
        elif args.runs_command == "show":
            record = registry.require_run(args.run_id)
            if args.json:
                emit(record, as_json=True)
            else:
                print_run(record)
            return show_exit_code(record)
        else:
            first, second = registry.require_run(args.run_a), registry.require_run(args.run_b)
            document = compare_runs(first, second)
            emit(document, as_json=args.json, rows=comparison_rows(document))
    return 0


def show_exit_code(record: Mapping[str, Any]) -> int:
    """0 for a run whose model serves; 1 for a negative verdict (rejected, gated out, or
    registered but not deployed); 2 for a failed run."""
    status = record.get("status")
    if status == "Failed":
        return 2
    if status == "Rejected" or record.get("deployment_status") == "NotDeployed":
        return 1
    return 0


def _test_metric(record: Mapping[str, Any]) -> tuple[str | None, Any]:
    metric = record.get("primary_metric")
    test = (record.get("metrics") or {}).get("test") or {}
    return metric, (test.get(metric) if metric else None)


def summary_row(record: Mapping[str, Any]) -> dict[str, Any]:
    metric, value = _test_metric(record)
    return {
        "run": record.get("run_id"),
        "dataset": record.get("dataset"),
        "status": record.get("status"),
        "trigger": record.get("trigger"),
        "started_at": record.get("started_at"),
        "seconds": record.get("duration_total"),
        "metric": f"{metric}={value:.4f}" if isinstance(value, (int, float)) else None,
        "model_version": record.get("model_version"),
        "deployed": {"Deployed": "yes", "NotDeployed": "NO"}.get(
            str(record.get("deployment_status"))
        ),
    }


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested maps as dotted keys; lists stay values (one table cell)."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def detail_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"field": key, "value": value} for key, value in sorted(flatten(record).items())]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _delta(a: Any, b: Any) -> float | None:
    return float(b) - float(a) if _is_number(a) and _is_number(b) else None


def compare_runs(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    params_a = flatten(first.get("params") or {})
    params_b = flatten(second.get("params") or {})
    params = [
        {
            "name": name,
            "a": params_a.get(name),
            "b": params_b.get(name),
            "same": _canonical(params_a.get(name)) == _canonical(params_b.get(name)),
        }
        for name in sorted(set(params_a) | set(params_b))
    ]
    metrics_a, metrics_b = first.get("metrics") or {}, second.get("metrics") or {}
    splits = [s for s in SPLIT_ORDER if s in metrics_a or s in metrics_b]
    metrics = []
    for split in splits:
        values_a, values_b = metrics_a.get(split) or {}, metrics_b.get(split) or {}
        for metric in [*values_a, *(m for m in values_b if m not in values_a)]:
            a, b = values_a.get(metric), values_b.get(metric)
            metrics.append(
                {"split": split, "metric": metric, "a": a, "b": b, "delta": _delta(a, b)}
            )
    return {
        "runs": {
            "a": _identity(first),
            "b": _identity(second),
        },
        "params": params,
        "metrics": metrics,
    }


def _identity(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: record.get(key)
        for key in ("run_id", "dataset", "status", "dataset_version_id", "code_version")
    }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def readable(value: Any, name: str) -> Any:
    """A cell for a person: a list becomes its size and first items, named for the field."""
    if isinstance(value, list):
        noun = name.rsplit(".", 1)[-1].replace("_", " ") or "items"
        return shorten_list(value, noun=noun)
    return value


def _list_change(a: Any, b: Any) -> str:
    """What changed between two lists: `+2 -1` items (or `reordered`)."""
    if not (isinstance(a, list) and isinstance(b, list)):
        return "changed"
    added = [v for v in b if v not in a]
    removed = [v for v in a if v not in b]
    if not added and not removed:
        return "reordered"
    parts = []
    if added:
        parts.append("+" + ", +".join(str(v) for v in added[:3]) + (" …" if len(added) > 3 else ""))
    if removed:
        parts.append(
            "-" + ", -".join(str(v) for v in removed[:3]) + (" …" if len(removed) > 3 else "")
        )
    return "; ".join(parts)


def comparison_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"field": f"run.{key}", "a": value, "b": document["runs"]["b"][key], "delta": None}
        for key, value in document["runs"]["a"].items()
    ]
    rows.extend(
        {
            "field": f"params.{param['name']}",
            "a": readable(param["a"], param["name"]),
            "b": readable(param["b"], param["name"]),
            "delta": None if param["same"] else _list_change(param["a"], param["b"]),
        }
        for param in document["params"]
    )
    rows.extend(
        {
            "field": f"{metric['split']}.{metric['metric']}",
            "a": metric["a"],
            "b": metric["b"],
            "delta": None if metric["delta"] is None else f"{metric['delta']:+.4f}",
        }
        for metric in document["metrics"]
    )
    return rows


# The pipeline's steps in order, as their `duration_<step>` fields on the run record.
STEP_ORDER = ("validate", "prepare", "train", "evaluate", "gate", "register", "deploy")
_SUMMARY_FIELDS = (
    "run_id",
    "dataset",
    "status",
    "trigger",
    "started_at",
    "finished_at",
    "duration_total",
    "model_version",
    "model_status",
    "deployment_status",
    "deployment_reason",
    "cause",
    "failed_step",
    "dataset_version_id",
    "code_version",
)
BAR_WIDTH = 30


def step_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per step that recorded a duration, in pipeline order, with a bar to scale."""
    durations = {
        key.removeprefix("duration_"): float(value)
        for key, value in record.items()
        if key.startswith("duration_") and key != "duration_total" and _is_number(value)
    }
    ordered = [step for step in STEP_ORDER if step in durations]
    ordered += sorted(step for step in durations if step not in STEP_ORDER)
    longest = max(durations.values(), default=0.0) or 1.0
    total = float(record.get("duration_total") or 0) or sum(durations.values()) or 1.0
    rows = []
    elapsed = 0.0
    for step in ordered:
        seconds = durations[step]
        bar = "█" * max(1, round(BAR_WIDTH * seconds / longest)) if seconds > 0 else ""
        rows.append(
            {
                "step": step,
                "starts_at_s": round(elapsed, 1),
                "seconds": round(seconds, 2),
                "share": f"{seconds / total:.0%}",
                "": bar,
            }
        )
        elapsed += seconds
    return rows


def metric_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per metric, one column per split; the primary metric first and marked."""
    metrics = record.get("metrics") or {}
    splits = [split for split in SPLIT_ORDER if metrics.get(split)]
    splits += sorted(split for split in metrics if split not in SPLIT_ORDER and metrics[split])
    names: list[str] = []
    for split in splits:
        names += [name for name in metrics[split] if name not in names]
    primary = record.get("primary_metric")
    if primary in names:
        names.remove(primary)
        names.insert(0, primary)
    return [
        {
            "metric": f"{name} *" if name == primary else name,
            **{split: (metrics[split] or {}).get(name) for split in splits},
        }
        for name in names
    ]


def print_run(record: Mapping[str, Any]) -> None:
    """`runs show` for a person: summary, step timeline, metrics, then everything else."""
    summary = [{"field": key, "value": record[key]} for key in _SUMMARY_FIELDS if key in record]
    print_table(summary, title=f"run {record.get('run_id')}")
    steps = step_rows(record)
    if steps:
        print()
        print_table(steps, title="steps (seconds; bar to scale)")
    metrics = metric_rows(record)
    if metrics:
        print()
        print_table(metrics, title="metrics (* = primary)")
    shown = set(_SUMMARY_FIELDS) | {"metrics", "primary_metric", "pk", "sk"}
    rest = {
        key: value
        for key, value in record.items()
        if key not in shown and not (key.startswith("duration_") and _is_number(value))
    }
    if rest:
        print()
        print_table(
            [
                {"field": key, "value": readable(value, key)}
                for key, value in sorted(flatten(rest).items())
            ],
            title="params, gate, artifacts, lineage",
        )
