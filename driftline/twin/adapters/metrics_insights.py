"""The Metrics Insights query subset the twin's alarms evaluate (section 6)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Metrics Insights alarms: one `SELECT` query in Metrics, evaluated per returned time series.
INSIGHTS_FUNCTIONS = {
    "AVG": "Average",
    "COUNT": "SampleCount",
    "MAX": "Maximum",
    "MIN": "Minimum",
    "SUM": "Sum",
}
_INSIGHTS_KEYWORDS = frozenset(
    {"SELECT", "FROM", "SCHEMA", "WHERE", "AND", "OR", "GROUP", "BY", "ORDER", "ASC", "DESC"}
    | {"LIMIT", *INSIGHTS_FUNCTIONS}
)
_INSIGHTS_TOKENS = re.compile(
    r"""\s*(?:
        (?P<value>'(?:[^'\\]|\\.)*')
        |(?P<quoted>"(?:[^"\\]|\\.)*")
        |(?P<symbol>!=|[=(),])
        |(?P<word>\w+)
    )""",
    re.VERBOSE,
)
_INSIGHTS_SUBSET = (
    "the twin evaluates SELECT AVG|COUNT|MAX|MIN|SUM(metric) FROM namespace | "
    "SCHEMA(namespace[, key...]) [WHERE key =|!= 'value' [AND ...]] [GROUP BY key[, key...]] "
    "[ORDER BY FUNCTION() [ASC|DESC]] [LIMIT n]"
)


@dataclass(frozen=True)
class InsightsQuery:
    query_id: str
    expression: str
    period: int
    function: str  # AVG, COUNT, MAX, MIN or SUM
    metric: str
    namespace: str
    schema: tuple[str, ...] | None  # SCHEMA(...): a metric's dimension keys must be exactly these
    where: tuple[tuple[str, str, str], ...]  # (key, "=" or "!=", value), all must hold
    group_by: tuple[str, ...]
    order: tuple[str, bool] | None  # (function, descending)
    limit: int | None


class _InsightsParser:
    """Cursor over a Metrics Insights query's tokens; raises ValueError saying what is wrong."""

    def __init__(self, expression: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        self.index = 0
        position, text = 0, expression.rstrip()
        while position < len(text):
            match = _INSIGHTS_TOKENS.match(text, position)
            if match is None:
                raise ValueError(f"cannot parse {text[position:].strip()!r}")
            kind = str(match.lastgroup)
            token = match.group(kind)
            if kind in ("value", "quoted"):
                token = re.sub(r"\\(.)", r"\1", token[1:-1])
            self.tokens.append((kind, token))
            position = match.end()

    def _next(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _unexpected(self, wanted: str) -> ValueError:
        found = self._next()
        return ValueError(
            f"expected {wanted} but found {found[1]!r}"
            if found
            else f"ends early, expected {wanted}"
        )

    def keyword(self, *words: str) -> str | None:
        found = self._next()
        if found and found[0] == "word" and found[1].upper() in words:
            self.index += 1
            return found[1].upper()
        return None

    def expect_keyword(self, word: str) -> None:
        if self.keyword(word) is None:
            raise self._unexpected(word)

    def symbol(self, symbol: str) -> bool:
        if self._next() == ("symbol", symbol):
            self.index += 1
            return True
        return False

    def expect_symbol(self, symbol: str) -> None:
        if not self.symbol(symbol):
            raise self._unexpected(repr(symbol))

    def function(self) -> str:
        name = self.keyword(*INSIGHTS_FUNCTIONS)
        if name is None:
            raise self._unexpected(f"one of {', '.join(INSIGHTS_FUNCTIONS)}")
        return name

    def identifier(self, what: str) -> str:
        found = self._next()
        if found and (found[0] == "quoted" or (found[0] == "word" and not found[1].isdigit())):
            if found[0] == "word" and found[1].upper() in _INSIGHTS_KEYWORDS:
                raise ValueError(f"{what} {found[1]!r} is a keyword: double-quote it")
            self.index += 1
            return found[1]
        raise self._unexpected(what)

    def comparison(self) -> tuple[str, str, str]:
        key = self.identifier("a dimension key")
        found = self._next()
        if found not in (("symbol", "="), ("symbol", "!=")):
            raise self._unexpected("= or !=")
        self.index += 1
        value = self._next()
        if value is None or value[0] != "value":
            raise self._unexpected("a 'single-quoted' value")
        self.index += 1
        return key, found[1], value[1]

    def number(self) -> int:
        found = self._next()
        if found is None or found[0] != "word" or not found[1].isdigit():
            raise self._unexpected("a number")
        self.index += 1
        return int(found[1])

    def end(self) -> None:
        if self._next() is not None:
            raise self._unexpected("the end of the query")


def _parse_insights_query(expression: str, query_id: str, period: int) -> InsightsQuery:
    """Parse the Metrics Insights subset the twin evaluates (see `_INSIGHTS_SUBSET`)."""
    parser = _InsightsParser(expression)
    parser.expect_keyword("SELECT")
    function = parser.function()
    parser.expect_symbol("(")
    metric = parser.identifier("a metric name")
    parser.expect_symbol(")")
    parser.expect_keyword("FROM")
    schema: tuple[str, ...] | None = None
    if parser.keyword("SCHEMA"):
        parser.expect_symbol("(")
        namespace = parser.identifier("a namespace")
        keys: list[str] = []
        while parser.symbol(","):
            keys.append(parser.identifier("a dimension key"))
        parser.expect_symbol(")")
        schema = tuple(keys)
    else:
        namespace = parser.identifier("a namespace or SCHEMA(...)")
    where: list[tuple[str, str, str]] = []
    if parser.keyword("WHERE"):
        where.append(parser.comparison())
        while parser.keyword("AND"):
            where.append(parser.comparison())
    group_by: list[str] = []
    if parser.keyword("GROUP"):
        parser.expect_keyword("BY")
        group_by.append(parser.identifier("a dimension key"))
        while parser.symbol(","):
            group_by.append(parser.identifier("a dimension key"))
    order: tuple[str, bool] | None = None
    if parser.keyword("ORDER"):
        parser.expect_keyword("BY")
        order_function = parser.function()
        parser.expect_symbol("(")
        parser.expect_symbol(")")
        order = (order_function, parser.keyword("ASC", "DESC") == "DESC")
    limit: int | None = None
    if parser.keyword("LIMIT"):
        limit = parser.number()
        if not 1 <= limit <= 500:
            raise ValueError(f"LIMIT {limit} is outside 1..500")
    parser.end()
    return InsightsQuery(
        query_id=query_id,
        expression=expression,
        period=period,
        function=function,
        metric=metric,
        namespace=namespace,
        schema=schema,
        where=tuple(where),
        group_by=tuple(group_by),
        order=order,
        limit=limit,
    )


def insights_query(alarm: Any) -> InsightsQuery | None:
    """The Metrics Insights query a metric alarm watches; None when Metrics has no SELECT."""
    from moto.cloudwatch.exceptions import ValidationError

    queries = list(alarm.metric_data_queries or [])
    selects = [q for q in queries if str(q.expression or "").lstrip()[:6].upper() == "SELECT"]
    if not selects:
        return None
    query = selects[0]
    if len(queries) != 1:
        raise ValidationError(
            f"alarm {alarm.name}: a Metrics Insights query must be the only entry in Metrics "
            "(the twin does not combine it with other queries or metric math)"
        )
    try:
        period = int(query.period or 0)
    except (TypeError, ValueError):
        period = 0
    if period <= 0:
        raise ValidationError(f"alarm {alarm.name}: the Metrics Insights query needs a Period")
    try:
        return _parse_insights_query(str(query.expression).strip(), str(query.id), period)
    except ValueError as error:
        raise ValidationError(
            f"alarm {alarm.name}: Metrics Insights query {str(query.expression).strip()!r}: "
            f"{error}; {_INSIGHTS_SUBSET}"
        ) from None
