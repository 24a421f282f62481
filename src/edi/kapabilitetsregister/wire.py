"""The JSON shapes of the registry API that are not entities themselves: check answers, write requests, errors."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edi.kapabilitetsregister.model import Direction, OptionalMoment, OverrideEffect
from edi.kapabilitetsregister.view import CheckOutcome, CheckResult, Verdict


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class VerdictOut(_Wire):
    allowed: bool
    outcome: CheckOutcome
    her_id: int
    direction: Direction
    specification_id: int | None
    reason: str

    @classmethod
    def of(cls, verdict: Verdict) -> VerdictOut:
        return cls(allowed=verdict.allowed, outcome=verdict.outcome, her_id=verdict.her_id,
                   direction=verdict.direction, specification_id=verdict.specification_id, reason=verdict.reason)

    def verdict(self) -> Verdict:
        return Verdict(self.outcome, self.her_id, self.direction, self.specification_id, self.reason)


class CheckOut(_Wire):
    allowed: bool
    at: datetime
    receiver: VerdictOut
    sender: VerdictOut | None = None

    @classmethod
    def of(cls, result: CheckResult, at: datetime) -> CheckOut:
        return cls(allowed=result.allowed, at=at, receiver=VerdictOut.of(result.receiver),
                   sender=None if result.sender is None else VerdictOut.of(result.sender))

    def result(self) -> CheckResult:
        return CheckResult(self.receiver.verdict(), None if self.sender is None else self.sender.verdict())


class MessageCheckOut(_Wire):
    """A message checked for every receiver: which specification it is, and one answer per receiver."""

    allowed: bool
    specification_id: int | None
    description: str  # what the message is, in a refusal's words: the kind's name, or its unknown namespace
    kind: str  # the kind's name, e.g. "Dialogmelding 1.1, DIALOG_INNBYGGER_EKONTAKT"
    governed: bool  # whether the kind is one of the registry's specifications
    results: list[CheckOut]


class GrantIn(_Wire):
    valid_from: OptionalMoment = None
    valid_to: OptionalMoment = None


class OverrideIn(_Wire):
    effect: OverrideEffect
    reason: str = Field(min_length=1)


class ErrorOut(_Wire):
    code: str
    detail: str
