"""`driftline models list|show|approve|reject|promote|check`: the model registry and approval.

The champion (what the gate compares against) is the version the model's endpoint serves,
read from the Endpoints table: an Approved version that never went live (deploy refused,
failed or rolled back) is not the champion. Approving a pending version lets the next deploy
make it the champion; rejecting takes it out of the running with the reason on record.

Promotion across environments is explicit: `promote` copies an Approved version's artifacts
into the target env's bucket under the target registry's next version, and the target env's
own approval policy (cdk.json) decides whether it arrives Approved or PendingApproval.
`promote --auto` does it for every champion that soaked without an alarm
(driftline/promotion.py).

`check FILE` is offline: the model config checks Prepare applies (see docs/models.md).
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from driftline.aws import client, require_output, stack_outputs
from driftline.checks import check_contract, check_model_config
from driftline.commands.runs import detail_rows, registry_errors
from driftline.envs import add_env_action, env_names
from driftline.errors import UsageError
from driftline.output import emit
from driftline.twin.synth import project_root
from functions.shared.endpoints import EndpointRegistry
from functions.shared.errors import error_code
from functions.shared.registry import ModelRegistry, ModelStatus
from functions.shared.state import utc_now
from pipelines.keys import REGISTERED, model_artifact


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "models", help="list, show, approve, reject and promote model versions; check a config"
    )
    actions = parser.add_subparsers(dest="models_command", required=True)

    add = functools.partial(add_env_action, actions, handler=run)

    add("list", "every model with its latest version and champion")
    show = add("show", "a model's versions, or one version with --version")
    add_model_argument(show)
    show.add_argument("--version", type=_version, help="one version's full record")
    approve = add("approve", "approve a PendingApproval version (it becomes the champion)")
    add_model_argument(approve)
    approve.add_argument("--version", type=_version, required=True)
    approve.add_argument("--reason", help="why, kept on the version (optional)")
    reject = add("reject", "reject a PendingApproval version")
    add_model_argument(reject)
    reject.add_argument("--version", type=_version, required=True)
    reject.add_argument("--reason", required=True, help="why, kept on the version")
    promote = actions.add_parser(
        "promote", help="copy an Approved version into another env's registry and bucket"
    )
    promote.add_argument("--model", required=True, help="model name")
    promote.add_argument("--version", type=_version, required=True, help="an Approved version")
    promote.add_argument(
        "--to", dest="to_env", required=True, choices=env_names(), metavar="ENV", help="target env"
    )
    promote.add_argument(
        "--from",
        dest="from_env",
        default="local",
        choices=env_names(),
        metavar="ENV",
        help="source env (default: local)",
    )
    promote.add_argument("--from-profile", help="AWS profile for the source env (default chain)")
    promote.add_argument("--to-profile", help="AWS profile for the target env (default chain)")
    promote.add_argument("--json", action="store_true", help="print one JSON document")
    from driftline.promotion import add_auto_arguments

    add_auto_arguments(promote)
    promote.set_defaults(handler=run)
    check = actions.add_parser(
        "check",
        help="check a model config offline, exactly as the Prepare step does",
        description="Exit 0 with a summary when Prepare would accept the config; otherwise one "
        "line naming the file and the key, exit 2. Format: docs/models.md.",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="a model config (YAML)")
    check.add_argument(
        "--contract", type=Path, help="also resolve target and features against this contract"
    )
    check.add_argument("--json", action="store_true", help="print one JSON document")
    check.set_defaults(handler=run_check)


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """`--model M`, as every command spells it; `models show M` (positional) still works."""
    parser.add_argument("--model", dest="model_option", metavar="MODEL", help="model name")
    parser.add_argument("model", metavar="MODEL", nargs="?", help=argparse.SUPPRESS)


def resolve_model(args: argparse.Namespace) -> str:
    """The model named by --model or positionally (they must agree when both are given)."""
    option, positional = args.model_option, args.model
    if option and positional and option != positional:
        raise UsageError(f"two models named: --model {option} and {positional}: give one")
    model = option or positional
    if not model:
        raise UsageError(f"models {args.models_command}: --model MODEL is required")
    return str(model)


def run_check(args: argparse.Namespace) -> int:
    columns = None
    if args.contract is not None:
        columns = check_contract(args.contract).column_types()
    checked = check_model_config(args.file, columns)
    summary = checked.summary(str(args.file))
    emit(summary, as_json=args.json, rows=check_rows(summary))
    return 0


def check_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The summary in reading order; the feature list shortened to fit a line."""
    features = summary["features"]
    if features is None:
        shown = "every contract column except the target (pass --contract to resolve them)"
    else:
        head = ", ".join(features[:6]) + (", ..." if len(features) > 6 else "")
        shown = f"{len(features)}: {head}"
    rows = [
        {"field": "file", "value": summary["file"]},
        {"field": "task", "value": summary["task"]},
        {"field": "target", "value": summary["target"]},
        {"field": "estimator", "value": summary["estimator"]},
        *(
            {"field": f"estimator.params.{name}", "value": value}
            for name, value in summary["estimator_params"].items()
        ),
        {"field": "metrics", "value": ", ".join(summary["metrics"])},
        {"field": "primary_metric", "value": summary["primary_metric"]},
        *({"field": f"split.{k}", "value": v} for k, v in summary["split"].items()),
        *(
            {"field": f"gate.{section}.{metric}", "value": value}
            for section in ("thresholds", "max_regression")
            for metric, value in summary["gate"][section].items()
        ),
        {"field": "approval", "value": summary["approval"]},
        {"field": "features", "value": shown},
    ]
    return rows


