"""What a model scored: metrics per split and the test split's diagnostics, as plain data.

numpy only (no pandas, no scikit-learn), so a step that only reads or restates the numbers,
such as the gate rendering a model card from `metrics.json`, does not pay for importing them.
`pipelines.training` computes these; `Evaluation.from_dict` reads back what `to_dict` wrote.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from pipelines.model_config import Task

SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class ConfusionMatrix:
    labels: list[Any]
    matrix: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "matrix": self.matrix}


@dataclass(frozen=True)
class ResidualSummary:
    count: int
    mean: float
    std: float
    mean_absolute: float
    max_absolute: float
    quantiles: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean": self.mean,
            "std": self.std,
            "mean_absolute": self.mean_absolute,
            "max_absolute": self.max_absolute,
            "quantiles": self.quantiles,
        }


@dataclass(frozen=True)
class Evaluation:
    """Metrics per split plus the test-split diagnostics the card and the plot show."""

    task: Task
    primary_metric: str
    metrics: dict[str, dict[str, float]]
    confusion: ConfusionMatrix | None
    residuals: ResidualSummary | None
    test_true: npt.NDArray[Any] = field(repr=False)
    test_predicted: npt.NDArray[Any] = field(repr=False)

    @property
    def test_metrics(self) -> dict[str, float]:
        return self.metrics["test"]

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Evaluation:
        """The numbers of `to_dict` back (null metrics as NaN), without the test predictions."""
        confusion = document.get("confusion_matrix")
        residuals = document.get("residuals")
        return cls(
            task=document["task"],
            primary_metric=str(document["primary_metric"]),
            metrics={
                split: {
                    name: math.nan if value is None else float(value)
                    for name, value in values.items()
                }
                for split, values in document["metrics"].items()
            },
            confusion=ConfusionMatrix(
                labels=list(confusion["labels"]),
                matrix=[[int(count) for count in row] for row in confusion["matrix"]],
            )
            if confusion is not None
            else None,
            residuals=ResidualSummary(**residuals) if residuals is not None else None,
            test_true=np.empty(0),
            test_predicted=np.empty(0),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: undefined metrics (NaN) become null."""
        document: dict[str, Any] = {
            "task": self.task,
            "primary_metric": self.primary_metric,
            "metrics": {
                split: {name: _json_float(value) for name, value in values.items()}
                for split, values in self.metrics.items()
            },
        }
        if self.confusion is not None:
            document["confusion_matrix"] = self.confusion.to_dict()
        if self.residuals is not None:
            document["residuals"] = self.residuals.to_dict()
        return document


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value
