"""Request rows checked against a model's feature schema, and turned into model inputs.

Pure logic (no AWS): the handler parses the transport, this module decides whether the rows
can be scored and says exactly why not. A request is refused whole on its first bad value,
naming the row (0-based), the column and the reason, because a client fixing a batch wants the
first thing to fix, not a partial answer it has to stitch back together.

Value rules (the same coercions training applied, so a value means the same thing at both ends):
- numeric features take JSON numbers; `bool`/`boolean` features also take true/false;
- categorical features take strings, and integers (read as their decimal text, like a CSV
  column of digits was during training);
- `null` is a missing value (the model was trained to handle missing values);
- NaN and ±Infinity are refused: JSON has no such numbers, and a client sending them has a bug;
  so are numbers beyond a float's range (`1` followed by 400 zeros).

Whatever the bytes, a client's mistake is a `RequestError` (a 4xx answer), never another
exception: integers over Python's 4,300-digit conversion limit, documents nested deeper than
the parser's recursion limit and undecodable text included. A raise counts in the endpoint's
Errors metric, which rolls deployments back; `tests/unit/test_inference.py` fuzzes this.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ExtraFeatures = Literal["ignore", "reject"]

_NUMERIC_TYPES = frozenset(
    {
        "int", "integer", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
        "uint64", "long", "float", "float32", "float64", "double", "number", "numeric",
        "decimal",
    }
)  # fmt: skip
_BOOLEAN_TYPES = frozenset({"bool", "boolean"})
# Finite floats lie strictly between these; NaN compares false with both.
_FINITE_LOW, _FINITE_HIGH = -math.inf, math.inf
_TOO_LARGE = "the number is too large for a float (beyond ±1.8e308)"


class RequestError(ValueError):
    """A request the model cannot score; `status` is the HTTP status it maps to."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str = "InvalidRequest",
        row: int | None = None,
        column: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.row = row
        self.column = column
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"code": self.code, "message": str(self)}
        for name in ("row", "column", "reason"):
            value = getattr(self, name)
            if value is not None:
                document[name] = value
        return document


