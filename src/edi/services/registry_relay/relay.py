"""The registry relay: an outbox reader from the registry's store to the compacted edi.registry topic.

The store numbers its change records gap-free in commit order; the relay publishes each one after the last it
published, keyed by the entity key (so compaction keeps each entity's newest state), then records how far it
got in the backbone's store. A crash between the two republishes a few records, which the views ignore (a
record not newer than what a view holds for its key changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.exc import SQLAlchemyError

from edi.adapters.bus import Bus, BusUnavailableError
from edi.events import RegistryChange, default_codec
from edi.kapabilitetsregister.changes import ChangeRecord
from edi.kapabilitetsregister.settings import RegistrySettings
from edi.kapabilitetsregister.store import RegistryStore
from edi.schemas.topics import REGISTRY
from edi.services.runtime.retry import BROKER_BACKOFF
from edi.services.store import BackboneSettings, BackboneStore

log = structlog.get_logger(__name__)

POSITION = "registry-relay"


class RegistryRelaySettings(BackboneSettings):
    # How often the registry's change table is looked at; a change reaches the routers within about this.
    relay_poll_interval_s: float = 0.2
    relay_batch: int = 500

    def registry_settings(self) -> RegistrySettings:
        return RegistrySettings(data_dir=self.data_dir)


def change_event(record: ChangeRecord) -> RegistryChange:
    return RegistryChange(
        kind=record.key.split("/", 1)[0], key=record.key,
        payload=None if record.after is None else record.to_json().decode(), sequence=record.seq,
    )


class RegistryRelay:
    def __init__(
        self, registry: RegistryStore, store: BackboneStore, bus: Bus, settings: RegistryRelaySettings
    ) -> None:
        self._registry = registry
        self._store = store
        self._bus = bus
        self._settings = settings
        self._codec = default_codec()
        self._position: int | None = None  # the last sequence number published

    async def catch_up(self) -> None:
        """Publish what the registry holds beyond what was published before: a process that starts the relay with
        the routers does this first, so that they start with the registry as it is."""
        if self._position is None:
            self._position = await self._store.relay_position(POSITION)
            log.info("registry relay started", after=self._position)
        self._position = await self.publish_after(self._position)

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await self.catch_up()
                failures = 0
            except (BusUnavailableError, SQLAlchemyError, OSError) as exc:
                failures += 1
                log.warning("registry relay cannot publish now, retrying", error=str(exc), attempt=failures)
                await _sleep_unless(stop, BROKER_BACKOFF.delay_s(failures))
                continue
            await _sleep_unless(stop, self._settings.relay_poll_interval_s)

    async def publish_after(self, position: int) -> int:
        """Publish the change records after `position`, in order; returns the new position."""
        while True:
            records = await self._registry.changes(after=position, limit=self._settings.relay_batch)
            if not records:
                return position
            for record in records:
                # One at a time: records of one key must reach the topic in sequence order, or compaction could
                # keep a stale one as the entity's state.
                await self._bus.produce(REGISTRY, self._codec.encode(change_event(record)), key=record.key.encode())
            position = records[-1].seq
            await self._store.set_relay_position(POSITION, position)
            log.info("registry changes published", up_to=position, count=len(records))


async def _sleep_unless(stop: asyncio.Event, delay_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay_s)