def _version(text: str) -> int:
    cleaned = text[1:] if text[:1] in ("v", "V") else text
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise argparse.ArgumentTypeError(f"expected a version number like 3 or v3, got {text!r}")
    return int(cleaned)


def models_registry(env: str) -> ModelRegistry:
    table = require_output(stack_outputs(env), "ModelsTableName", env)
    return ModelRegistry(client("dynamodb"), table)


class ServedVersions:
    """The version each model's endpoint serves (the champion), read once per model."""

    def __init__(self, env: str) -> None:
        table = stack_outputs(env).get("EndpointsTableName")
        self._registry = EndpointRegistry(client("dynamodb"), table) if table else None
        self._seen: dict[str, int | None] = {}

    def __call__(self, model: str) -> int | None:
        if model not in self._seen:
            current = self._registry.current(model) if self._registry is not None else None
            version = current.get("model_version") if current is not None else None
            self._seen[model] = int(version) if version is not None else None
        return self._seen[model]


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def run(args: argparse.Namespace) -> int:
    if args.models_command == "promote":
        return promote(args)
    if args.models_command != "list":
        args.model = resolve_model(args)
    with registry_errors():
        registry = models_registry(args.env)
        served = ServedVersions(args.env)
        command = args.models_command
        if command == "list":
            models = [
                model_summary(registry, name, served(name)) for name in registry.list_models()
            ]
            emit(models, as_json=args.json)
        elif command == "show" and args.version is None:
            document = model_document(registry, args.model, served(args.model))
            rows = [version_row(v, document["champion"]) for v in document["versions"]]
            emit(document, as_json=args.json, rows=rows)
        elif command == "show":
            record = version_record(registry, args.model, args.version, served(args.model))
            emit(record, as_json=args.json, rows=detail_rows(record))
        else:
            status: ModelStatus = "Approved" if command == "approve" else "Rejected"
            fields: dict[str, Any] = {"decided_at": utc_now(), "decided_by": _who()}
            if args.reason:
                fields["reason"] = args.reason
            registry.decide(args.model, args.version, status, fields)
            record = version_record(registry, args.model, args.version, served(args.model))
            emit(record, as_json=args.json, rows=detail_rows(record))
    return 0


