"""Async SQLAlchemy engines from a URL: SQLite (aiosqlite) on one machine, PostgreSQL (asyncpg) in production.

The same store code runs on both; what differs is set up here once.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str | URL, **options: Any) -> AsyncEngine:
    """An engine for `sqlite+aiosqlite:///path` or `postgresql+asyncpg://...` (other async drivers pass through).

    SQLite: the database file's directory is created; every connection gets WAL (readers never block the
    writer), a busy timeout (concurrent writers wait for the lock instead of failing at once), enforced foreign
    keys, and synchronous=NORMAL (durable across application crashes, which is what WAL needs).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(parsed, pool_pre_ping=True, **options)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        parsed,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        **options,
    )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "foreign_keys=ON",
        "synchronous=NORMAL",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


# Alembic keeps its running migration in module globals: two migrations at once in one process would clash.
_MIGRATION_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


async def migrate_to_head(engine: AsyncEngine, script_location: str, version_table: str = "alembic_version") -> None:
    """Bring the database to the newest migration of `script_location` (e.g. "edi.services.store:migrations")."""
    def config(connection: sa.Connection) -> Config:
        alembic = Config()
        alembic.set_main_option("script_location", script_location)
        alembic.attributes["connection"] = connection
        return alembic

    def is_current(connection: sa.Connection) -> bool:
        head = ScriptDirectory.from_config(config(connection)).get_current_head()
        context = MigrationContext.configure(connection, opts={"version_table": version_table})
        return context.get_current_revision() == head

    def upgrade(connection: sa.Connection) -> None:
        if not is_current(connection):
            command.upgrade(config(connection), "head")

    async with _MIGRATION_LOCKS.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
        async with engine.connect() as connection:  # the usual start: current already, no lock needed
            if await connection.run_sync(is_current):
                return
        async with engine.begin() as connection:
            await _lock_for_migration(connection, version_table)
            await connection.run_sync(upgrade)


async def _lock_for_migration(connection: AsyncConnection, version_table: str) -> None:
    """Take a database-wide lock held until the migration's transaction ends, so that processes starting together
    (the gateway beside the services) migrate one after the other: the later one finds the schema current.

    SQLite: BEGIN IMMEDIATE takes the write lock up front (the driver would otherwise run DDL outside any
    transaction); a waiting process waits out the busy timeout. PostgreSQL: a transaction-scoped advisory lock
    named after the version table (its DDL is transactional)."""
    backend = connection.dialect.name
    if backend == "sqlite":
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif backend == "postgresql":
        await connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": version_table})


def run_migration_environment(
    metadata: sa.MetaData, default_url: Callable[[], str], version_table: str = "alembic_version",
) -> None:
    """The body of every Alembic `env.py` of the project. `migrate_to_head` passes its connection in
    `config.attributes["connection"]`; from the alembic command line the URL is `sqlalchemy.url`, else
    `default_url()` (the EDI_* settings)."""
    from alembic import context

    config = context.config

    def run(connection: sa.Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                          version_table=version_table)
        with context.begin_transaction():
            context.run_migrations()

    async def run_with_own_engine() -> None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or default_url())
        async with engine.connect() as connection:
            await connection.run_sync(run)
        await engine.dispose()

    given = config.attributes.get("connection")
    if given is not None:
        run(given)
    else:
        asyncio.run(run_with_own_engine())
