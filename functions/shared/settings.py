"""The function's settings, read once from `DRIFTLINE_*` environment variables and validated.

The CDK construct sets every variable (see `infra/constructs/training_pipeline.py`); a missing
or empty one is a deployment bug, reported as one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PREFIX = "DRIFTLINE_"


class SettingsError(RuntimeError):
    """The function's environment is incomplete or wrong."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    env: str = Field(min_length=1)
    git_sha: str = Field(min_length=1)
    approval_policy: Literal["automatic", "manual"]
    datasets_bucket: str = Field(min_length=3)
    artifacts_bucket: str = Field(min_length=3)
    datasets_table: str = Field(min_length=1)
    runs_table: str = Field(min_length=1)
    models_table: str = Field(min_length=1)
    alerts_topic_arn: str = Field(min_length=1)
    # Where Evaluate finds the champion (what the endpoint serves); only Evaluate needs it.
    endpoints_table: str = ""
    # JSON model -> SageMaker Model Package Group; empty on the twin (moto has no such groups).
    model_package_groups: str = ""
    # The shared function image, named as a model package's inference container.
    model_image_uri: str = ""

    @property
    def required_endpoints_table(self) -> str:
        """The Endpoints table; a SettingsError naming the variable when it is not set."""
        if not self.endpoints_table:
            raise SettingsError(f"environment variable {PREFIX}ENDPOINTS_TABLE is not set")
        return self.endpoints_table

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        values = {
            name: environ[PREFIX + name.upper()]
            for name in cls.model_fields
            if PREFIX + name.upper() in environ
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            variable = PREFIX + str(first["loc"][0]).upper() if first["loc"] else PREFIX + "*"
            problem = "is not set" if first["type"] == "missing" else first["msg"]
            raise SettingsError(f"environment variable {variable} {problem}") from None


@cache
def get_settings() -> Settings:
    """Parsed on first use and kept for the life of the execution environment."""
    return Settings.from_environ(os.environ)
