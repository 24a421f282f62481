"""Alembic environment of the object service's schema.

The service runs migrations itself on a connection it passes in `config.attributes["connection"]`; run from the
alembic command line, the database URL comes from `sqlalchemy.url` or the EDI_* settings.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from edi.adapters.sql import make_engine
from edi.services.objects.settings import ObjectSettings
from edi.services.objects.tables import VERSION_TABLE, metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or ObjectSettings().database_url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


given = config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    asyncio.run(_run_with_own_engine())
