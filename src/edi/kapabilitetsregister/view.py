"""The in-memory read model and the capability check.

The view answers checks from dictionaries, never touching the database: routers keep one, fed by the store's
change records. The store answers the same check by loading the relevant rows into a view of its own, so there
is exactly one implementation of the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from edi.kapabilitetsregister.changes import ChangeRecord
from edi.kapabilitetsregister.model import (
    Capability,
    Direction,
    Override,
    OverrideEffect,
    Party,
)
from edi.kapabilitetsregister.specifications import Catalogue, Specification


class CapabilityPolicy(StrEnum):
    """How much the receiver check enforces (EDI_CAPABILITY_POLICY); docs/capability-policy.md has the table."""

    REGISTERED = "registered"  # enforce what the registry knows; deliver, recording why, what it does not know
    STRICT = "strict"  # deliver only what the registry positively allows
    ADDRESS_ONLY = "address-only"  # only that the receiver is a registered, active party


class CheckOutcome(StrEnum):
    ALLOWED = "allowed"
    # Delivered without a capability check, and why (see UNCHECKED_REASONS).
    UNCHECKED_NOT_GOVERNED = "unchecked_not_governed"
    UNCHECKED_NO_CAPABILITIES = "unchecked_no_capabilities"
    UNCHECKED_BY_POLICY = "unchecked_by_policy"
    UNKNOWN_PARTY = "unknown_party"
    INACTIVE = "inactive"
    OUTSIDE_VALIDITY = "outside_validity"
    DENIED_BY_OVERRIDE = "denied_by_override"
    NO_CAPABILITY = "no_capability"
    OTHER_VERSIONS_ONLY = "other_versions_only"
    UNRECOGNISED_MESSAGE = "unrecognised_message"


# Why a receiver got a message unchecked: the fixed set of reasons the metrics and the coverage report use.
UNCHECKED_REASONS: dict[CheckOutcome, str] = {
    CheckOutcome.UNCHECKED_NOT_GOVERNED: "kind not governed by the registry",
    CheckOutcome.UNCHECKED_NO_CAPABILITIES: "receiver has registered no capabilities",
    CheckOutcome.UNCHECKED_BY_POLICY: "capability check off (policy address-only)",
}
_DELIVERABLE = frozenset({CheckOutcome.ALLOWED, *UNCHECKED_REASONS})


class Verdict(NamedTuple):
    """The answer for one party: allowed or not, and a reason the sender can act on. (A tuple: the cheapest
    immutable object to make, and one is made per check on the hot path.)"""

    outcome: CheckOutcome
    her_id: int
    direction: Direction
    specification_id: int | None
    reason: str

    @property
    def allowed(self) -> bool:
        """Whether the message may be delivered: allowed by the registry, or delivered unchecked."""
        return self.outcome in _DELIVERABLE

    @property
    def unchecked(self) -> bool:
        return self.outcome in UNCHECKED_REASONS


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A delivery check: the receiver must Consume the specification; the sender, when asked, must Produce it."""

    receiver: Verdict
    sender: Verdict | None = None

    @property
    def allowed(self) -> bool:
        return self.receiver.allowed and (self.sender is None or self.sender.allowed)

    @property
    def verdicts(self) -> list[Verdict]:
        return [self.receiver] if self.sender is None else [self.receiver, self.sender]


_CapabilityIndex = dict[tuple[int, Direction], Capability]
_VERB = {Direction.CONSUME: "receive", Direction.PRODUCE: "send"}


