"""A registry view kept current from the compacted edi.registry topic.

Each process that checks capabilities (router, mailbox, receipts, the gateway's backbone) holds one: it reads the
topic from its beginning in a consumer group of its own that never commits, so a restart rebuilds the view from
the compacted topic, and it is `ready` once it has read what the topic held when it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import structlog

from edi.adapters.bus import Bus, BusUnavailableError, Record, TopicPartition
from edi.events import DecodeError, RegistryChange, default_codec
from edi.kapabilitetsregister.changes import ChangeRecord
from edi.kapabilitetsregister.specifications import Catalogue, default_catalogue
from edi.kapabilitetsregister.view import RegistryView
from edi.schemas.topics import REGISTRY
from edi.services.runtime.retry import BROKER_BACKOFF

log = structlog.get_logger(__name__)

POLL_TIMEOUT_S = 0.2


def change_record(change: RegistryChange) -> ChangeRecord:
    """The registry's change record a RegistryChange carries (a removal carries no payload: only the key)."""
    if change.payload is not None:
        return ChangeRecord.from_json(change.payload)
    her_id = int(change.key.split("/")[1])
    return ChangeRecord(seq=change.sequence, at=datetime.now(UTC), actor="edi.registry", key=change.key,
                        her_id=her_id, before=None, after=None)


class RegistryFeed:
    def __init__(self, bus: Bus, owner: str, catalogue: Catalogue | None = None) -> None:
        self.view = RegistryView(catalogue or default_catalogue())
        self.ready = asyncio.Event()
        self._bus = bus
        self._group = f"{owner}-registry-view-{uuid.uuid4().hex[:12]}"
        self._codec = default_codec()
        self._ends: dict[TopicPartition, int] = {}
        self._positions: dict[TopicPartition, int] = {}

    async def wait_ready(self) -> RegistryView:
        await self.ready.wait()
        return self.view

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                await self._follow(stop)
                return
            except BusUnavailableError as exc:
                attempt += 1
                log.warning("registry view cannot read edi.registry now, retrying", error=str(exc), attempt=attempt)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), BROKER_BACKOFF.delay_s(attempt))

    async def _follow(self, stop: asyncio.Event) -> None:
        if not self.ready.is_set():
            self._ends = await self._bus.end_offsets([REGISTRY])
            self._check_caught_up()
        consumer = await self._bus.subscribe(self._group, [REGISTRY])
        try:
            while not stop.is_set():
                for record in await consumer.poll(max_records=1000, timeout_s=POLL_TIMEOUT_S):
                    self._apply(record)
                if not self.ready.is_set():
                    self._check_caught_up()
        finally:
            await consumer.close()

    def _apply(self, record: Record) -> None:
        self._positions[record.topic_partition] = record.offset + 1
        if record.value is None:
            return  # a tombstone: the key's last record, already applied, is compacted away
        try:
            self.view.apply(change_record(self._codec.decode(record.value, RegistryChange)))
        except (DecodeError, ValueError) as exc:
            # One unreadable record must not blind the view to every later change: say so loudly, go on.
            log.error("unreadable registry change skipped", offset=record.offset, error=str(exc))

    def _check_caught_up(self) -> None:
        if all(self._positions.get(tp, 0) >= end for tp, end in self._ends.items()):
            log.info("registry view caught up", last_seq=self.view.last_seq)
            self.ready.set()
