"""Reading the dead-letter topics (edi.dlq.<service>) for the operator tools.

A reader joins a consumer group of its own that never commits, reads each topic from its beginning up to the end
it had when the read began, and leaves: the services' own groups are not touched, and the dead letters stay on
their topics (for their retention) whatever operators do; what operators did is kept in the SQL store.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import structlog

from edi.adapters.bus import Bus, BusUnavailableError, Headers, Record
from edi.events import AcceptedMessage, DeadLetter, DecodeError, Delivery, Event, Rejection, StatusChange
from edi.events.codec import AvroCodec
from edi.events.headers import Correlation
from edi.schemas.topics import ACCEPTED, DELIVERIES, INBOUND, REJECTED, STATUS, dead_letter_topic
from edi.services.validator.admission import content_message_id

log = structlog.get_logger(__name__)

READ_TIMEOUT_S = 30.0
# Once the reader has its partitions, this long without a record means it has read all there is (a topic whose
# last records were removed by retention never shows the end offset's record).
IDLE_S = 2.0
_POLL_S = 0.2
# The events whose records carry a message id, by the topic they are on.
_EVENTS: dict[str, type[Event]] = {ACCEPTED: AcceptedMessage, DELIVERIES: Delivery, REJECTED: Rejection,
                                   STATUS: StatusChange}


@dataclass(frozen=True, slots=True)
class StoredLetter:
    service: str
    offset: int
    letter: DeadLetter
    headers: Headers  # the dead-letter record's: the original's (correlation, trace) and the edi-dlq-* ones
    correlation: Correlation
    message_id: uuid.UUID | None


async def read_dead_letters(
    bus: Bus, services: list[str], codec: AvroCodec, *, timeout_s: float = READ_TIMEOUT_S,
) -> list[StoredLetter]:
    """Every dead letter now on the services' dead-letter topics, in topic and offset order."""
    topics = {dead_letter_topic(service): service for service in services}
    ends = await bus.end_offsets(list(topics))
    waiting = {tp: end for tp, end in ends.items() if end > 0}
    if not waiting:
        return []
    letters: list[StoredLetter] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    consumer = await bus.subscribe(f"ops-dead-letters-{uuid.uuid4().hex[:12]}", list(topics))
    try:
        idle_since = loop.time()
        while waiting:
            records = await consumer.poll(max_records=500, timeout_s=_POLL_S)
            now = loop.time()
            if records or not consumer.assignment():
                idle_since = now
            elif now - idle_since > IDLE_S:
                break
            for record in records:
                tp = record.topic_partition
                if record.offset >= ends.get(tp, 0):
                    continue  # arrived after the read began
                if record.offset + 1 >= waiting.get(tp, 0):
                    waiting.pop(tp, None)
                stored = _stored(topics[record.topic], record, codec)
                if stored is not None:
                    letters.append(stored)
            if now > deadline:
                raise BusUnavailableError(f"the dead-letter topics were not read within {timeout_s:.0f} s")
    finally:
        await consumer.close()
    return sorted(letters, key=lambda s: (s.service, s.offset))


def _stored(service: str, record: Record, codec: AvroCodec) -> StoredLetter | None:
    try:
        letter = codec.decode(record.value, DeadLetter)
    except DecodeError as exc:
        log.error("unreadable dead letter skipped", topic=record.topic, offset=record.offset, error=str(exc))
        return None
    correlation = Correlation.from_headers(record.headers)
    return StoredLetter(service, record.offset, letter, record.headers, correlation,
                        _message_id(letter, correlation, codec))


def _message_id(letter: DeadLetter, correlation: Correlation, codec: AvroCodec) -> uuid.UUID | None:
    """The message a dead letter is about: from its correlation header, else from the original record."""
    if correlation.message_id is not None:
        try:
            return uuid.UUID(correlation.message_id)
        except ValueError:
            pass
    if letter.original_value is None:
        return None
    if letter.original_topic == INBOUND:
        return content_message_id(letter.original_value)  # the validator's id for a raw envelope
    event = _EVENTS.get(letter.original_topic)
    if event is None:
        return None
    try:
        decoded = codec.decode(letter.original_value, event)
    except (DecodeError, ValueError):
        return None  # the poison itself may be what could not be decoded
    found: uuid.UUID | None = getattr(decoded, "message_id", None)
    return found