class RegistryView:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._parties: dict[int, Party] = {}
        self._capabilities: dict[int, _CapabilityIndex] = {}
        self._overrides: dict[int, dict[int, Override]] = {}
        self._applied: dict[str, int] = {}  # key -> seq of the record that last set it
        self._registered: dict[tuple[int, Direction], str] = {}  # the reason of an allowed check, made once
        self._own_directions: dict[int, frozenset[Direction]] = {}  # which directions a party has entries in
        self.last_seq = 0

    # --- feeding the view -------------------------------------------------------------------------------------

    def apply(self, record: ChangeRecord) -> bool:
        """Apply one change record; False when it is not newer than what the view holds for its key (a
        redelivery or a stale record), which is then ignored."""
        if record.seq <= self._applied.get(record.key, 0):
            return False
        self._applied[record.key] = record.seq
        self.last_seq = max(self.last_seq, record.seq)
        if record.after is not None:
            self.put(record.after)
        else:
            self._remove(record.key)
        return True

    def apply_all(self, records: Iterable[ChangeRecord]) -> None:
        for record in records:
            self.apply(record)

    def put(self, entity: Party | Capability | Override) -> None:
        if isinstance(entity, Party):
            self._parties[entity.her_id] = entity
        elif isinstance(entity, Capability):
            self._capabilities.setdefault(entity.her_id, {})[(entity.specification_id, entity.direction)] = entity
            self._own_directions.pop(entity.her_id, None)
        else:
            self._overrides.setdefault(entity.her_id, {})[entity.specification_id] = entity

    def _remove(self, key: str) -> None:
        kind, her, *rest = key.split("/")
        her_id = int(her)
        if kind == "party":
            self._parties.pop(her_id, None)
        elif kind == "capability":
            self._capabilities.get(her_id, {}).pop((int(rest[0]), Direction(rest[1])), None)
            self._own_directions.pop(her_id, None)
        else:
            self._overrides.get(her_id, {}).pop(int(rest[0]), None)

    # --- reading ----------------------------------------------------------------------------------------------

    def party(self, her_id: int) -> Party | None:
        return self._parties.get(her_id)

    def accepts_file_reference(self, her_id: int) -> bool:
        """Whether the party takes large attachments as a RefDoc/FileReference URL (else it gets them inline)."""
        party = self._parties.get(her_id)
        return party is not None and party.accepts_file_reference

    def parties(self) -> list[Party]:
        return sorted(self._parties.values(), key=lambda p: p.her_id)

    def own_capabilities(self, her_id: int) -> list[Capability]:
        return sorted(self._capabilities.get(her_id, {}).values(), key=_capability_order)

    def overrides(self, her_id: int) -> list[Override]:
        return sorted(self._overrides.get(her_id, {}).values(), key=lambda o: o.specification_id)

    def effective_capabilities(self, her_id: int) -> tuple[list[Capability], int | None]:
        """The capabilities that answer checks for a party, and the HER-id they were inherited from (if so)."""
        party = self._parties.get(her_id)
        if party is None:
            return [], None
        found: list[Capability] = []
        source = None
        for direction in Direction:
            index, inherited_from = self._effective(party, direction)
            found += [c for c in index.values() if c.direction is direction]
            source = source or inherited_from
        return sorted(found, key=_capability_order), source

    def entities(self) -> Iterator[Party | Capability | Override]:
        """Everything the view holds, in a stable order (for comparing two views)."""
        yield from self.parties()
        for her_id in sorted(self._capabilities):
            yield from self.own_capabilities(her_id)
        for her_id in sorted(self._overrides):
            yield from self.overrides(her_id)

    # --- the check --------------------------------------------------------------------------------------------

    def check_delivery(
        self, receiver: int, spec: Specification | None, at: datetime, sender: int | None = None, *,
        policy: CapabilityPolicy, kind_name: str = "",
    ) -> CheckResult:
        """The receiver (Consume) and, when asked, the sender (Produce), both under the policy."""
        return CheckResult(
            receiver=self.check_with_policy(receiver, spec, Direction.CONSUME, at, policy, kind_name),
            sender=None if sender is None or spec is None
            else self.check_with_policy(sender, spec, Direction.PRODUCE, at, policy, kind_name),
        )

    def check_with_policy(
        self, her_id: int, spec: Specification | None, direction: Direction, at: datetime, policy: CapabilityPolicy,
        kind_name: str = "",
    ) -> Verdict:
        """May this party receive (or send) a message of this specification (None: a kind the registry does not
        govern, named `kind_name`) under the policy? The registry is a pilot still being filled in: under
        `registered` only what it knows is enforced, and the rest passes with the reason it was not checked."""
        party = self._parties.get(her_id)
        if party is None or not party.active or not party.valid_at(at):
            return self._party_refusal(her_id, party, spec, direction)
        if spec is not None and self._override(party, spec.id, at) is not None:
            return self.check(her_id, spec, direction, at)  # the override decides, under every policy
        if policy is CapabilityPolicy.ADDRESS_ONLY:
            return _unchecked(CheckOutcome.UNCHECKED_BY_POLICY, her_id, spec, direction)
        if spec is None:
            if policy is CapabilityPolicy.STRICT:
                return unrecognised(her_id, kind_name)
            return _unchecked(CheckOutcome.UNCHECKED_NOT_GOVERNED, her_id, spec, direction)
        if policy is CapabilityPolicy.REGISTERED and not self._registers_any(party, direction, at):
            return _unchecked(CheckOutcome.UNCHECKED_NO_CAPABILITIES, her_id, spec, direction)
        return self.check(her_id, spec, direction, at)

    def _registers_any(self, party: Party, direction: Direction, at: datetime) -> bool:
        """Has the party registered capabilities in this direction: one valid now, its own or inherited?
        (Entries of the other direction, expired entries and overrides do not count.)"""
        index, _ = self._effective(party, direction)
        return any(c.direction is direction and c.valid_at(at) for c in index.values())

    def check(self, her_id: int, spec: Specification, direction: Direction, at: datetime) -> Verdict:
        """Can this party receive (Consume) or send (Produce) this specification at this moment?"""
        party = self._parties.get(her_id)
        if party is None or not party.active or not party.valid_at(at):
            return self._party_refusal(her_id, party, spec, direction)
        override = self._override(party, spec.id, at)
        if override is not None:
            if override.effect is OverrideEffect.ALLOW:
                return Verdict(CheckOutcome.ALLOWED, her_id, direction, spec.id,
                               f"allowed by an operator override: {override.reason}")
            return Verdict(CheckOutcome.DENIED_BY_OVERRIDE, her_id, direction, spec.id,
                           f"{_label(party)} may not {_VERB[direction]} {spec.display_name}: operator override: "
                           f"{override.reason}")
        index, inherited_from = self._effective(party, direction)
        key = (spec.id, direction)
        capability = index.get(key)
        if capability is not None and capability.valid_at(at):
            if inherited_from is None:
                reason = self._registered.get(key) or self._registered.setdefault(
                    key, f"{spec.capability(direction)} (registered)")
            else:
                reason = f"{spec.capability(direction)} (inherited from organisation {inherited_from})"
            return Verdict(CheckOutcome.ALLOWED, her_id, direction, spec.id, reason)
        return self._refusal(party, spec, direction, at, index, capability)

    @staticmethod
    def _party_refusal(
        her_id: int, party: Party | None, spec: Specification | None, direction: Direction = Direction.CONSUME,
    ) -> Verdict:
        """Why a party that is unknown, inactive or outside its registered period can take nothing."""
        spec_id = None if spec is None else spec.id
        if party is None:
            return Verdict(CheckOutcome.UNKNOWN_PARTY, her_id, direction, spec_id,
                           f"HER-id {her_id} is not a registered communication party")
        if not party.active:
            return Verdict(CheckOutcome.INACTIVE, her_id, direction, spec_id, f"{_label(party)} is not active")
        return Verdict(CheckOutcome.OUTSIDE_VALIDITY, her_id, direction, spec_id,
                       f"{_label(party)} is registered only {party.period}")

    def _refusal(
        self, party: Party, spec: Specification, direction: Direction, at: datetime,
        index: _CapabilityIndex, capability: Capability | None,
    ) -> Verdict:
        her_id, verb = party.her_id, _VERB[direction]
        if capability is not None:
            return Verdict(CheckOutcome.OUTSIDE_VALIDITY, her_id, direction, spec.id,
                           f"{_label(party)} can {verb} {spec.display_name} only {capability.period}")
        others = [
            other.display_name for other in self.catalogue.other_versions(spec)
            if (held := index.get((other.id, direction))) is not None and held.valid_at(at)
        ]
        if others:
            return Verdict(CheckOutcome.OTHER_VERSIONS_ONLY, her_id, direction, spec.id,
                           f"{_label(party)} cannot {verb} {spec.display_name}; of {spec.standard} it supports "
                           f"only: {'; '.join(others)}")
        reason = (f"{_label(party)} has no {direction.value} capability for {spec.display_name} "
                  f"({spec.capability(direction)})")
        if direction is Direction.CONSUME:  # what to send it instead
            supported = [
                known.capability(direction) for c in sorted(index.values(), key=_capability_order)
                if c.direction is direction and c.valid_at(at) and (known := self.catalogue.get(c.specification_id))
            ]
            reason += f"; it can receive: {', '.join(supported) if supported else 'nothing registered'}"
        return Verdict(CheckOutcome.NO_CAPABILITY, her_id, direction, spec.id, reason)

    def _effective(self, party: Party, direction: Direction) -> tuple[_CapabilityIndex, int | None]:
        """The entries that answer for a party in one direction: its own, or, when it has none in that direction,
        its organisation's. (Per direction: a service that registered only what it sends still receives what its
        organisation registered.) Both directions' entries are returned; callers look up their direction."""
        own = self._capabilities.get(party.her_id)
        if party.parent_her_id is None or (own and direction in self._directions(party.her_id, own)):
            return own or {}, None
        return self._capabilities.get(party.parent_her_id) or {}, party.parent_her_id

    def _directions(self, her_id: int, own: _CapabilityIndex) -> frozenset[Direction]:
        found = self._own_directions.get(her_id)
        if found is None:
            found = self._own_directions[her_id] = frozenset(direction for _, direction in own)
        return found

    def _override(self, party: Party, specification_id: int, at: datetime) -> Override | None:
        # The party's own override wins over its organisation's. Few parties have any: look only where there are.
        for her_id in (party.her_id, party.parent_her_id):
            overrides = self._overrides.get(her_id) if her_id is not None else None
            if overrides:
                override = overrides.get(specification_id)
                if override is not None and override.valid_at(at):
                    return override
        return None


