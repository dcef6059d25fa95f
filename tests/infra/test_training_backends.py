"""Training backends per env: a SageMaker .sync training job in prod, the Lambda elsewhere.

cdk-nag and cfn-lint for every env (this backend included) are pinned by test_compliance.py.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.app_builder import shipped_model_names
from tests.infra.conftest import SynthesizedEnv

pytestmark = pytest.mark.infra


def token_after(env: SynthesizedEnv, marker: str) -> list[Any]:
    """The CloudFormation values spliced into the ASL right after each `marker` (a JSON key)."""
    (machine,) = env.resources("Pipeline", "AWS::StepFunctions::StateMachine").values()
    parts: list[Any] = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return [
        following
        for part, following in itertools.pairwise(parts)
        if isinstance(part, str) and part.endswith(f'"{marker}":"')
    ]


def function_image(env: SynthesizedEnv) -> Any:
    functions = env.resources("Pipeline", "AWS::Lambda::Function")
    images = {repr(fn["Properties"]["Code"]["ImageUri"]) for fn in functions.values()}
    assert len(images) == 1
    return next(iter(functions.values()))["Properties"]["Code"]["ImageUri"]


def test_prod_trains_in_a_sagemaker_job_that_step_functions_waits_for(
    prod: SynthesizedEnv,
) -> None:
    states = prod.state_machine_definition()["States"]
    train = states["Train"]
    assert train["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    assert train["Next"] == "CollectTraining"
    assert states["CollectTraining"]["Next"] == "Evaluate"
    assert states["CollectTraining"]["ResultPath"] == "$.trained"
    for name in ("Train", "CollectTraining"):
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}
        ]
    parameters = train["Parameters"]
    assert parameters["AlgorithmSpecification"]["ContainerEntrypoint"] == [
        "python",
        "-m",
        "pipelines.sagemaker_entry",
    ]
    assert parameters["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert parameters["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert "VpcConfig" not in parameters
    assert parameters["TrainingJobName.$"] == (
        "States.Format('driftline-{}', States.Hash($$.Execution.Name, 'SHA-1'))"
    )
    channels = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri.$"]
        for channel in parameters["InputDataConfig"]
    }
    assert channels == {
        "train": "States.Format('s3://TOKEN/{}', $.prepared.dataset_key)",
        "config": "States.Format('s3://TOKEN/{}', $.prepared.config_key)",
    }
    assert parameters["OutputDataConfig"]["S3OutputPath.$"] == (
        "States.Format('s3://TOKEN/runs/{}/sagemaker/', $.run.id)"
    )
    assert parameters["HyperParameters"]["dataset.$"] == "$.dataset"
    assert train["ResultSelector"]["model_artifacts.$"] == "$.ModelArtifacts.S3ModelArtifacts"


def test_the_training_job_runs_the_functions_image_and_encrypts_with_the_data_key(
    prod: SynthesizedEnv,
) -> None:
    assert token_after(prod, "TrainingImage") == [function_image(prod)]
    (key_arn,) = prod.resources("Data", "AWS::KMS::Key")
    for marker in ("KmsKeyId", "VolumeKmsKeyId"):
        (value,) = token_after(prod, marker)
        assert f"GetAtt{key_arn}Arn" in value["Fn::ImportValue"]
    # The job and the functions share one image asset (same context, file and excludes).
    assets = json.loads((prod.outdir / "Driftline-prod-Pipeline.assets.json").read_text())
    assert len(assets["dockerImages"]) == 1


def test_the_training_role_reads_runs_writes_outputs_and_pulls_the_image(
    prod: SynthesizedEnv,
) -> None:
    roles = prod.resources("Pipeline", "AWS::IAM::Role")
    (role_id,) = [
        key
        for key, role in roles.items()
        if "sagemaker.amazonaws.com"
        in repr(role["Properties"]["AssumeRolePolicyDocument"]["Statement"])
    ]
    policies = prod.resources("Pipeline", "AWS::IAM::Policy")
    (policy,) = [p for p in policies.values() if p["Properties"]["Roles"] == [{"Ref": role_id}]]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    actions = {
        action
        for statement in statements
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert {"ecr:BatchGetImage", "s3:GetObject*", "s3:PutObject", "kms:Decrypt"} <= actions
    assert not any(action.startswith("s3:Delete") for action in actions)
    text = repr(statements)
    assert "/runs/*/sagemaker/*" in text
    assert "/runs/*" in text
    machine_policy = repr(
        [p for p in policies.values() if "StateMachineRole" in repr(p["Properties"]["Roles"])]
    )
    assert "sagemaker:CreateTrainingJob" in machine_policy
    assert "iam:PassRole" in machine_policy
    assert "StepFunctionsGetEventsForSageMakerTrainingJobsRule" in machine_policy


def test_dev_keeps_the_lambda_train_step(dev: SynthesizedEnv) -> None:
    states = dev.state_machine_definition()["States"]
    # A payload-only LambdaInvoke names the function's ARN (a token) as its Resource.
    assert states["Train"]["Resource"] == "TOKEN"
    retried = {error for rule in states["Train"]["Retry"] for error in rule["ErrorEquals"]}
    assert "Lambda.ServiceException" in retried
    assert states["Train"]["Next"] == "Evaluate"
    assert "CollectTraining" not in states
    assert "sagemaker:CreateTrainingJob" not in repr(dev.resources("Pipeline", "AWS::IAM::Policy"))


def test_each_shipped_model_has_a_model_package_group_outside_the_twin(
    prod: SynthesizedEnv, synth_env: Callable[[str], SynthesizedEnv]
) -> None:
    groups = prod.resources("Pipeline", "AWS::SageMaker::ModelPackageGroup")
    names = {group["Properties"]["ModelPackageGroupName"] for group in groups.values()}
    assert names == {f"driftline-prod-{m.replace('_', '-')}" for m in shipped_model_names()}
    assert not synth_env("local").resources("Pipeline", "AWS::SageMaker::ModelPackageGroup")


def test_register_may_create_packages_only_in_its_groups(prod: SynthesizedEnv) -> None:
    functions = prod.resources("Pipeline", "AWS::Lambda::Function")
    (register,) = [
        fn
        for fn in functions.values()
        if fn["Properties"]["ImageConfig"]["Command"] == ["functions.register.handler.handler"]
    ]
    variables = register["Properties"]["Environment"]["Variables"]
    assert "DRIFTLINE_MODEL_PACKAGE_GROUPS" in variables
    assert "DRIFTLINE_MODEL_IMAGE_URI" in variables
    policies = prod.resources("Pipeline", "AWS::IAM::Policy")
    (statement,) = [
        s
        for p in policies.values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sagemaker:CreateModelPackage"
    ]
    assert "model-package/driftline-prod-breast-cancer/*" in repr(statement["Resource"])
