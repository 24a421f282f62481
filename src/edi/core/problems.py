"""A problem found in a message: what, where, and what the sender should tell its user."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from edi.core.errors import CATALOGUE, AppRecCode, Code, Severity


class Problem(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    apprec_code: AppRecCode
    severity: Severity
    message: str
    message_nb: str
    line: int | None = None
    path: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


def problem(code: Code, *, line: int | None = None, path: str | None = None, **values: Any) -> Problem:
    definition = CATALOGUE[code]
    en, nb = definition.format(**values)
    return Problem(
        code=definition.code, apprec_code=definition.apprec, severity=definition.severity,
        message=en, message_nb=nb, line=line, path=path,
    )


class DocumentRefused(Exception):
    """Raised when a document cannot be read at all (too large, not XML, forbidden DTD)."""

    def __init__(self, refusal: Problem) -> None:
        super().__init__(refusal.message)
        self.problem = refusal
