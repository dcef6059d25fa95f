"""A violation is one broken rule, aggregated over every row that breaks it.

Validation reports *all* problems of a dataset at once, so a data owner can fix a file in one
round trip; one record per (column, rule) with a count and a few row numbers keeps that report
small however many rows are bad.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Violation:
    """`count` is the number of offending rows (1 for a file- or schema-level problem).

    `rows` holds up to five 1-based data row numbers (the header is not a data row).
    """

    rule: str
    message: str
    column: str | None = None
    count: int = 1
    rows: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "rule": self.rule,
            "count": self.count,
            "rows": list(self.rows),
            "message": self.message,
        }


@dataclass
class _Tally:
    message: str
    count: int = 0
    rows: list[int] = field(default_factory=list)


class ViolationCollector:
    """Accumulates violations chunk by chunk, keeping the first message and first row numbers.

    Chunks arrive in file order, so the first sample rows seen are the smallest row numbers.
    """

    def __init__(self, sample_rows: int = SAMPLE_ROWS) -> None:
        self._sample_rows = sample_rows
        self._tallies: dict[tuple[str | None, str], _Tally] = {}

    def add(
        self,
        rule: str,
        message: str,
        *,
        column: str | None = None,
        count: int = 1,
        rows: list[int] | tuple[int, ...] = (),
    ) -> None:
        tally = self._tallies.setdefault((column, rule), _Tally(message))
        tally.count += count
        room = self._sample_rows - len(tally.rows)
        if room > 0:
            tally.rows.extend(rows[:room])

    def extend(self, violations: list[Violation]) -> None:
        for violation in violations:
            self.add(
                violation.rule,
                violation.message,
                column=violation.column,
                count=violation.count,
                rows=violation.rows,
            )

    def has(self, rule: str, column: str | None = None) -> bool:
        return (column, rule) in self._tallies

    def __len__(self) -> int:
        return len(self._tallies)

    def violations(self) -> list[Violation]:
        return [
            Violation(rule, tally.message, column, tally.count, tuple(tally.rows))
            for (column, rule), tally in self._tallies.items()
        ]
