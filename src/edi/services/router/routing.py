"""Which receivers of a message get it, and why the others do not: the registry check, pure.

Every receiver and copy receiver is checked on its own: one that is unknown (or has no usable HER-id) gets
E21; one that cannot Consume the message's specification gets T10, naming the specification and what the
receiver does support; a message that is none of the registry's specifications gets T10 for everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from edi.core.errors import Code
from edi.core.problems import Problem, problem
from edi.kapabilitetsregister.model import Direction, InvalidHerIdError, parse_her_id
from edi.kapabilitetsregister.specifications import MessageKind, describe_message
from edi.kapabilitetsregister.view import Outcome, RegistryView, Verdict, unrecognised


@dataclass(frozen=True, slots=True)
class Refused:
    receiver_her_id: str
    problem: Problem


@dataclass(frozen=True, slots=True)
class Routing:
    receivers: tuple[str, ...]  # those that get the message, in the message's order
    refused: tuple[Refused, ...]


def route(view: RegistryView, kind: MessageKind, receivers: Sequence[str], at: datetime) -> Routing:
    spec = view.catalogue.recognise(kind)
    allowed: list[str] = []
    refused: list[Refused] = []
    for receiver in receivers:
        try:
            her_id = parse_her_id(receiver)
        except InvalidHerIdError as exc:
            refused.append(Refused(receiver, _unknown(receiver, str(exc))))
            continue
        verdict = unrecognised(her_id, describe_message(kind)) if spec is None else view.check(
            her_id, spec, Direction.CONSUME, at)
        if verdict.allowed:
            allowed.append(receiver)
        elif verdict.outcome is Outcome.UNKNOWN_PARTY:
            refused.append(Refused(receiver, _unknown(receiver, verdict.reason)))
        else:
            refused.append(Refused(receiver, _cannot_consume(receiver, _with_support(view, verdict, at))))
    return Routing(tuple(allowed), tuple(refused))


def _with_support(view: RegistryView, verdict: Verdict, at: datetime) -> str:
    """The verdict's reason, and, when it does not say already, what the receiver can receive instead."""
    if verdict.outcome is not Outcome.NO_CAPABILITY:
        return verdict.reason
    capabilities, _ = view.effective_capabilities(verdict.her_id)
    names = [
        spec.capability(Direction.CONSUME)
        for c in capabilities
        if c.direction is Direction.CONSUME and c.valid_at(at) and (spec := view.catalogue.get(c.specification_id))
    ]
    return f"{verdict.reason}; it can receive: {', '.join(names) if names else 'nothing registered'}"


def _unknown(receiver: str, reason: str) -> Problem:
    return problem(Code.RECEIVER_UNKNOWN, receiver=receiver, reason=reason)


def _cannot_consume(receiver: str, reason: str) -> Problem:
    return problem(Code.RECEIVER_CANNOT_CONSUME, receiver=receiver, reason=reason)
