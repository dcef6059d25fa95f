"""DynamoDB adapter for the Runs and Models registries (both tables key on pk/sk strings).

Runs table, two items per run:
  pk=run#<run_id>          sk=run                     the run record; each step SETs its own
                                                      attributes, so concurrent writers never
                                                      overwrite each other's fields
  pk=dataset#<dataset>     sk=<started_at>#<run_id>   a pointer for listing a dataset's runs,
                                                      newest first, without a GSI

Models table, per model (model name = dataset name):
  pk=model#<name>          sk=counter                 `next_version`, bumped atomically
  pk=model#<name>          sk=version#<000001>        one item per registered version

Approving never archives anything. The champion (what a challenger is gated against) is not
decided here: it is the version the model's endpoint serves (`functions/shared/endpoints.py`
`champion`), so an Approved version whose deploy failed or was rolled back is not it.

The CLI uses this module too, with its own client and table names from the stack outputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from functions.shared.errors import error_code, transient_aws_errors

RunStatus = Literal["Running", "Succeeded", "Rejected", "Failed"]
ModelStatus = Literal["PendingApproval", "Approved", "Rejected"]
RUN_SK = "run"
COUNTER_SK = "counter"
VERSION_PREFIX = "version#"
_KEY_ATTRIBUTES = ("pk", "sk")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class RegistryError(LookupError):
    """A run, model or version that does not exist, or is not in the state an action needs."""


def run_key(run_id: str) -> dict[str, str]:
    return {"pk": f"run#{run_id}", "sk": RUN_SK}


def model_pk(model: str) -> str:
    return f"model#{model}"


def version_sk(version: int) -> str:
    return f"{VERSION_PREFIX}{version:06d}"


def _encode_value(value: Any) -> Any:
    """Python → DynamoDB-safe: floats as Decimal, NaN/inf as null, tuples as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int, Decimal)):
        return value
    if isinstance(value, float):
        return None if not math.isfinite(value) else Decimal(repr(value))
    if isinstance(value, Mapping):
        return {str(k): _encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_value(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _encode_value(item())
    raise TypeError(f"cannot store a {type(value).__name__} in the registry")


def _decode_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        integral = value == value.to_integral_value() and int(value.as_tuple().exponent) >= 0
        return int(value) if integral else float(value)
    if isinstance(value, dict):
        return {k: _decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    return value


def to_attributes(document: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_encode_value(v)) for k, v in document.items()}


def from_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: _decode_value(_deserializer.deserialize(v))
        for k, v in item.items()
        if k not in _KEY_ATTRIBUTES
    }


def _set_expression(fields: Mapping[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """`SET` clauses for `fields`; a dotted name (`artifacts.model`) sets one key of a map."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    clauses = []
    for i, (name, value) in enumerate(fields.items()):
        path = []
        for j, part in enumerate(name.split(".")):
            names[f"#f{i}_{j}"] = part
            path.append(f"#f{i}_{j}")
        values[f":v{i}"] = value
        clauses.append(f"{'.'.join(path)} = :v{i}")
    return f"SET {', '.join(clauses)}", names, to_attributes(values)


class _Table:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self.table = table

    def _call(self, operation: str, **arguments: Any) -> Any:
        with transient_aws_errors(f"DynamoDB {operation} on {self.table}"):
            return getattr(self._client, operation)(TableName=self.table, **arguments)

    def _get(self, key: Mapping[str, str]) -> dict[str, Any] | None:
        item = self._call("get_item", Key=to_attributes(key), ConsistentRead=True).get("Item")
        return from_attributes(item) if item else None

    def _query(self, **arguments: Any) -> Iterator[dict[str, Any]]:
        return self._paged("query", arguments)

    def _scan(self, **arguments: Any) -> Iterator[dict[str, Any]]:
        return self._paged("scan", arguments)

    def _paged(self, operation: str, arguments: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page = self._call(operation, **arguments)
            for item in page.get("Items", []):
                yield from_attributes(item)
            if "LastEvaluatedKey" not in page:
                return
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _put_new(self, item: Mapping[str, Any]) -> bool:
        """Put the item unless its key is taken; False when it is (never overwrites)."""
        try:
            self._call(
                "put_item",
                Item=to_attributes(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _update(
        self,
        key: Mapping[str, str],
        fields: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        extra_set: str = "",
    ) -> None:
        expression, set_names, set_values = _set_expression(fields)
        arguments: dict[str, Any] = {
            "Key": to_attributes(key),
            "UpdateExpression": f"{expression}, {extra_set}" if extra_set else expression,
            "ExpressionAttributeNames": {**set_names, **(names or {})},
            "ExpressionAttributeValues": {**set_values, **to_attributes(values or {})},
        }
        if condition:
            arguments["ConditionExpression"] = condition
        self._call("update_item", **arguments)


class RunRegistry(_Table):
    """Run records: created Running by Prepare, updated by each step, finished by the outcome."""

    def upsert_run(self, run_id: str, fields: Mapping[str, Any]) -> None:
        """Create the run or refresh its identifying fields; other steps' fields are kept.

        Upsert rather than put, so a retried Prepare or an outcome recorded for a run that
        Prepare never created both leave one consistent record.
        """
        self._update(
            run_key(run_id),
            {"run_id": run_id, **fields},
            names={"#artifacts": "artifacts"},
            values={":empty": {}},
            extra_set="#artifacts = if_not_exists(#artifacts, :empty)",
        )
        dataset, started_at = fields.get("dataset"), fields.get("started_at")
        if dataset and started_at:
            pointer = {
                "pk": f"dataset#{dataset}",
                "sk": f"{started_at}#{run_id}",
                "run_id": run_id,
                "dataset": dataset,
                "started_at": started_at,
            }
            self._call("put_item", Item=to_attributes(pointer))

    def update_run(self, run_id: str, fields: Mapping[str, Any]) -> None:
        """SET attributes of an existing run (`artifacts.<name>` for one artifact key).

        A missing run is an error rather than a new, partial record.
        """
        try:
            self._update(run_key(run_id), fields, condition="attribute_exists(pk)")
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise RegistryError(f"run {run_id} does not exist in {self.table}") from None
            raise

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self._get(run_key(run_id))

    def require_run(self, run_id: str) -> dict[str, Any]:
        run = self.get_run(run_id)
        if run is None:
            raise RegistryError(f"unknown run '{run_id}'")
        return run

    def list_runs(self, *, dataset: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first; one dataset's runs through its pointers, or every run by a scan."""
        if dataset is not None:
            pointers = self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=to_attributes({":pk": f"dataset#{dataset}"}),
                ScanIndexForward=False,
            )
            run_ids = []
            for pointer in pointers:
                run_ids.append(str(pointer["run_id"]))
                if len(run_ids) >= limit:
                    break
            runs = self._batch_get([run_key(run_id) for run_id in run_ids])
            by_id = {run["run_id"]: run for run in runs}
            return [by_id[run_id] for run_id in run_ids if run_id in by_id]
        runs = list(
            self._scan(
                FilterExpression="sk = :sk",
                ExpressionAttributeValues=to_attributes({":sk": RUN_SK}),
            )
        )
        runs.sort(key=lambda run: (str(run.get("started_at", "")), run["run_id"]), reverse=True)
        return runs[:limit]

    def _batch_get(self, keys: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self.table: {
                    "Keys": [to_attributes(key) for key in keys[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while pending:
                with transient_aws_errors(f"DynamoDB batch_get_item on {self.table}"):
                    page = self._client.batch_get_item(RequestItems=pending)
                found.extend(
                    from_attributes(item) for item in page["Responses"].get(self.table, [])
                )
                pending = page.get("UnprocessedKeys") or {}
        return found


class ModelRegistry(_Table):
    """Model versions: allocated atomically, Approved or PendingApproval at registration."""

    def allocate_version(self, model: str) -> int:
        """The next version number; unique under any number of concurrent registrations."""
        response = self._call(
            "update_item",
            Key=to_attributes({"pk": model_pk(model), "sk": COUNTER_SK}),
            UpdateExpression="ADD #next :one SET #model = :model",
            ExpressionAttributeNames={"#next": "next_version", "#model": "model"},
            ExpressionAttributeValues=to_attributes({":one": 1, ":model": model}),
            ReturnValues="UPDATED_NEW",
        )
        return int(_deserializer.deserialize(response["Attributes"]["next_version"]))

    def put_version(self, record: Mapping[str, Any]) -> bool:
        """Store a new version; False when that version already exists (never overwrites)."""
        item = {
            "pk": model_pk(str(record["model"])),
            "sk": version_sk(int(record["version"])),
            **record,
        }
        return self._put_new(item)

    def set_version_fields(self, model: str, version: int, fields: Mapping[str, Any]) -> None:
        """Add fields to an existing version (e.g. its SageMaker model package ARN)."""
        self._update(
            {"pk": model_pk(model), "sk": version_sk(version)},
            fields,
            condition="attribute_exists(pk)",
        )

    def get_version(self, model: str, version: int) -> dict[str, Any] | None:
        return self._get({"pk": model_pk(model), "sk": version_sk(version)})

    def versions(self, model: str) -> Iterator[dict[str, Any]]:
        """Every version of a model, newest first."""
        return self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_attributes(
                {":pk": model_pk(model), ":prefix": VERSION_PREFIX}
            ),
            ScanIndexForward=False,
            ConsistentRead=True,
        )

    def latest_approved(self, model: str) -> dict[str, Any] | None:
        """The newest Approved version, or None before any version was approved.

        Not the champion (that is what the endpoint serves, see `endpoints.champion`): the
        version a fresh deploy would pick, and the drift baseline before anything serves.
        """
        return next((v for v in self.versions(model) if v.get("status") == "Approved"), None)

    def list_models(self) -> list[str]:
        names = {
            str(item["model"])
            for item in self._scan(
                FilterExpression="sk = :sk",
                ExpressionAttributeValues=to_attributes({":sk": COUNTER_SK}),
            )
        }
        return sorted(names)

    def decide(
        self, model: str, version: int, status: ModelStatus, fields: Mapping[str, Any]
    ) -> None:
        """Move a PendingApproval version to `status`; any other starting state is refused."""
        try:
            self._update(
                {"pk": model_pk(model), "sk": version_sk(version)},
                {"status": status, **fields},
                condition="attribute_exists(pk) AND #current = :pending",
                names={"#current": "status"},
                values={":pending": "PendingApproval"},
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            existing = self.get_version(model, version)
            if existing is None:
                raise RegistryError(f"model {model} has no version {version}") from None
            raise RegistryError(
                f"model {model} version {version} is {existing.get('status')}, not PendingApproval"
            ) from None