class NonFinite:
    """A NaN/Infinity literal seen while parsing, kept so the error can name row and column."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_payload_bytes: int
    extra_features: ExtraFeatures


@dataclass(frozen=True)
class FeatureSchema:
    """The features a model was trained on, in training order, with their contract types."""

    features: tuple[str, ...]
    types: Mapping[str, str]
    _kinds: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kinds: dict[str, str] = {}
        for name in self.features:
            declared = self.types.get(name, "float").strip().lower()
            if declared in _BOOLEAN_TYPES:
                kinds[name] = "boolean"
            elif declared in _NUMERIC_TYPES:
                kinds[name] = "numeric"
            else:
                kinds[name] = "categorical"
        object.__setattr__(self, "_kinds", kinds)

    def kind(self, name: str) -> str:
        return self._kinds[name]

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> FeatureSchema:
        features = tuple(str(name) for name in metadata["features"])
        types = {str(k): str(v) for k, v in dict(metadata.get("feature_types") or {}).items()}
        return cls(features=features, types=types)


@dataclass(frozen=True)
class CheckedRows:
    """Column-major values ready for a DataFrame, plus the rows as received (for capture)."""

    columns: dict[str, list[Any]]
    rows: list[dict[str, Any]]
    ignored_features: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)


def parse_body(body: str | bytes, limits: Limits) -> Any:
    """The JSON document of a request body; 413 above the size limit, 400 if malformed."""
    size = len(body.encode("utf-8", "surrogatepass")) if isinstance(body, str) else len(body)
    if size > limits.max_payload_bytes:
        raise RequestError(
            f"request body is {size} bytes; the limit is {limits.max_payload_bytes} bytes "
            "(send fewer rows per request)",
            status=413,
            code="PayloadTooLarge",
        )
    if size == 0:
        raise RequestError('request body is empty; send {"rows": [{feature: value, ...}]}')
    try:
        return json.loads(body, parse_constant=NonFinite)
    except json.JSONDecodeError as error:
        raise RequestError(
            f"request body is not valid JSON: {error}", code="MalformedJson"
        ) from None
    except UnicodeDecodeError:
        raise RequestError(
            "request body is not valid JSON: it is not UTF-8 text", code="MalformedJson"
        ) from None
    except ValueError:
        # int() refuses integer literals over sys.get_int_max_str_digits() (4,300) digits.
        raise RequestError(
            "request body is not valid JSON here: an integer has too many digits "
            "(send a number that fits a float)",
            code="MalformedJson",
        ) from None
    except RecursionError:
        raise RequestError(
            "request body is not valid JSON here: it is nested too deeply "
            '(send {"rows": [{feature: value, ...}]})',
            code="MalformedJson",
        ) from None


def request_rows(document: Any, limits: Limits) -> list[Any]:
    """The `rows` list of a request document (a bare list of rows is accepted too)."""
    if isinstance(document, Mapping):
        if "rows" not in document:
            keys = ", ".join(sorted(str(key) for key in document)) or "none"
            raise RequestError(
                f'request has no "rows" key (keys: {keys}); send {{"rows": [{{...}}, ...]}}'
            )
        rows = document["rows"]
    else:
        rows = document
    if not isinstance(rows, list):
        raise RequestError(f'"rows" must be a list of objects, got {_json_type(rows)}')
    if not rows:
        raise RequestError('"rows" is empty; send at least one row')
    if len(rows) > limits.max_rows:
        raise RequestError(
            f"request has {len(rows)} rows; the limit is {limits.max_rows} rows per request",
            status=413,
            code="TooManyRows",
        )
    return rows


def check_rows(rows: Sequence[Any], schema: FeatureSchema, limits: Limits) -> CheckedRows:
    """Every row checked against the schema; RequestError names the first bad value.

    The loop is the per-request cost that grows with the batch, so finite JSON numbers for
    numeric features (nearly every value) take a fast path; everything else goes through
    `_coerce`, which decides and explains.
    """
    features = schema.features
    kinds = [(name, schema.kind(name)) for name in features]
    columns: dict[str, list[Any]] = {name: [] for name in features}
    appenders = [(name, kind, columns[name].append) for name, kind in kinds]
    kept_rows: list[dict[str, Any]] = []
    ignored: set[str] = set()
    known = set(features)
    width = len(features)
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RequestError(
                f"row {index}: expected an object of feature values, got {_json_type(row)}",
                code="InvalidRow",
                row=index,
                reason=f"not an object ({_json_type(row)})",
            )
        for name, kind, append in appenders:
            try:
                value = row[name]
            except KeyError:
                raise RequestError(
                    f"row {index}, column '{name}': missing (send null for a missing value)",
                    code="MissingFeature",
                    row=index,
                    column=name,
                    reason="missing",
                ) from None
            kind_of_value = type(value)
            if kind_of_value is float and kind == "numeric" and _FINITE_LOW < value < _FINITE_HIGH:
                append(value)
            elif kind_of_value is int and kind == "numeric":
                try:
                    append(float(value))
                except OverflowError:
                    raise _type_error(index, name, _TOO_LARGE) from None
            else:
                append(_coerce(value, kind, index, name))
        if len(row) > width:
            extra = [str(key) for key in row if key not in known]
            if limits.extra_features == "reject":
                raise RequestError(
                    f"row {index}, column '{extra[0]}': not a feature of this model "
                    f"(it takes {width} features)",
                    code="UnknownFeature",
                    row=index,
                    column=extra[0],
                    reason="not a feature of this model",
                )
            ignored.update(extra)
            kept_rows.append({name: row[name] for name in features})
        else:
            kept_rows.append(dict(row))
    return CheckedRows(columns=columns, rows=kept_rows, ignored_features=tuple(sorted(ignored)))


def _coerce(value: Any, kind: str, row: int, column: str) -> Any:
    if value is None:
        return math.nan if kind != "categorical" else None
    if isinstance(value, NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        literal = value.literal if isinstance(value, NonFinite) else repr(value)
        raise _type_error(
            row, column, f"{literal} is not a JSON number; send null for a missing value"
        )
    if kind == "categorical":
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return str(value)
            except ValueError:  # over sys.get_int_max_str_digits() digits
                raise _type_error(row, column, "the integer has too many digits") from None
        raise _type_error(row, column, f"expected a string, got {_json_type(value)}")
    if isinstance(value, bool):
        if kind == "boolean":
            return float(value)
        raise _type_error(row, column, "expected a number, got a boolean")
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            raise _type_error(row, column, _TOO_LARGE) from None
    expected = "true/false or a number" if kind == "boolean" else "a number"
    raise _type_error(row, column, f"expected {expected}, got {_json_type(value)}")


def _type_error(row: int, column: str, reason: str) -> RequestError:
    return RequestError(
        f"row {row}, column '{column}': {reason}",
        code="InvalidValue",
        row=row,
        column=column,
        reason=reason,
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        try:
            shown = repr(value)
        except ValueError:  # an integer over sys.get_int_max_str_digits() digits
            return "a number (too many digits to show)"
        return f"a number ({shown if len(shown) <= 20 else shown[:17] + '...'})"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"a string ({shown!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, NonFinite):
        return value.literal
    return type(value).__name__
