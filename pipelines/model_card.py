"""The human-facing outputs of a training run: a Markdown model card and an evaluation plot.

The card is what a reviewer reads before a manual approval, so it carries the lineage needed
to reproduce the run (dataset version, manifest hash, code version) next to the numbers.
matplotlib is imported only when a plot is drawn, and through its object API on the Agg
canvas, so no global pyplot state or display is involved.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.evaluation import SPLITS, Evaluation
from pipelines.gating import GateDecision
from pipelines.model_config import METRICS, ModelConfig
from pipelines.model_io import DataLineage

if TYPE_CHECKING:  # pandas and scikit-learn load only where a run is trained or scored
    from pipelines.training import TrainingRun

_MAX_SCATTER_POINTS = 5000


@dataclass(frozen=True)
class CardFacts:
    """What the card says about a run: from the run in memory, or from its `metrics.json`.

    The gate renders the card from the document the training step wrote, so it never reloads
    the data or the model to restate numbers that were computed once.
    """

    config: ModelConfig
    features: int
    split: Mapping[str, Any]  # seed, stratified, sizes
    evaluation: Evaluation
    class_shares: Mapping[str, float] | None = None  # share of each class in the whole dataset

    @classmethod
    def from_run(cls, run: TrainingRun) -> CardFacts:
        return cls(
            config=run.config,
            features=len(run.prepared.features),
            split=_split_summary(run),
            evaluation=run.evaluation,
            class_shares=_class_shares(run),
        )

    @classmethod
    def from_document(
        cls, document: Mapping[str, Any], config: ModelConfig, *, features: int
    ) -> CardFacts:
        """From `metrics_document` output; `features` counts the model's input columns."""
        shares = document.get("class_shares")
        return cls(
            config=config,
            features=len(document["features"]) if "features" in document else features,
            split=document["split"],
            evaluation=Evaluation.from_dict(document),
            class_shares={str(k): float(v) for k, v in shares.items()} if shares else None,
        )


def _split_summary(run: TrainingRun) -> dict[str, Any]:
    split = run.prepared.split
    return {"seed": split.seed, "stratified": split.stratified, "sizes": split.sizes()}


def _class_shares(run: TrainingRun) -> dict[str, float] | None:
    if run.config.task != "classification":
        return None
    counts = run.prepared.y.value_counts(normalize=True)
    return {str(_plain(label)): float(share) for label, share in counts.items()}


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _cell(value: Any) -> str:
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows)
    return lines


def _automatic_limitations(facts: CardFacts) -> list[str]:
    notes = [
        "Evaluated on a random held-out split of the same dataset version; performance on "
        "data that drifts away from it is not measured here (the drift monitor watches that).",
    ]
    sizes = facts.split["sizes"]
    if sizes["test"] < 100:
        notes.append(
            f"The test split has {sizes['test']} rows; its metrics carry wide uncertainty."
        )
    shares = facts.class_shares
    if facts.config.task == "classification" and shares:
        rarest = min(shares, key=shares.__getitem__)
        share = shares[rarest]
        if share < 0.1:
            notes.append(
                f"Class '{rarest}' is {share:.1%} of the data; "
                "accuracy alone overstates quality on it."
            )
    if not facts.split["stratified"] and facts.config.task == "classification":
        notes.append("The split could not be stratified by class (a class is too small).")
    return notes