def unrecognised(her_id: int, description: str) -> Verdict:
    """The verdict for a message that is none of the registry's specifications."""
    return Verdict(CheckOutcome.UNRECOGNISED_MESSAGE, her_id, Direction.CONSUME, None,
                   f"the message ({description}) is none of the registry's message specifications, so no "
                   "receiver can be found able to take it")


def _unchecked(outcome: CheckOutcome, her_id: int, spec: Specification | None, direction: Direction) -> Verdict:
    reason = UNCHECKED_REASONS[outcome]
    if direction is Direction.PRODUCE:
        reason = reason.replace("receiver", "sender")
    verb = "delivered" if direction is Direction.CONSUME else "sent"
    return Verdict(outcome, her_id, direction, None if spec is None else spec.id,
                   f"{verb} without a capability check: {reason}")


def unchecked_text(reason: str) -> str:
    """The words for a recorded unchecked reason (an UNCHECKED_* outcome's value, as the events carry it)."""
    try:
        return UNCHECKED_REASONS[CheckOutcome(reason)]
    except (ValueError, KeyError):
        return reason


def _label(party: Party) -> str:
    return f"HER-id {party.her_id}" + (f" ({party.name})" if party.name else "")


def _capability_order(capability: Capability) -> tuple[int, str]:
    return capability.specification_id, capability.direction.value
