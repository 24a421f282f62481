"""The object janitor: deletes objects that outlive their retention (EDI_OBJECT_RETENTION_DAYS) and cleans up
what interrupted uploads and failed deletions left in the blob store.

Each pass is `ObjectService.sweep`; passes are idempotent and may run in several processes at once. Run it as
its own process (`python -m edi.services.objects.janitor`, every EDI_OBJECT_JANITOR_INTERVAL_S) or as a task next
to the object API (`run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import structlog
from sqlalchemy.exc import SQLAlchemyError

from edi.adapters.blobs import BlobSettings, BlobStoreError
from edi.observability.logging import configure_logging
from edi.services.objects.service import ObjectService
from edi.services.objects.settings import ObjectSettings

log = structlog.get_logger("edi.objects.janitor")


async def run(service: ObjectService, interval_s: float, stop: asyncio.Event) -> None:
    """Sweep now and every `interval_s` until `stop` is set. A pass that fails (the blob store or database is
    unreachable) is logged and tried again at the next interval."""
    while not stop.is_set():
        try:
            result = await service.sweep()
        except (BlobStoreError, SQLAlchemyError, OSError) as exc:
            log.warning("janitor pass failed; trying again later", error=str(exc))
        else:
            log.info("janitor pass", expired=result.expired, purged=result.purged, orphans=result.orphans,
                     uploads=result.uploads)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def main() -> None:
    configure_logging(format="console" if os.environ.get("EDI_LOG_FORMAT") == "console" else "json",
                      level=os.environ.get("EDI_LOG_LEVEL", "INFO"), service="objects-janitor")
    settings = ObjectSettings()
    service = await settings.open_service(await BlobSettings().open_blob_store())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run(service, settings.object_janitor_interval_s, stop)
    finally:
        await service.close()


if __name__ == "__main__":
    asyncio.run(main())
