"""Write `examples/breast_cancer.csv` from scikit-learn's bundled copy (no network needed).

Column names become snake_case (`mean radius` -> `mean_radius`) so they are valid identifiers
in contracts, model configs and SQL; the label is the int 0/1 column `target`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sklearn.datasets import load_breast_cancer

HERE = Path(__file__).resolve().parent


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def write_breast_cancer(path: Path) -> Path:
    frame = load_breast_cancer(as_frame=True).frame
    frame = frame.rename(columns={column: snake_case(str(column)) for column in frame.columns})
    frame["target"] = frame["target"].astype("int64")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else HERE / "breast_cancer.csv"
    print(write_breast_cancer(target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