def _versions(registry: ModelRegistry, model: str) -> list[dict[str, Any]]:
    versions = list(registry.versions(model))
    if not versions:
        raise UsageError(f"unknown model '{model}' (see `driftline models list`)")
    return versions


def version_record(
    registry: ModelRegistry, model: str, version: int, served: int | None = None
) -> dict[str, Any]:
    """One version's record; `champion` says whether it is `served` (what the endpoint serves)."""
    versions = _versions(registry, model)
    record = next((v for v in versions if int(v["version"]) == version), None)
    if record is None:
        known = ", ".join(str(v["version"]) for v in reversed(versions))
        raise UsageError(f"model '{model}' has no version {version} (versions: {known})")
    return {**record, "champion": served == version}


def model_document(registry: ModelRegistry, model: str, served: int | None) -> dict[str, Any]:
    versions = _versions(registry, model)
    return {"model": model, "champion": served, "versions": versions}


def model_summary(registry: ModelRegistry, model: str, served: int | None) -> dict[str, Any]:
    versions = list(registry.versions(model))
    latest = versions[0] if versions else {}
    return {
        "model": model,
        "versions": len(versions),
        "latest": latest.get("version"),
        "latest_status": latest.get("status"),
        "champion": served,
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


# Fields of the source version that describe the model itself and so travel with it.
_PROMOTED_FIELDS = ("run_id", "metrics", "primary_metric", "estimator", "lineage")
MAX_ALLOCATIONS = 5


class _Env:
    """One env's registry and artifacts bucket, reached through its own profile (or the chain)."""

    def __init__(self, name: str, profile: str | None) -> None:
        outputs = stack_outputs(name, profile=profile)
        self.name = name
        self.bucket = require_output(outputs, "ArtifactsBucketName", name)
        table = require_output(outputs, "ModelsTableName", name)
        self.registry = ModelRegistry(client("dynamodb", profile=profile), table)
        self.s3 = client("s3", profile=profile)
        endpoints = outputs.get("EndpointsTableName")
        self.endpoints = (
            EndpointRegistry(client("dynamodb", profile=profile), endpoints) if endpoints else None
        )

    def served(self, model: str) -> tuple[int, str | None] | None:
        """The champion: (version the model's endpoint serves in this env, since when)."""
        current = self.endpoints.current(model) if self.endpoints is not None else None
        version = current.get("model_version") if current is not None else None
        if version is None:
            return None
        return int(version), current.get("deployed_at") if current is not None else None


def approval_status(env: str) -> ModelStatus:
    """The status a promoted version starts in: the target env's policy from cdk.json."""
    from infra.config import ApprovalPolicy, ConfigError, load_env_config

    cdk_json = project_root() / "cdk.json"
    try:
        document = json.loads(cdk_json.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"cannot read {cdk_json}: {error}") from None
    context = document.get("context") if isinstance(document, dict) else None
    if not isinstance(context, dict):
        raise UsageError(f"{cdk_json}: key 'context' is missing or not an object")
    try:
        policy = load_env_config(context, env).approval_policy
    except ConfigError as error:
        raise UsageError(f"{cdk_json}: {error}") from None
    return "Approved" if policy is ApprovalPolicy.AUTOMATIC else "PendingApproval"


def promoted_version(registry: ModelRegistry, model: str, env: str, version: int) -> int | None:
    """The target version already promoted from (env, version), so a repeat can be refused."""
    for record in registry.versions(model):
        origin = record.get("promoted_from") or {}
        if origin.get("env") == env and origin.get("version") == version:
            return int(record["version"])
    return None


def _copy_artifacts(
    source: _Env, source_keys: Mapping[str, str], target: _Env, model: str, version: int
) -> dict[str, str]:
    """Read from the source and write to the target, so the envs may be different accounts."""
    copied: dict[str, str] = {}
    for artifact, source_key in source_keys.items():
        target_key = model_artifact(model, version, artifact)
        try:
            response = source.s3.get_object(Bucket=source.bucket, Key=source_key)
        except ClientError as error:
            raise UsageError(
                f"cannot read s3://{source.bucket}/{source_key} in env {source.name!r}: "
                f"{error_code(error)}"
            ) from None
        extra = {"ContentType": response["ContentType"]} if response.get("ContentType") else {}
        try:
            target.s3.upload_fileobj(
                response["Body"], target.bucket, target_key, ExtraArgs=extra or None
            )
        except ClientError as error:
            raise UsageError(
                f"cannot write s3://{target.bucket}/{target_key} in env {target.name!r}: "
                f"{error_code(error)}"
            ) from None
        copied[artifact.split(".")[0]] = target_key
    return copied


def _source_keys(record: Mapping[str, Any], model: str, version: int) -> dict[str, str]:
    """Artifact file name → source key: the keys on the record, else the registry layout."""
    recorded = record.get("artifacts") or {}
    return {
        artifact: str(
            recorded.get(artifact.split(".")[0]) or model_artifact(model, version, artifact)
        )
        for artifact in REGISTERED
    }


def copy_version(
    source: _Env,
    target: _Env,
    record: Mapping[str, Any],
    *,
    status: ModelStatus,
    promoted_by: str,
    decided_by: str,
    promotion: Mapping[str, Any] | None = None,
) -> int:
    """The artifacts and the registry record, under the target registry's next version.

    Shared by `promote` and `promote --auto`, so a version promoted either way carries the
    same lineage fields; `promotion` records why an automatic promotion happened.
    """
    model, version = str(record["model"]), int(record["version"])
    source_keys = _source_keys(record, model, version)
    created_at = utc_now()
    for _ in range(MAX_ALLOCATIONS):
        new_version = target.registry.allocate_version(model)
        # The counter may trail an existing item (restored table): never overwrite its files.
        if target.registry.get_version(model, new_version) is not None:
            continue
        artifacts = _copy_artifacts(source, source_keys, target, model, new_version)
        promoted: dict[str, Any] = {
            "model": model,
            "version": new_version,
            "status": status,
            "created_at": created_at,
            "model_key": artifacts["model"],
            "artifacts": artifacts,
            **{name: record[name] for name in _PROMOTED_FIELDS if name in record},
            "promoted_from": {
                "env": source.name,
                "version": version,
                "model_key": record.get("model_key", source_keys[REGISTERED[0]]),
            },
            "promoted_by": promoted_by,
        }
        if promotion is not None:
            promoted["promotion"] = dict(promotion)
        if status == "Approved":
            promoted |= {"decided_at": created_at, "decided_by": decided_by}
        if target.registry.put_version(promoted):
            return int(new_version)
    raise UsageError(
        f"model '{model}' in env {target.name!r}: no free version after {MAX_ALLOCATIONS} attempts"
    )


def promote(args: argparse.Namespace) -> int:
    from driftline.promotion import require_explicit, run_auto

    if args.auto:
        return run_auto(args)
    require_explicit(args)
    model, version = args.model, args.version
    if args.from_env == args.to_env:
        raise UsageError(f"--from and --to are both {args.to_env!r}: promote to another env")
    with registry_errors():
        status = approval_status(args.to_env)
        source = _Env(args.from_env, args.from_profile)
        record = version_record(source.registry, model, version)
        if record.get("status") != "Approved":
            raise UsageError(
                f"model '{model}' version {version} in env {args.from_env!r} is "
                f"{record.get('status')}, not Approved: only Approved versions are promoted"
            )
        target = _Env(args.to_env, args.to_profile)
        existing = promoted_version(target.registry, model, args.from_env, version)
        if existing is not None:
            raise UsageError(
                f"model '{model}' version {version} from env {args.from_env!r} is already "
                f"version {existing} in env {args.to_env!r}"
            )
        new_version = copy_version(
            source,
            target,
            record,
            status=status,
            promoted_by=_who(),
            decided_by="policy:automatic",
        )
        document = version_record(target.registry, model, new_version)
    emit(document, as_json=args.json, rows=detail_rows(document))
    return 0
