"""`driftline cost --env ENV [--json]`: the env's monthly cost, idle and with a usage profile.

The env is synthesized (or `--cdk-out DIR` names an assembly already synthesized for it) and its
templates counted; the usage profile is docs/usage_profile.yaml, or `--profile FILE`, with any
flag overriding one value; prices come from docs/prices.yaml (dated, with sources). Offline: no
AWS call. How each line is computed: docs/cost.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from driftline.errors import UsageError
from driftline.output import emit
from driftline.twin.synth import project_root, synthesize
from pipelines.cost import UsageProfile, estimate, inventory, line_dicts, totals

OVERRIDES = ("uploads_per_day", "rows_per_upload", "predictions_per_day", "drift_checks_per_day")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cost", help="estimate an env's monthly cost from its templates and a usage profile"
    )
    parser.add_argument(
        "--env", default="local", help="local, dev, staging or prod (default: local)"
    )
    parser.add_argument(
        "--profile", type=Path, help="usage profile YAML (default: docs/usage_profile.yaml)"
    )
    for name in OVERRIDES:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, dest=name)
    parser.add_argument("--prices", type=Path, help="price table (default: docs/prices.yaml)")
    parser.add_argument(
        "--cdk-out", type=Path, help="an assembly already synthesized for ENV (skips the synth)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run)


def _yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"cannot read {what} {path}: {error}") from None


def load_profile(path: Path, overrides: dict[str, float | None]) -> UsageProfile:
    document = _yaml(path, "usage profile") or {}
    if not isinstance(document, dict):
        raise UsageError(f"usage profile {path} is not a mapping of name: value")
    values = {**document, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return UsageProfile.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise UsageError(f"usage profile {path}: '{key}': {first['msg']}") from None


def load_prices(path: Path, region: str) -> tuple[dict[str, float], dict[str, Any]]:
    document = _yaml(path, "price table")
    regions = document.get("regions") if isinstance(document, dict) else None
    if not isinstance(regions, dict):
        raise UsageError(f"price table {path} has no 'regions'")
    if region not in regions:
        raise UsageError(
            f"price table {path} has no prices for region {region!r} "
            f"(regions: {', '.join(sorted(regions))})"
        )
    return {k: float(v) for k, v in regions[region].items()}, document


def templates(cdk_out: Path, env: str) -> dict[str, dict[str, Any]]:
    found = {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in sorted(cdk_out.glob(f"Driftline-{env}-*.template.json"))
    }
    if not found:
        raise UsageError(f"{cdk_out} holds no Driftline-{env}-* template: synthesize env {env!r}")
    return found


def run(args: argparse.Namespace) -> int:
    from infra.config import ConfigError, load_env_config

    root = project_root()
    try:
        context = json.loads((root / "cdk.json").read_text())["context"]
        config = load_env_config(context, args.env)
    except (OSError, KeyError, json.JSONDecodeError, ConfigError) as error:
        raise UsageError(f"cdk.json: {error}") from None
    profile_path = args.profile or root / "docs" / "usage_profile.yaml"
    profile = load_profile(profile_path, {name: getattr(args, name) for name in OVERRIDES})
    prices_path = args.prices or root / "docs" / "prices.yaml"
    prices, table = load_prices(prices_path, config.region)
    if args.cdk_out is not None:
        stacks = templates(args.cdk_out, args.env)
    else:
        with tempfile.TemporaryDirectory(prefix="driftline-cost-") as out:
            stacks = templates(synthesize(args.env, Path(out) / "cdk.out", root=root), args.env)
    found = inventory(stacks)
    days = int(table.get("days_per_month", 30))
    lines = estimate(
        found,
        profile,
        prices,
        days=days,
        drift_check_minutes=config.schedules.drift_check_minutes,
        log_retention_days=config.log_retention_days,
        sagemaker_training=config.training_backend.value == "sagemaker",
    )
    summary = totals(lines)
    document = {
        "env": args.env,
        "region": config.region,
        "prices_as_of": str(table.get("as_of")),
        "prices": str(prices_path),
        "days_per_month": days,
        "profile": profile.model_dump(),
        "inventory": found.summary(),
        "lines": line_dicts(lines),
        "totals": summary,
    }
    rows = [
        {
            "item": line.item,
            "when": "idle" if line.idle else "usage",
            "quantity": f"{line.quantity:,.4g} {line.unit}",
            "unit_price": f"${line.unit_price:g}",
            "monthly": f"${line.monthly:,.2f}",
        }
        for line in lines
    ]
    rows += [
        {
            "item": f"TOTAL {key}",
            "when": "",
            "quantity": "",
            "unit_price": "",
            "monthly": f"${value:,.2f}",
        }
        for key, value in summary.items()
    ]
    emit(document, as_json=args.json, rows=rows)
    if not args.json:
        print(
            f"env {args.env} in {config.region}, prices as of {table.get('as_of')} "
            f"({prices_path.name}); compute when idle: $0.00"
        )
    return 0
