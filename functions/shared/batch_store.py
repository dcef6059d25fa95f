"""The state of a multi-part run, shared by its three steps (list, validate a part, merge)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from functions.shared.state import NAME_PATTERN, StepState
from pipelines.keys import DATASETS_PREFIX
from pipelines.uploads import BATCH_MARKERS


class BatchState(StepState):
    """The execution input for a batch: `key`/`version_id` are the marker's.

    A re-run of an accepted batch (a retrain) starts from the Datasets table instead, where
    the version's key is the batch prefix: then `key` is the prefix and `prefix` may be absent.
    """

    dataset: str = Field(pattern=NAME_PATTERN)
    bucket: str = Field(min_length=3)
    key: str = Field(min_length=1)
    version_id: str = Field(min_length=1)
    prefix: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _prefix_from_a_prefix_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("prefix"):
            key = str(data.get("key") or "")
            if key.endswith("/"):
                return {**data, "prefix": key}
        return data

    @property
    def marker_key(self) -> str | None:
        """The marker's key, or None when the run was started from the batch prefix."""
        return None if self.key == self.prefix else self.key

    @property
    def inside_datasets(self) -> bool:
        """The prefix is this dataset's batch and the key its marker or itself (never `..`)."""
        segments = self.prefix.rstrip("/").split("/")
        return (
            self.prefix.startswith(f"{DATASETS_PREFIX}{self.dataset}/")
            and self.prefix.endswith("/")
            and len(segments) == 3
            and ".." not in segments
            and (self.key == self.prefix or self.key.removeprefix(self.prefix) in BATCH_MARKERS)
        )


class Listed(StepState):
    """`$.validation` after ListParts found parts to validate."""

    status: Literal["listed"]
    parts: int = Field(ge=0)
    parts_key: str = Field(min_length=1)
    contract_key: str = Field(min_length=1)
    contract_source: str = Field(min_length=1)
    marker_key: str = ""  # empty when unknown (a re-run started from the prefix)


class ListedBatch(BatchState):
    validation: Listed


class PartRef(StepState):
    index: int = Field(ge=0)
    key: str = Field(min_length=1)
    version_id: str = Field(min_length=1)
    size: int = Field(default=0, ge=0)


class PartState(StepState):
    """One Distributed Map item: the part plus what every part shares."""

    dataset: str = Field(pattern=NAME_PATTERN)
    bucket: str = Field(min_length=3)
    version_id: str = Field(min_length=1)
    contract_key: str = Field(min_length=1)
    contract_source: str = Field(min_length=1)
    part: PartRef

    @model_validator(mode="after")
    def _part_is_inside_the_dataset(self) -> PartState:
        if not self.part.key.startswith(f"{DATASETS_PREFIX}{self.dataset}/") or (
            ".." in self.part.key.split("/")
        ):
            raise ValueError(f"part key {self.part.key!r} is not under datasets/{self.dataset}/")
        return self
