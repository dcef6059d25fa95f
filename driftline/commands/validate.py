"""`driftline validate FILE --contract CONTRACT [--json]`: the validator Lambda's check, offline.

It runs the one validator in `pipelines.validation` on a local `.csv`, `.csv.gz` or `.parquet`
file. The report is printed before the exit code is decided: 0 valid, 1 invalid data (every
violation listed), 2 unusable input (missing file, unknown format, broken contract).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftline.errors import NegativeVerdict, UsageError
from driftline.output import emit

if TYPE_CHECKING:  # pyarrow loads only when the command runs (cold start of the CLI)
    from pipelines.contracts import Contract
    from pipelines.validation import ValidationReport


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a data file against its contract and profile it",
        description="Exit 0 valid, 1 invalid data, 2 unusable input or contract.",
    )
    parser.add_argument("file", type=Path, help="a .csv, .csv.gz or .parquet file")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--contract", type=Path, help="the contract YAML file")
    source.add_argument("--dataset", help="find the contract as <contracts-dir>/<dataset>.yaml")
    parser.add_argument(
        "--contracts-dir",
        type=Path,
        default=Path("contracts"),
        help="where --dataset looks (default: contracts)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def load(args: argparse.Namespace) -> Contract:
    from pipelines.contracts import ContractError, load_contract, resolve_contract

    try:
        if args.contract is not None:
            return load_contract(args.contract)
        return resolve_contract(args.dataset, args.contracts_dir)
    except ContractError as error:
        raise UsageError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    from pipelines.tabular_io import InputError
    from pipelines.validation import validate

    contract = load(args)
    try:
        report = validate(args.file, contract)
    except InputError as error:
        raise UsageError(str(error)) from None
    emit(report.to_dict(), as_json=args.json, rows=_rows(report))
    if report.valid and not args.json:
        warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
        print(
            f"valid: {args.file} matches contract {contract.dataset!r} "
            f"({report.rows:,} rows, {len(report.columns)} columns{warned})"
        )
    if not report.valid:
        rules = sorted({violation.rule for violation in report.violations})
        raise NegativeVerdict(
            f"{args.file}: invalid against contract {contract.dataset!r}: "
            f"{len(report.violations)} violation(s) ({', '.join(rules)})"
        )
    return 0


def _rows(report: ValidationReport) -> list[dict[str, Any]]:
    """Violations when there are any; otherwise the profile, one row per column."""
    if report.violations:
        return [
            {
                "column": violation.column,
                "rule": violation.rule,
                "count": violation.count,
                "rows": ",".join(str(row) for row in violation.rows) or None,
                "message": violation.message,
            }
            for violation in report.violations
        ]
    rows = []
    for name, column in report.profile.columns.items():
        numeric = column.numeric
        top = column.categories.top(3) if column.categories is not None else []
        rows.append(
            {
                "column": name,
                "type": column.type,
                "rows": column.rows,
                "null_rate": column.null_rate,
                "min": numeric.min if numeric else None,
                "max": numeric.max if numeric else None,
                "mean": numeric.mean if numeric and numeric.count else None,
                "std": numeric.std if numeric else None,
                "top": ", ".join(f"{value} ({count})" for value, count in top) or None,
            }
        )
    return rows
