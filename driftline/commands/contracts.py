"""`driftline contracts infer|check`: write a first contract from a sample, or check contracts.

`infer FILE --dataset D` prints a proposed contract (YAML) for a known-good sample; redirect it
to `contracts/<D>.yaml` and tighten it by hand. Without `--dataset` the name comes from a
`datasets/<D>/` folder the file sits in, else from the file name, and stderr says which.
`check CONTRACT...` loads contracts the way the pipeline does and prints each one's dataset,
column count and hash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from driftline.errors import UsageError
from driftline.output import emit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("contracts", help="infer or check data contracts")
    actions = parser.add_subparsers(dest="contracts_command", required=True)
    infer = actions.add_parser(
        "infer",
        help="print a proposed contract (YAML) for a known-good sample",
        description="Redirect the output to contracts/<dataset>.yaml and edit it.",
    )
    infer.add_argument("file", type=Path, help="a .csv, .csv.gz or .parquet sample")
    infer.add_argument(
        "--dataset",
        help="dataset name; default: <D> for a file under datasets/<D>/, else from the file "
        "name (said on stderr)",
    )
    infer.add_argument("--target", help="target column (default: a column named target/label)")
    infer.set_defaults(handler=run_infer)
    check = actions.add_parser("check", help="load contracts and print their hashes")
    check.add_argument("contracts", type=Path, nargs="+", help="contract YAML files")
    check.add_argument("--json", action="store_true", help="print one JSON document")
    check.set_defaults(handler=run_check)


def run_infer(args: argparse.Namespace) -> int:
    from pipelines.contract_inference import contract_to_yaml, dataset_name_for, infer_contract
    from pipelines.contracts import ContractError
    from pipelines.tabular_io import InputError

    folder = dataset_folder(args.file)
    if args.dataset is not None:
        dataset = args.dataset
        if folder is not None and folder != dataset:
            print(
                f"driftline: note: {args.file} sits under datasets/{folder}/ but the contract "
                f"is for dataset {dataset!r} (--dataset)",
                file=sys.stderr,
            )
    elif folder is not None:
        dataset = folder
        print(
            f"driftline: note: dataset {dataset!r} from the folder datasets/{dataset}/; "
            "pass --dataset to choose another",
            file=sys.stderr,
        )
    else:
        dataset = dataset_name_for(args.file)
        print(
            f"driftline: note: dataset {dataset!r} from the file name {args.file.name}; "
            "pass --dataset to choose another",
            file=sys.stderr,
        )
    try:
        contract = infer_contract(args.file, dataset=dataset, target=args.target)
    except (InputError, ContractError) as error:
        raise UsageError(str(error)) from None
    except ValueError as error:  # pydantic: e.g. a --dataset that is not a plain name
        raise UsageError(f"cannot build a contract: {str(error).splitlines()[0]}") from None
    sys.stdout.write(
        f"# Proposed by `driftline contracts infer {args.file} --dataset {dataset}`; review it.\n"
    )
    sys.stdout.write(contract_to_yaml(contract))
    return 0


def dataset_folder(path: Path) -> str | None:
    """`<D>` when the file sits in a `datasets/<D>/` folder (the bucket's layout), else None."""
    parents = path.resolve().parent.parts
    for index in range(len(parents) - 1, 0, -1):
        if parents[index - 1] == "datasets":
            return parents[index]
    return None


def run_check(args: argparse.Namespace) -> int:
    from pipelines.contracts import ContractError, contract_hash, load_contract

    rows = []
    for path in args.contracts:
        try:
            contract = load_contract(path)
        except ContractError as error:
            raise UsageError(str(error)) from None
        rows.append(
            {
                "file": str(path),
                "dataset": contract.dataset,
                "columns": len(contract.columns),
                "target": contract.target,
                "hash": contract_hash(contract),
            }
        )
    emit(rows, as_json=args.json)
    return 0
