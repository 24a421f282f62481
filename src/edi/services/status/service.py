"""The status service: edi.status -> per message and receiver, the transport state (Unconfirmed, Acknowledged
when read, Rejected, Abandoned when its time to live runs out) and the receiver's AppRec status and errors, with
a notification to the sender for each change.

Its janitor abandons messages left unread past their time to live: it publishes Abandoned on edi.status before
taking the message out of the receiver's mailbox, so a crash in between only repeats the (idempotent) status.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog

from edi.adapters.bus import Bus, BusUnavailableError
from edi.events import StatusChange, TransportState, default_codec
from edi.events.headers import Correlation, new_traceparent
from edi.schemas.topics import STATUS
from edi.services.runtime import STORE_WRITER_CONCURRENCY, Message, Result, Service
from edi.services.store import BackboneSettings, BackboneStore

log = structlog.get_logger(__name__)


class StatusSettings(BackboneSettings):
    # An unread message is abandoned this long after it was received (EDI 2.0 keeps messages for 14 days).
    message_ttl_s: float = 14 * 24 * 60 * 60
    # How often the janitor looks for messages past their time to live, and how many it takes at a time.
    abandon_interval_s: float = 60.0
    abandon_batch: int = 500


def build(store: BackboneStore) -> Service:
    service = Service("status")

    @service.handler(STATUS, payload=StatusChange, concurrency=STORE_WRITER_CONCURRENCY)
    async def record(message: Message[StatusChange]) -> Result:
        await store.apply_status(message.payload)
        return []

    return service


class Janitor:
    def __init__(self, store: BackboneStore, bus: Bus, settings: StatusSettings) -> None:
        self._store = store
        self._bus = bus
        self._settings = settings
        self._codec = default_codec()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.abandon_expired()
            except BusUnavailableError as exc:
                log.warning("janitor cannot publish now, retrying later", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.abandon_interval_s)

    async def abandon_expired(self) -> int:
        """Abandon every message unread past its time to live; returns how many."""
        count = 0
        while True:
            now = datetime.now(UTC)
            expired = await self._store.expired_unread(
                now - timedelta(seconds=self._settings.message_ttl_s), self._settings.abandon_batch)
            for message_id, receiver in expired:
                change = StatusChange(message_id=message_id, receiver_her_id=receiver,
                                      transport_state=TransportState.ABANDONED, at=now)
                headers = Correlation(message_id=str(message_id), receiver_her_id=receiver,
                                      traceparent=new_traceparent()).to_headers()
                await self._bus.produce(STATUS, self._codec.encode(change), key=change.partition_key(),
                                        headers=headers)
                count += await self._store.mark_abandoned(message_id, receiver, now)
            if len(expired) < self._settings.abandon_batch:
                return count
