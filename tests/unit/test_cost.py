"""`driftline cost`: counted from templates, priced from docs/prices.yaml, checked by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.cli import main
from pipelines.cost import count_states, inventory

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def function(memory: int, *, image: bool = True) -> dict[str, Any]:
    props: dict[str, Any] = {"MemorySize": memory}
    if image:
        props["PackageType"] = "Image"
    return {"Type": "AWS::Lambda::Function", "Properties": props}


def resources(*entries: tuple[str, str, dict[str, Any] | None]) -> dict[str, Any]:
    return {
        "Resources": {
            name: {"Type": kind, "Properties": props or {}} for name, kind, props in entries
        }
    }


# Validate, Train, Succeed, and a Map whose item processor has one state: 5 states per run.
DEFINITION = {
    "Fn::Join": [
        "",
        [
            '{"StartAt":"Validate","States":{"Validate":{"Type":"Task","Resource":"',
            {"Fn::GetAtt": ["TrainingFunctionsValidateFunctionAAAA", "Arn"]},
            '","Next":"Parts"},"Parts":{"Type":"Map","ItemProcessor":{"StartAt":"Part",'
            '"States":{"Part":{"Type":"Pass","End":true}}},"Next":"Train"},'
            '"Train":{"Type":"Task","Resource":"arn","Next":"Done"},"Done":{"Type":"Succeed"}}}',
        ],
    ]
}


def write_assembly(out: Path) -> Path:
    out.mkdir()
    stacks = {
        "Data": resources(
            ("Key", "AWS::KMS::Key", None),
            ("Datasets", "AWS::S3::Bucket", None),
            ("Artifacts", "AWS::S3::Bucket", None),
            ("Models", "AWS::DynamoDB::Table", None),
        ),
        "Pipeline": {
            "Resources": {
                "TrainingFunctionsValidateFunctionAAAA": function(1024),
                "TrainingFunctionsTrainFunctionBBBB": function(2048),
                "StateMachine": {
                    "Type": "AWS::StepFunctions::StateMachine",
                    "Properties": {"DefinitionString": DEFINITION},
                },
            }
        },
        "Serving": {
            "Resources": {
                "BreastCancerInferenceFunctionCCCC": function(1024),
                **resources(
                    ("Errors", "AWS::CloudWatch::Alarm", None),
                    ("Latency", "AWS::CloudWatch::Alarm", None),
                )["Resources"],
            }
        },
        "Monitoring": {
            "Resources": {
                "DriftFunctionsDriftMonitorFunctionDDDD": function(512),
                **resources(
                    ("DriftA", "AWS::CloudWatch::Alarm", None),
                    ("DriftB", "AWS::CloudWatch::Alarm", None),
                    ("RunsFailed", "AWS::CloudWatch::Alarm", None),
                    ("Loop", "AWS::CloudWatch::CompositeAlarm", None),
                    ("Dashboard", "AWS::CloudWatch::Dashboard", None),
                    ("Logs", "AWS::Logs::LogGroup", {"RetentionInDays": 14}),
                )["Resources"],
            }
        },
    }
    for part, template in stacks.items():
        (out / f"Driftline-dev-{part}.template.json").write_text(json.dumps(template))
    return out


PROFILE = {
    "uploads_per_day": 2,
    "rows_per_upload": 200_000,
    "predictions_per_day": 1000,
    "drift_checks_per_day": 24,
    "step_seconds": 10,
    "train_seconds_per_100k_rows": 30,
    "inference_ms": 100,
    "drift_check_seconds": 20,
    "capture_fraction": 0.5,
    "registry_writes_per_run": 50,
    "s3_puts_per_run": 100,
    "s3_gets_per_prediction": 0,
    "artifacts_gb": 10,
    "registry_gb": 1,
    "log_gb_per_month": 0,
    "image_gb": 2,
}


def test_cost_matches_the_hand_computed_figure_for_one_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """env dev (eu-west-1), 30 days, docs/prices.yaml, the PROFILE above, the templates above.

    Idle (what exists):
      KMS 1 key x $1.00 = 1.00; alarms 5 x $0.10 = 0.50; composite 1 x $0.50 = 0.50;
      dashboard 1 x $3.00 = 3.00; logs kept 0 GB = 0; S3 10 GB x $0.023 = 0.23;
      DynamoDB 1 GB x $0.283 = 0.283; ECR 2 GB x $0.10 = 0.20          idle = 5.713 -> $5.71
    Usage (runs = 2 x 30 = 60, predictions = 1000 x 30 = 30,000, checks = 24 x 30 = 720):
      train seconds = 30 x 200,000 / 100,000 = 60 s
      GB-s = 60 x (1 GB x 10 s + 2 GB x 60 s) = 7,800
           + 30,000 x 1 GB x 0.1 s = 3,000 + 720 x 0.5 GB x 20 s = 7,200   = 18,000
      Lambda duration 18,000 x $0.0000166667 = 0.3000006
      Lambda requests (60 x 2 + 30,000 + 720) = 30,840 -> 0.03084 M x $0.20 = 0.006168
      transitions 60 x 5 = 300 -> 0.3 k x $0.025 = 0.0075
      DynamoDB writes 60 x 50 = 3,000 -> 0.003 M x $0.7063 = 0.0021189
      S3 PUTs 60 x 100 + 30,000 x 0.5 = 21,000 -> 21 k x $0.005 = 0.105
      S3 GETs 0; logs ingested 0                                      usage = 0.4207875 -> $0.42
    Total 5.713 + 0.4207875 = 6.1337875 -> $6.13
    """
    assembly = write_assembly(tmp_path / "cdk.out")
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(PROFILE))
    code = main(
        ["cost", "--env", "dev", "--cdk-out", str(assembly), "--profile", str(profile), "--json"]
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["totals"] == {"idle": 5.71, "usage": 0.42, "total": 6.13}
    lines = {line["item"]: line for line in document["lines"]}
    assert lines["Lambda duration"]["quantity"] == pytest.approx(18_000)
    assert lines["Step Functions state transitions"]["quantity"] == pytest.approx(0.3)
    assert lines["S3 PUT requests (runs, captures)"]["quantity"] == pytest.approx(21)
    assert document["region"] == "eu-west-1" and document["prices_as_of"] == "2025-01"
    assert {line["item"] for line in document["lines"] if line["idle"]} >= {
        "KMS customer keys",
        "CloudWatch alarms",
        "CloudWatch dashboards",
        "CloudWatch Logs storage (kept for the retention)",
    }
    # Nothing that computes is billed when idle.
    assert not any(
        line["idle"] and line["item"].startswith(("Lambda", "Step Functions"))
        for line in document["lines"]
    )


def test_flags_override_the_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assembly = write_assembly(tmp_path / "cdk.out")
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(PROFILE))
    argv = ["cost", "--env", "dev", "--cdk-out", str(assembly), "--profile", str(profile)]
    assert (
        main(
            [
                *argv,
                "--uploads-per-day",
                "0",
                "--predictions-per-day",
                "0",
                "--drift-checks-per-day",
                "0",
                "--json",
            ]
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out)
    usage = {line["item"]: line["monthly"] for line in document["lines"] if not line["idle"]}
    assert usage["Lambda duration"] == 0 and usage["Lambda requests"] == 0
    assert document["totals"]["usage"] == 0


def test_a_bad_profile_value_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "profile.yaml"
    profile.write_text("uploads_per_day: -1\n")
    code = main(["cost", "--env", "dev", "--cdk-out", str(tmp_path), "--profile", str(profile)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'uploads_per_day'" in err


def test_the_shipped_profile_and_price_table_parse_and_are_dated() -> None:
    prices = yaml.safe_load((REPO / "docs" / "prices.yaml").read_text())
    assert prices["as_of"] and set(prices["regions"]) >= {"us-east-1", "eu-west-1"}
    assert set(prices["regions"]["us-east-1"]) == set(prices["regions"]["eu-west-1"])
    assert all(url.startswith("https://aws.amazon.com/") for url in prices["sources"].values())
    from pipelines.cost import UsageProfile

    UsageProfile.model_validate(yaml.safe_load((REPO / "docs" / "usage_profile.yaml").read_text()))


def test_states_are_counted_inside_maps_and_parallels() -> None:
    assert count_states(DEFINITION) == 5
    parallel = json.dumps(
        {
            "States": {
                "P": {
                    "Type": "Parallel",
                    "Branches": [
                        {"States": {"A": {"Type": "Pass"}}},
                        {"States": {"B": {"Type": "Pass"}}},
                    ],
                }
            }
        }
    )
    assert count_states(parallel) == 3


def test_inventory_counts_what_the_templates_hold(tmp_path: Path) -> None:
    assembly = write_assembly(tmp_path / "cdk.out")
    templates = {
        path.name: json.loads(path.read_text()) for path in assembly.glob("*.template.json")
    }
    found = inventory(templates).summary()
    assert found["functions"] == 4 and found["function_memory_mb"] == [512, 1024, 1024, 2048]
    assert (found["alarms"], found["composite_alarms"], found["dashboards"]) == (5, 1, 1)
    assert (found["kms_keys"], found["tables"], found["buckets"]) == (1, 1, 2)
    assert found["log_retention_days"] == [14] and found["states_per_run"] == 5
