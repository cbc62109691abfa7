"""Spec errors: every problem of a config, each naming file, object and field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Issue:
    """One problem found in the object files."""

    file: str
    kind: str
    name: str
    field: str
    message: str

    @property
    def obj(self) -> str:
        """``Kind/name`` as shown to users."""
        return f"{self.kind}/{self.name}" if self.name else self.kind or "-"

    def __str__(self) -> str:
        where = ":".join(p for p in (self.file, self.obj, self.field) if p and p != "-")
        return f"{where}: {self.message}"


class SpecError(Exception):
    """A config was rejected whole; ``issues`` lists every problem (never empty)."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(set(issues))
        super().__init__("\n".join(str(i) for i in self.issues))
