"""`driftline models list|show|approve|reject`: the model registry and manual approval.

The champion (what serving and the gate compare against) is the newest Approved version, so
approving a newer version promotes it and nothing needs archiving; rejecting takes a pending
version out of the running with the reason on record.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Mapping
from typing import Any

from driftline.aws import client, require_output, stack_outputs
from driftline.commands.runs import detail_rows, registry_errors
from driftline.errors import UsageError
from driftline.output import emit
from functions.shared.registry import ModelRegistry, ModelStatus
from functions.shared.state import utc_now


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("models", help="list, show, approve and reject model versions")
    actions = parser.add_subparsers(dest="models_command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        action = actions.add_parser(name, help=help_text)
        action.add_argument(
            "--env", default="local", help="local, dev, staging or prod (default: local)"
        )
        action.add_argument("--json", action="store_true", help="print one JSON document")
        action.set_defaults(handler=run)
        return action

    add("list", "every model with its latest version and champion")
    show = add("show", "a model's versions, or one version with --version")
    show.add_argument("model", metavar="MODEL")
    show.add_argument("--version", type=_version, help="one version's full record")
    approve = add("approve", "approve a PendingApproval version (it becomes the champion)")
    approve.add_argument("model", metavar="MODEL")
    approve.add_argument("--version", type=_version, required=True)
    approve.add_argument("--reason", help="why, kept on the version (optional)")
    reject = add("reject", "reject a PendingApproval version")
    reject.add_argument("model", metavar="MODEL")
    reject.add_argument("--version", type=_version, required=True)
    reject.add_argument("--reason", required=True, help="why, kept on the version")


def _version(text: str) -> int:
    cleaned = text[1:] if text[:1] in ("v", "V") else text
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise argparse.ArgumentTypeError(f"expected a version number like 3 or v3, got {text!r}")
    return int(cleaned)


def models_registry(env: str) -> ModelRegistry:
    table = require_output(stack_outputs(env), "ModelsTableName", env)
    return ModelRegistry(client("dynamodb"), table)


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def run(args: argparse.Namespace) -> int:
    with registry_errors():
        registry = models_registry(args.env)
        command = args.models_command
        if command == "list":
            models = [model_summary(registry, name) for name in registry.list_models()]
            emit(models, as_json=args.json)
        elif command == "show" and args.version is None:
            document = model_document(registry, args.model)
            rows = [version_row(v, document["champion"]) for v in document["versions"]]
            emit(document, as_json=args.json, rows=rows)
        elif command == "show":
            record = version_record(registry, args.model, args.version)
            emit(record, as_json=args.json, rows=detail_rows(record))
        else:
            status: ModelStatus = "Approved" if command == "approve" else "Rejected"
            fields: dict[str, Any] = {"decided_at": utc_now(), "decided_by": _who()}
            if args.reason:
                fields["reason"] = args.reason
            registry.decide(args.model, args.version, status, fields)
            record = version_record(registry, args.model, args.version)
            emit(record, as_json=args.json, rows=detail_rows(record))
    return 0


def _versions(registry: ModelRegistry, model: str) -> list[dict[str, Any]]:
    versions = list(registry.versions(model))
    if not versions:
        raise UsageError(f"unknown model '{model}' (see `driftline models list`)")
    return versions


def _champion_version(versions: list[dict[str, Any]]) -> int | None:
    return next((int(v["version"]) for v in versions if v.get("status") == "Approved"), None)


def version_record(registry: ModelRegistry, model: str, version: int) -> dict[str, Any]:
    versions = _versions(registry, model)
    record = next((v for v in versions if int(v["version"]) == version), None)
    if record is None:
        known = ", ".join(str(v["version"]) for v in reversed(versions))
        raise UsageError(f"model '{model}' has no version {version} (versions: {known})")
    return {**record, "champion": _champion_version(versions) == version}


def model_document(registry: ModelRegistry, model: str) -> dict[str, Any]:
    versions = _versions(registry, model)
    return {"model": model, "champion": _champion_version(versions), "versions": versions}


def model_summary(registry: ModelRegistry, model: str) -> dict[str, Any]:
    versions = list(registry.versions(model))
    latest = versions[0] if versions else {}
    return {
        "model": model,
        "versions": len(versions),
        "latest": latest.get("version"),
        "latest_status": latest.get("status"),
        "champion": _champion_version(versions),
        "pending": sum(1 for v in versions if v.get("status") == "PendingApproval"),
    }


def version_row(record: Mapping[str, Any], champion: int | None) -> dict[str, Any]:
    metric = record.get("primary_metric")
    value = (record.get("metrics") or {}).get(metric) if metric else None
    return {
        "version": record.get("version"),
        "status": record.get("status"),
        "created_at": record.get("created_at"),
        "run": record.get("run_id"),
        "metric": f"{metric}={value:.4f}" if isinstance(value, (int, float)) else None,
        "champion": "yes" if record.get("version") == champion else "",
    }
