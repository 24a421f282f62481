"""Alembic environment of the backbone's store (mailbox, status, notifications, duplicates, receipts).

The store runs migrations itself on a connection it passes in `config.attributes["connection"]`; run from the
alembic command line, the database URL comes from `sqlalchemy.url` or the EDI_* settings. The version table has
its own name, so the store may share a database with the capability registry.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from edi.adapters.sql import make_engine
from edi.services.store.settings import StoreSettings
from edi.services.store.tables import VERSION_TABLE, metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, version_table=VERSION_TABLE
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or StoreSettings().store_url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


given = config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    asyncio.run(_run_with_own_engine())
