"""`driftline runs` and `driftline models` against registries found through stack outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from driftline.cli import main
from functions.shared.registry import ModelRegistry, RunRegistry, to_attributes
from tests.unit.conftest import moto_account, registry_table_resource

pytestmark = pytest.mark.unit

MODEL = "breast_cancer"


TEMPLATE = {
    "Resources": {
        "RunsTable": registry_table_resource("runs-table"),
        "ModelsTable": registry_table_resource("models-table"),
        "EndpointsTable": registry_table_resource("endpoints-table"),
    },
    "Outputs": {
        "RunsTableName": {"Value": {"Ref": "RunsTable"}},
        "ModelsTableName": {"Value": {"Ref": "ModelsTable"}},
        "EndpointsTableName": {"Value": {"Ref": "EndpointsTable"}},
    },
}


def run_record(run_id: str, started: str, max_iter: int, metrics: dict[str, float]) -> Any:
    return {
        "dataset": MODEL,
        "started_at": started,
        "status": "Succeeded",
        "trigger": "upload",
        "code_version": "abc1234",
        "params": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "estimator_params": {"max_iter": max_iter, "learning_rate": 0.1},
            "split": {"seed": 42, "test_fraction": 0.2},
        },
        "primary_metric": "roc_auc",
        "metrics": {"test": metrics, "train": {"roc_auc": 1.0, "accuracy": 1.0}},
        "duration_total": 12.5,
    }


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    """One emulated account and stack per module; each test re-seeds the tables."""
    with pytest.MonkeyPatch.context() as patch, moto_account(patch):
        boto3.client("cloudformation").create_stack(
            StackName="Driftline-local-Data", TemplateBody=json.dumps(TEMPLATE)
        )
        yield boto3.client("dynamodb")


def version_item(model: str, version: int, status: str) -> dict[str, Any]:
    return {
        "pk": f"model#{model}",
        "sk": f"version#{version:06d}",
        "model": model,
        "version": version,
        "status": status,
        "run_id": f"run-{version}",
        "created_at": f"2026-11-0{version}T11:00:00Z",
        "primary_metric": "roc_auc",
        "metrics": {"roc_auc": 0.97 + version / 100},
    }


SEED = {
    "runs-table": [
        {"pk": "run#run-old", "sk": "run", "run_id": "run-old"}
        | run_record("run-old", "2026-11-01T10:00:00Z", 200, {"roc_auc": 0.98, "accuracy": 0.95}),
        {"pk": "run#run-new", "sk": "run", "run_id": "run-new"}
        | run_record("run-new", "2026-11-02T10:00:00Z", 30, {"roc_auc": 0.99, "accuracy": 0.94}),
        *(
            {"pk": f"dataset#{MODEL}", "sk": f"{started}#{run_id}", "run_id": run_id}
            for run_id, started in [
                ("run-old", "2026-11-01T10:00:00Z"),
                ("run-new", "2026-11-02T10:00:00Z"),
            ]
        ),
    ],
    "models-table": [
        version_item(MODEL, 1, "Approved"),
        version_item(MODEL, 2, "PendingApproval"),
        version_item("iris", 1, "Approved"),
        {"pk": f"model#{MODEL}", "sk": "counter", "model": MODEL, "next_version": 2},
        {"pk": "model#iris", "sk": "counter", "model": "iris", "next_version": 1},
    ],
    # What each endpoint serves: the champion. iris v1 is Approved but never went live.
    "endpoints-table": [
        {"pk": f"endpoint#{MODEL}", "sk": "current", "model": MODEL, "model_version": 1},
    ],
}


@pytest.fixture
def registries(dynamodb: Any) -> tuple[RunRegistry, ModelRegistry]:
    """The seed, written fresh for each test in a few batches."""
    for table, items in SEED.items():
        stale = dynamodb.scan(TableName=table, ProjectionExpression="pk, sk")["Items"]
        # A batch may not touch one key twice: deletes and puts go in separate batches.
        for requests in (
            [{"DeleteRequest": {"Key": key}} for key in stale],
            [{"PutRequest": {"Item": to_attributes(item)}} for item in items],
        ):
            for start in range(0, len(requests), 25):
                dynamodb.batch_write_item(RequestItems={table: requests[start : start + 25]})
    return RunRegistry(dynamodb, "runs-table"), ModelRegistry(dynamodb, "models-table")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- runs -----------------------------------------------------------------------------------


def test_runs_list_json_is_one_document_newest_first(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "runs", "list", "--json")

    assert code == 0
    assert [run["run_id"] for run in json.loads(out)] == ["run-new", "run-old"]


def test_runs_list_table_filters_by_dataset(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "runs", "list", "--dataset", MODEL, "--limit", "1")

    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:3] == ["RUN", "DATASET", "STATUS"]
    assert len(lines) == 2
    assert lines[1].startswith("run-new")
    assert "roc_auc=0.9900" in lines[1]


def test_runs_show_prints_the_record(registries: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "runs", "show", "run-old", "--json")

    record = json.loads(out)
    assert code == 0
    assert record["params"]["estimator_params"]["max_iter"] == 200
    assert record["metrics"]["test"] == {"roc_auc": 0.98, "accuracy": 0.95}

    code, out, _ = cli(capsys, "runs", "show", "run-old")
    rows = [line.split() for line in out.splitlines()]
    assert ["params.estimator_params.max_iter", "200"] in rows


def test_an_unknown_run_is_a_one_line_usage_error(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "runs", "show", "run-nope")

    assert code == 2
    assert out == ""
    assert err == "driftline: unknown run 'run-nope'\n"


def test_runs_compare_shows_params_and_metrics_side_by_side_with_deltas(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "runs", "compare", "run-old", "run-new", "--json")

    document = json.loads(out)
    assert code == 0
    params = {p["name"]: p for p in document["params"]}
    assert params["estimator_params.max_iter"] == {
        "name": "estimator_params.max_iter",
        "a": 200,
        "b": 30,
        "same": False,
    }
    assert params["estimator"]["same"] is True
    metrics = {(m["split"], m["metric"]): m for m in document["metrics"]}
    assert metrics[("test", "roc_auc")]["delta"] == pytest.approx(0.01)
    assert metrics[("test", "accuracy")]["delta"] == pytest.approx(-0.01)
    assert document["metrics"][0]["split"] == "test"

    code, out, _ = cli(capsys, "runs", "compare", "run-old", "run-new")
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert table["test.roc_auc"] == ["0.98", "0.99", "+0.0100"]
    assert table["params.estimator_params.max_iter"] == ["200", "30", "changed"]


def test_runs_compare_with_an_unknown_run_names_it(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "runs", "compare", "run-old", "run-x")

    assert (code, err) == (2, "driftline: unknown run 'run-x'\n")


# --- models ---------------------------------------------------------------------------------


def test_models_list_summarises_versions_champion_and_pending(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "models", "list", "--json")

    assert code == 0
    assert json.loads(out) == [
        {
            "model": MODEL,
            "versions": 2,
            "latest": 2,
            "latest_status": "PendingApproval",
            "champion": 1,
            "pending": 1,
        },
        {
            "model": "iris",
            "versions": 1,
            "latest": 1,
            "latest_status": "Approved",
            "champion": None,  # Approved, but its endpoint never served it
            "pending": 0,
        },
    ]


def test_models_show_lists_versions_newest_first_and_marks_the_champion(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "models", "show", MODEL, "--json")

    document = json.loads(out)
    assert code == 0
    assert document["champion"] == 1
    assert [v["version"] for v in document["versions"]] == [2, 1]

    code, out, _ = cli(capsys, "models", "show", MODEL)
    lines = out.splitlines()
    assert lines[0].split() == ["VERSION", "STATUS", "CREATED_AT", "RUN", "METRIC", "CHAMPION"]
    assert lines[2].split()[-1] == "yes"


def test_models_show_one_version(registries: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "models", "show", MODEL, "--version", "v2", "--json")

    record = json.loads(out)
    assert code == 0
    assert (record["version"], record["status"], record["champion"]) == (
        2,
        "PendingApproval",
        False,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["models", "show", "wine"], "unknown model 'wine' (see `driftline models list`)"),
        (
            ["models", "show", MODEL, "--version", "9"],
            f"model '{MODEL}' has no version 9 (versions: 1, 2)",
        ),
        (
            ["models", "approve", MODEL, "--version", "1"],
            f"model {MODEL} version 1 is Approved, not PendingApproval",
        ),
        (["models", "approve", MODEL, "--version", "5"], f"model {MODEL} has no version 5"),
    ],
    ids=["unknown-model", "unknown-version", "approve-approved", "approve-missing"],
)
def test_unknown_models_and_versions_are_one_line_usage_errors(
    registries: Any, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = cli(capsys, *argv)

    assert (code, out, err) == (2, "", f"driftline: {message}\n")


def test_approving_a_pending_version_leaves_the_champion_to_what_serves(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Approval makes v2 deployable; it becomes the champion only once its endpoint serves it."""
    code, out, _ = cli(capsys, "models", "approve", MODEL, "--version", "2", "--json")

    record = json.loads(out)
    assert code == 0
    assert record["status"] == "Approved"
    assert record["champion"] is False
    assert record["decided_by"].startswith("cli")
    _, models = registries
    assert models.latest_approved(MODEL)["version"] == 2
    assert models.get_version(MODEL, 1)["status"] == "Approved"


