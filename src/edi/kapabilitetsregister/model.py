"""The registry's entities: communication parties, their capabilities and operator overrides.

Each entity is the full state of one key; a change record carries the state after the change (or None when the
entity was removed), so applying records per key in order rebuilds the registry exactly.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

# Naive times typed by an operator are Norwegian wall-clock time.
LOCAL_ZONE = ZoneInfo("Europe/Oslo")
_HER_ID = re.compile(r"[1-9][0-9]{0,9}")
MAX_HER_ID = 2**31 - 1  # HER-ids are 32-bit integers in the address register (AR)


class RegistryError(Exception):
    """An operation the registry refuses; the message says what to correct."""

    code = "registry_error"


class InvalidInputError(RegistryError, ValueError):
    """Also a ValueError, so that pydantic reports it with the field it was found in."""

    code = "invalid_input"


class InvalidHerIdError(InvalidInputError):
    code = "invalid_her_id"


class UnknownSpecificationError(InvalidInputError):
    code = "unknown_specification"


class UnknownPartyError(RegistryError):
    code = "unknown_party"


class Direction(StrEnum):
    CONSUME = "Consume"
    PRODUCE = "Produce"


class PartyKind(StrEnum):
    ORGANISATION = "organisation"  # AR level 1
    SERVICE = "service"  # AR level 2: a service (tjeneste) under an organisation
    PERSON = "person"


class DeliveryChannel(StrEnum):
    MAILBOX = "mailbox"  # the EDI 2.0 API mailbox
    KAFKA = "kafka"  # a named Kafka topic of the receiver's own


class OverrideEffect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


def parse_her_id(value: object) -> int:
    text = str(value).strip()
    if not _HER_ID.fullmatch(text) or int(text) > MAX_HER_ID:
        raise InvalidHerIdError(f"malformed HER-id {str(value)!r}: a HER-id is a positive whole number (e.g. 8138082)")
    return int(text)


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or time; without an offset it is Norwegian local time. Returned in UTC."""
    cleaned = text.strip()
    try:
        parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"unreadable time {text!r}: use ISO 8601, e.g. 2026-05-01 or 2026-05-01T08:00"
        ) from None
    return as_utc(parsed)


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LOCAL_ZONE)
    return moment.astimezone(UTC)


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def _local(moment: datetime) -> str:
    local = moment.astimezone(LOCAL_ZONE)
    return local.strftime("%Y-%m-%d" if (local.hour, local.minute) == (0, 0) else "%Y-%m-%d %H:%M")


def _organisation_number(value: str) -> str:
    if not re.fullmatch(r"[0-9]{9}", value):
        raise ValueError(f"organisation number {value!r} is not 9 digits")
    return value


HerId = Annotated[int, BeforeValidator(parse_her_id)]
OrganisationNumber = Annotated[str, AfterValidator(_organisation_number)]
Moment = Annotated[datetime, AfterValidator(as_utc)]
OptionalMoment = Annotated[datetime | None, AfterValidator(_utc)]


class _Entity(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")

    valid_from: OptionalMoment = None
    valid_to: OptionalMoment = None  # exclusive

    @model_validator(mode="after")
    def _period_in_order(self) -> _Entity:
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValueError(f"validity ends ({self.valid_to}) before it starts ({self.valid_from})")
        return self

    def valid_at(self, at: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= at) and (self.valid_to is None or at < self.valid_to)

    @property
    def period(self) -> str:
        """The validity in words, in Norwegian local time: "from 2026-05-01 until 2027-01-01"."""
        parts = [f"{word} {_local(moment)}" for word, moment in (("from", self.valid_from), ("until", self.valid_to))
                 if moment is not None]
        return " ".join(parts) or "at any time"

    def same_content(self, other: _Entity | None) -> bool:
        """Equal apart from who changed it and when: a write that would change nothing else is not made."""
        return other is not None and self.model_dump(exclude=_METADATA) == other.model_dump(exclude=_METADATA)


_METADATA = {"updated_by", "updated_at", "registered_by", "registered_at", "set_by", "set_at"}


class Party(_Entity):
    """A communication party of the address register (AR), as the registry knows it."""

    entity: Literal["party"] = "party"
    her_id: HerId
    name: str | None = None
    kind: PartyKind = PartyKind.ORGANISATION
    parent_her_id: HerId | None = None  # a service's or person's organisation (AR level 1)
    organisation_number: OrganisationNumber | None = None
    active: bool = True
    source_system: str | None = None
    source_version: str | None = None
    delivery_channel: DeliveryChannel = DeliveryChannel.MAILBOX
    kafka_topic: str | None = None
    accepts_file_reference: bool = False  # may receive large attachments as a RefDoc/FileReference URL
    updated_by: str
    updated_at: Moment

    @model_validator(mode="after")
    def _channel_names_topic(self) -> Party:
        if (self.delivery_channel is DeliveryChannel.KAFKA) != bool(self.kafka_topic):
            raise ValueError("a Kafka delivery channel needs a topic name, and only a Kafka channel has one")
        if self.parent_her_id == self.her_id:
            raise ValueError("a party cannot be its own parent")
        return self

    @property
    def key(self) -> str:
        return f"party/{self.her_id}"


class Capability(_Entity):
    """A party can Consume (receive and open) or Produce (send) one message specification."""

    entity: Literal["capability"] = "capability"
    her_id: HerId
    specification_id: int
    direction: Direction
    registered_by: str
    registered_at: Moment

    @property
    def key(self) -> str:
        return f"capability/{self.her_id}/{self.specification_id}/{self.direction.value}"


class Override(_Entity):
    """An operator's explicit allow or deny of a specification for a party whose registered data is incomplete.
    It applies to both directions and takes precedence over capabilities."""

    entity: Literal["override"] = "override"
    her_id: HerId
    specification_id: int
    effect: OverrideEffect
    reason: str = Field(min_length=1)
    set_by: str
    set_at: Moment

    @property
    def key(self) -> str:
        return f"override/{self.her_id}/{self.specification_id}"


Entity = Annotated[Party | Capability | Override, Field(discriminator="entity")]
