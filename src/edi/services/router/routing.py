"""Which receivers of a message get it, and why the others do not: the registry check, pure.

Every receiver and copy receiver is checked on its own, under the deployment's capability policy (see
`RegistryView.check_with_policy` and docs/capability-policy.md): one that is unknown (or has no usable HER-id) gets
E21; one the registry knows cannot Consume the message's specification gets T10, naming the specification and
what the receiver does support. A receiver the policy lets through unchecked gets the message, with the reason
it was not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from edi.core.errors import Code
from edi.core.kinds import MessageKind
from edi.core.problems import Problem, problem
from edi.kapabilitetsregister.model import Direction, InvalidHerIdError, parse_her_id
from edi.kapabilitetsregister.view import CapabilityPolicy, CheckOutcome, RegistryView


@dataclass(frozen=True, slots=True)
class RefusedReceiver:
    receiver_her_id: str
    problem: Problem


@dataclass(frozen=True, slots=True)
class Receiving:
    receiver_her_id: str
    unchecked: CheckOutcome | None  # why the capability check was not made (an UNCHECKED_* outcome); None: it was


@dataclass(frozen=True, slots=True)
class Routing:
    receivers: tuple[Receiving, ...]  # those that get the message, in the message's order
    refused: tuple[RefusedReceiver, ...]


def route(
    view: RegistryView, kind: MessageKind, receivers: Sequence[str], at: datetime, policy: CapabilityPolicy,
) -> Routing:
    spec = view.catalogue.recognise(kind)
    allowed: list[Receiving] = []
    refused: list[RefusedReceiver] = []
    for receiver in receivers:
        try:
            her_id = parse_her_id(receiver)
        except InvalidHerIdError as exc:
            refused.append(RefusedReceiver(receiver, _unknown(receiver, str(exc))))
            continue
        verdict = view.check_with_policy(her_id, spec, Direction.CONSUME, at, policy, kind.description)
        if verdict.allowed:
            allowed.append(Receiving(receiver, verdict.outcome if verdict.unchecked else None))
        elif verdict.outcome is CheckOutcome.UNKNOWN_PARTY:
            refused.append(RefusedReceiver(receiver, _unknown(receiver, verdict.reason)))
        else:
            refused.append(RefusedReceiver(receiver, _cannot_consume(receiver, verdict.reason)))
    return Routing(tuple(allowed), tuple(refused))


def _unknown(receiver: str, reason: str) -> Problem:
    return problem(Code.RECEIVER_UNKNOWN, receiver=receiver, reason=reason)


def _cannot_consume(receiver: str, reason: str) -> Problem:
    return problem(Code.RECEIVER_CANNOT_CONSUME, receiver=receiver, reason=reason)