def test_rejecting_needs_a_reason_and_keeps_the_champion(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["models", "reject", MODEL, "--version", "2"])
    assert exited.value.code == 2
    assert "--reason" in capsys.readouterr().err

    code, out, _ = cli(
        capsys, "models", "reject", MODEL, "--version", "2", "--reason", "recall too low"
    )

    assert code == 0
    assert "recall too low" in out
    _, models = registries
    assert models.get_version(MODEL, 2)["status"] == "Rejected"
    assert models.get_version(MODEL, 2)["reason"] == "recall too low"
    assert models.latest_approved(MODEL)["version"] == 1


def test_a_missing_stack_is_a_usage_error(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "models", "list", "--env", "dev")

    assert code == 2
    assert "Driftline-dev-Data does not exist" in err


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ({"status": "Succeeded", "deployment_status": "Deployed"}, 0),
        ({"status": "Succeeded", "deployment_status": "NotDeployed"}, 1),
        ({"status": "Rejected"}, 1),
        ({"status": "Failed"}, 2),
    ],
)
def test_runs_show_exit_code_says_whether_the_model_serves(
    record: dict[str, str], code: int
) -> None:
    from driftline.commands.runs import show_exit_code

    assert show_exit_code(record) == code


# --- readable human output ----------------------------------------------------------------