def render_model_card(
    run: TrainingRun | CardFacts,
    *,
    lineage: DataLineage,
    created_at: str,
    sklearn_version: str,
    gate: GateDecision | None = None,
) -> str:
    """Markdown card: overview, intended use, lineage, split, metrics, gate, limitations."""
    facts = run if isinstance(run, CardFacts) else CardFacts.from_run(run)
    config = facts.config
    evaluation = facts.evaluation
    lines = [f"# Model card: {lineage.dataset}", ""]
    lines += _table(
        ["field", "value"],
        [
            ["task", config.task],
            ["target", config.target],
            ["estimator", config.estimator_path],
            ["parameters", json.dumps(config.estimator.params, sort_keys=True) or "{}"],
            ["features", str(facts.features)],
            ["scikit-learn", sklearn_version],
            ["created at", created_at],
            ["approval policy", config.approval],
        ],
    )
    lines += ["", "## Intended use", "", config.intended_use, ""]
    lines += ["## Data lineage", ""]
    lines += _table(
        ["field", "value"],
        [
            ["dataset", lineage.dataset],
            ["S3 VersionId", lineage.s3_version_id],
            ["manifest sha256", lineage.manifest_sha256],
            ["code version", lineage.code_version],
        ],
    )
    split = facts.split
    sizes = split["sizes"]
    stratified = "stratified by class" if split["stratified"] else "not stratified"
    lines += [
        "",
        "## Split",
        "",
        f"Seed {split['seed']}, {stratified}"
        f": {sizes['train']} train, {sizes['validation']} validation, {sizes['test']} test rows"
        " (positional row indices, reproducible from the dataset version and the seed).",
        "",
        "## Metrics",
        "",
    ]
    present = [name for name in SPLITS if name in evaluation.metrics]
    rows = []
    for name in config.metric_names:
        label = f"{name} (primary)" if name == evaluation.primary_metric else name
        direction = "higher is better" if METRICS[name].higher_is_better else "lower is better"
        rows.append(
            [label, direction, *(_number(evaluation.metrics[s].get(name)) for s in present)]
        )
    lines += _table(["metric", "direction", *present], rows)
    lines += ["", *_diagnostics(evaluation), "", "## Gate", ""]
    if gate is None:
        lines.append("Not evaluated yet: the gate runs after training, against the champion.")
    else:
        verdict = "**passed**" if gate.passed else "**failed**"
        against = (
            "against the champion on the same test rows"
            if gate.champion_compared
            else ("with no champion to compare against")
        )
        lines += [f"Gate {verdict} {against}:", ""]
        lines += [f"- {reason}" for reason in gate.reasons]
    lines += ["", "## Limitations", ""]
    lines += [f"- {note}" for note in [*config.limitations, *_automatic_limitations(facts)]]
    return "\n".join(lines) + "\n"


def _diagnostics(evaluation: Evaluation) -> list[str]:
    if evaluation.confusion is not None:
        labels = [str(label) for label in evaluation.confusion.labels]
        rows = [
            [f"actual {label}", *(str(count) for count in counts)]
            for label, counts in zip(labels, evaluation.confusion.matrix, strict=True)
        ]
        return [
            "Confusion matrix on the test split:",
            "",
            *_table(["", *(f"predicted {label}" for label in labels)], rows),
        ]
    if evaluation.residuals is not None:
        summary = evaluation.residuals
        return [
            "Residuals (actual - predicted) on the test split:",
            "",
            *_table(
                ["count", "mean", "std", "mean |r|", "max |r|", "p05", "p50", "p95"],
                [
                    [
                        str(summary.count),
                        *(
                            _number(v)
                            for v in (
                                summary.mean,
                                summary.std,
                                summary.mean_absolute,
                                summary.max_absolute,
                                summary.quantiles["p05"],
                                summary.quantiles["p50"],
                                summary.quantiles["p95"],
                            )
                        ),
                    ]
                ],
            ),
        ]
    return []


def render_evaluation_plot(evaluation: Evaluation, *, title: str) -> bytes:
    """PNG: confusion-matrix heatmap (classification) or residual scatter (regression)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if evaluation.confusion is not None:
        matrix = np.asarray(evaluation.confusion.matrix)
        labels = [str(label) for label in evaluation.confusion.labels]
        image = axes.imshow(matrix, cmap="Blues")
        figure.colorbar(image, ax=axes)
        axes.set_xticks(range(len(labels)), labels)
        axes.set_yticks(range(len(labels)), labels)
        axes.set_xlabel("predicted")
        axes.set_ylabel("actual")
        middle = matrix.max() / 2 if matrix.size else 0
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                color="white" if count > middle else "black",
            )
        axes.set_title(f"{title}: confusion matrix (test)")
    else:
        predicted = np.asarray(evaluation.test_predicted, dtype="float64")
        residual = np.asarray(evaluation.test_true, dtype="float64") - predicted
        step = max(1, math.ceil(len(predicted) / _MAX_SCATTER_POINTS))
        axes.scatter(predicted[::step], residual[::step], s=8, alpha=0.5)
        axes.axhline(0.0, color="black", linewidth=1)
        axes.set_xlabel("predicted")
        axes.set_ylabel("actual - predicted")
        axes.set_title(f"{title}: residuals (test)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def metrics_document(run: TrainingRun, *, gate: GateDecision | None = None) -> dict[str, Any]:
    """The `metrics.json` both backends write: metrics, diagnostics, split sizes, gate.

    It also holds what the card needs besides the config (features, class shares), so the
    card can be rendered from it with `CardFacts.from_document`.
    """
    document = run.evaluation.to_dict()
    document["split"] = _split_summary(run)
    document["features"] = list(run.prepared.features)
    shares = _class_shares(run)
    if shares is not None:
        document["class_shares"] = shares
    if gate is not None:
        document["gate"] = gate.to_dict()
    return document
