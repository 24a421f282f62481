"""The object janitor: deletes objects that outlive their retention (EDI_OBJECT_RETENTION_DAYS) and cleans up
what interrupted uploads and failed deletions left in the blob store.

Each pass is `ObjectService.sweep`; passes are idempotent and may run in several processes at once. It runs every
EDI_OBJECT_JANITOR_INTERVAL_S as `edi run objects-janitor`, or inside `edi up`.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.exc import SQLAlchemyError

from edi.adapters.blobs import BlobStoreError
from edi.services.objects.service import ObjectService

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
