"""`driftline models check` (offline, Prepare's checks) and `contracts infer` naming its dataset.

Every kind of mistake `pipelines.model_config` can find comes out as one line on stderr that
names the file and the key, with exit 2; a config Prepare would accept prints a summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftline.cli import main

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
BASE = "task: classification\ntarget: label\n"
CONTRACT = """\
dataset: example
columns:
  age: {type: int}
  income: {type: float}
  city: {type: string}
  signup: {type: datetime}
  label: {type: int}
target: label
"""
# Without the datetime column, for the feature checks that need a usable default feature set.
USABLE = CONTRACT.replace("  signup: {type: datetime}\n", "")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# (config text, contract text or None, the key the message must name, words it must say)
ERRORS = {
    "unknown-top-level-key": (BASE + "estimators: {}\n", None, "estimators", "unknown key"),
    "missing-task": ("target: label\n", None, "task", "Field required"),
    "unknown-task": ("task: ranking\ntarget: label\n", None, "task", "'classification'"),
    "empty-target": ("task: classification\ntarget: ''\n", None, "target", "at least 1"),
    "unknown-approval": (BASE + "approval: sometimes\n", None, "approval", "'automatic'"),
    "split-fraction-out-of-range": (
        BASE + "split: {test_fraction: 1.5}\n",
        None,
        "split.test_fraction",
        "less than 1",
    ),
    "split-leaves-no-training-rows": (
        BASE + "split: {test_fraction: 0.5, validation_fraction: 0.5}\n",
        None,
        "split",
        "must be below 1",
    ),
    "unknown-split-key": (BASE + "split: {folds: 5}\n", None, "split.folds", "unknown key"),
    "estimator-outside-sklearn": (
        BASE + "estimator: {class_path: os.system}\n",
        None,
        "estimator.class_path",
        "not a scikit-learn import path",
    ),
    "estimator-module-missing": (
        BASE + "estimator: {class_path: sklearn.nosuchmodule.Forest}\n",
        None,
        "estimator.class_path",
        "cannot import module 'sklearn.nosuchmodule'",
    ),
    "estimator-class-missing": (
        BASE + "estimator: {class_path: sklearn.ensemble.NoSuchForest}\n",
        None,
        "estimator.class_path",
        "has no 'NoSuchForest'",
    ),
    "not-an-estimator": (
        BASE + "estimator: {class_path: sklearn.metrics.accuracy_score}\n",
        None,
        "estimator.class_path",
        "is not a scikit-learn estimator class",
    ),
    "meta-estimator": (
        BASE + "estimator: {class_path: sklearn.ensemble.VotingClassifier}\n",
        None,
        "estimator.class_path",
        "needs constructor arguments",
    ),
    "estimator-of-the-other-task": (
        BASE + "estimator: {class_path: sklearn.linear_model.LinearRegression}\n",
        None,
        "estimator.class_path",
        "is not a classification estimator",
    ),
    "unknown-estimator-param": (
        BASE + "estimator: {params: {max_iterations: 10}}\n",
        None,
        "estimator.params.max_iterations",
        "not a parameter of HistGradientBoostingClassifier",
    ),
    "invalid-estimator-param-value": (
        BASE + "estimator: {params: {max_iter: -1}}\n",
        None,
        "estimator.params",
        "max_iter",
    ),
    "unknown-estimator-key": (
        BASE + "estimator: {class: sklearn.svm.SVC}\n",
        None,
        "estimator.class",
        "unknown key",
    ),
    "unknown-metric": (BASE + "metrics: [roc_auc, gini]\n", None, "metrics[1]", "unknown metric"),
    "metric-of-the-other-task": (
        BASE + "metrics: [rmse]\n",
        None,
        "metrics[0]",
        "'rmse' is a regression metric",
    ),
    "metric-twice": (BASE + "metrics: [f1, f1]\n", None, "metrics", "more than once"),
    "metric-needs-scores": (
        BASE + "metrics: [log_loss]\nestimator: {class_path: sklearn.svm.LinearSVC}\n",
        None,
        "metrics[0]",
        "needs class scores",
    ),
    "gate-on-a-metric-not-computed": (
        BASE + "metrics: [accuracy]\ngate: {thresholds: {roc_auc: 0.9}}\n",
        None,
        "gate.thresholds.roc_auc",
        "not in metrics",
    ),
    "negative-max-regression": (
        BASE + "gate: {max_regression: {roc_auc: -0.1}}\n",
        None,
        "gate.max_regression.roc_auc",
        "must be >= 0",
    ),
    "gate-value-not-a-number": (
        BASE + "gate: {thresholds: {roc_auc: high}}\n",
        None,
        "gate.thresholds.roc_auc",
        "valid number",
    ),
    "target-not-in-contract": (
        "task: classification\ntarget: outcome\n",
        USABLE,
        "target",
        "'outcome' is not a column of the data contract",
    ),
    "feature-not-in-contract": (
        BASE + "features: [age, postcode]\n",
        USABLE,
        "features[1]",
        "'postcode' is not a column",
    ),
    "target-as-feature": (
        BASE + "features: [age, label]\n",
        USABLE,
        "features[1]",
        "the target cannot be a feature",
    ),
    "feature-twice": (BASE + "features: [age, age]\n", USABLE, "features", "more than once"),
    "feature-of-an-unusable-type": (
        BASE,
        CONTRACT,
        "features (default: every contract column)",
        "column 'signup'",
    ),
    "no-features-left": (
        BASE,
        "dataset: example\ncolumns:\n  label: {type: int}\n",
        "features",
        "no feature columns left",
    ),
}


@pytest.mark.parametrize(("text", "contract", "key", "words"), ERRORS.values(), ids=ERRORS)
def test_every_model_config_error_is_one_line_naming_the_key(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str,
    contract: str | None,
    key: str,
    words: str,
) -> None:
    config = tmp_path / "example.yaml"
    config.write_text(text)
    argv = ["models", "check", str(config)]
    if contract is not None:
        (tmp_path / "contract.yaml").write_text(contract)
        argv += ["--contract", str(tmp_path / "contract.yaml")]

    code, out, err = cli(capsys, *argv)

    assert (code, out) == (2, "")
    assert err.startswith(f"driftline: {config}: key '{key}': ")
    assert words in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task: [classification\n", "not valid YAML at line"),
        ("- task\n- target\n", "expected a mapping of keys at the top level"),
    ],
    ids=["yaml-syntax", "not-a-mapping"],
)
def test_a_config_that_is_not_a_mapping_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "example.yaml"
    config.write_text(text)

    code, _, err = cli(capsys, "models", "check", str(config))

    assert code == 2
    assert err.startswith(f"driftline: {config}: {message}") and err.count("\n") == 1


def test_a_missing_file_or_a_broken_contract_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = cli(capsys, "models", "check", str(tmp_path / "nope.yaml"))
    assert (code, err) == (2, f"driftline: {tmp_path / 'nope.yaml'}: model config file not found\n")

    (tmp_path / "example.yaml").write_text(BASE)
    (tmp_path / "contract.yaml").write_text("dataset: example\ncolumns: {age: {type: decimal}}\n")
    code, _, err = cli(
        capsys,
        "models",
        "check",
        str(tmp_path / "example.yaml"),
        "--contract",
        str(tmp_path / "contract.yaml"),
    )
    assert code == 2
    assert err.startswith(f"driftline: {tmp_path / 'contract.yaml'}: columns.age.type")


def test_a_valid_config_prints_a_summary_with_the_resolved_features(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = REPO / "models" / "breast_cancer.yaml"
    contract = REPO / "contracts" / "breast_cancer.yaml"

    code, out, err = cli(
        capsys, "models", "check", str(config), "--contract", str(contract), "--json"
    )

    summary = json.loads(out)
    assert (code, err) == (0, "")
    assert summary["task"] == "classification"
    assert summary["primary_metric"] == "roc_auc"
    assert summary["estimator"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert len(summary["features"]) == 30 and "target" not in summary["features"]
    assert summary["gate"]["thresholds"]["roc_auc"] == 0.95

    code, out, _ = cli(capsys, "models", "check", str(config))
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert code == 0
    assert rows["metrics"] == ["roc_auc,", "accuracy,", "f1"]
    assert rows["features"][:3] == ["every", "contract", "column"]


def test_the_docs_example_config_is_valid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """docs/models.md's digits example passes the checks it documents."""
    text = (REPO / "docs" / "models.md").read_text()
    example = text.split("```yaml\n# digits.model.yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "digits.yaml").write_text(example)
    columns = "\n".join(f"  pixel_{i}: {{type: float}}" for i in range(64))
    (tmp_path / "contract.yaml").write_text(
        f"dataset: digits\ncolumns:\n{columns}\n  target: {{type: int}}\ntarget: target\n"
    )

    code, out, _ = cli(
        capsys,
        "models",
        "check",
        str(tmp_path / "digits.yaml"),
        "--contract",
        str(tmp_path / "contract.yaml"),
        "--json",
    )

    assert code == 0
    assert json.loads(out)["primary_metric"] == "accuracy"


# --- contracts infer: which dataset the contract is for ------------------------------------


def test_infer_takes_the_dataset_from_a_datasets_folder_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sample = tmp_path / "datasets" / "wine" / "data.csv"
    sample.parent.mkdir(parents=True)
    sample.write_text("alcohol,target\n13.2,0\n12.1,1\n")

    code, out, err = cli(capsys, "contracts", "infer", str(sample))

    assert code == 0
    assert "\ndataset: wine\n" in out
    assert f"`driftline contracts infer {sample} --dataset wine`" in out.splitlines()[0]
    assert err == (
        "driftline: note: dataset 'wine' from the folder datasets/wine/; "
        "pass --dataset to choose another\n"
    )


def test_infer_names_a_file_name_dataset_on_stderr_and_honours_dataset(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sample = tmp_path / "data.csv"
    sample.write_text("alcohol,target\n13.2,0\n12.1,1\n")

    code, out, err = cli(capsys, "contracts", "infer", str(sample))
    assert code == 0
    assert "\ndataset: data\n" in out
    assert "dataset 'data' from the file name data.csv" in err

    code, out, err = cli(capsys, "contracts", "infer", str(sample), "--dataset", "wine")
    assert (code, err) == (0, "")
    assert "\ndataset: wine\n" in out