def test_models_commands_take_the_model_as_option_or_positionally(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _, by_option, _ = cli(capsys, "models", "show", "--model", MODEL, "--json")
    _, positional, _ = cli(capsys, "models", "show", MODEL, "--json")
    assert json.loads(by_option) == json.loads(positional)

    code, _, err = cli(capsys, "models", "show", "--model", MODEL, "iris")
    assert (code, err.count("\n")) == (2, 1)
    assert "two models named" in err
    code, _, err = cli(capsys, "models", "approve", "--version", "2")
    assert (code, err) == (2, "driftline: models approve: --model MODEL is required\n")


def test_runs_compare_rows_stay_readable_with_a_long_feature_list(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftline.commands.runs import compare_runs, comparison_rows

    features = [f"feature_{i:02d}" for i in range(30)]
    first = {"run_id": "a", "params": {"features": features, "seed": 1}}
    second = {"run_id": "b", "params": {"features": [*features[1:], "extra"], "seed": 1}}

    rows = {row["field"]: row for row in comparison_rows(compare_runs(first, second))}

    assert rows["params.features"]["a"] == "30 features (feature_00, feature_01, feature_02, …)"
    assert rows["params.features"]["delta"] == "+extra; -feature_00"
    from driftline.output import print_table

    print_table(comparison_rows(compare_runs(first, second)))
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) < 160


def test_runs_show_draws_the_step_timeline_and_metrics_per_split(
    registries: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, _ = registries
    runs.update_run(
        "run-old",
        {"duration_prepare": 1.5, "duration_train": 6.0, "duration_evaluate": 0.5},
    )

    code, out, _ = cli(capsys, "runs", "show", "run-old")

    assert code == 0
    lines = out.splitlines()
    steps = [line.split() for line in lines if line.split()[:1] in (["prepare"], ["train"])]
    assert [step[:3] for step in steps] == [["prepare", "0", "1.5"], ["train", "1.5", "6"]]
    assert steps[1][-1] == "█" * 30  # the longest step fills the bar
    header = next(line.split() for line in lines if line.startswith("METRIC"))
    assert header == ["METRIC", "TEST", "TRAIN"]
    roc = next(line.split() for line in lines if line.startswith("roc_auc"))
    assert roc == ["roc_auc", "*", "0.98", "1"]


def test_report_runs_writes_one_page_of_the_envs_runs_and_models(
    registries: Any, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    out = tmp_path / "runs.html"

    code, stdout, err = cli(capsys, "report", "runs", "--html", str(out))

    page = out.read_text(encoding="utf-8")
    assert (code, stdout) == (0, "")
    assert err == f"driftline: wrote 2 runs and 2 models to {out}\n"
    assert page.count('<tr id="run-') == 2
    assert 'id="model-breast_cancer-2"' in page and 'id="model-iris-1"' in page
    assert "<circle" in page  # the metric over time
