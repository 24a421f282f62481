"""Migrations when several processes start on a new database at once, as a deployment starts them."""

from __future__ import annotations

import asyncio
import sys
import time

from edi.adapters.sql import make_engine
from edi.services.objects.tables import VERSION_TABLE as OBJECTS_VERSIONS
from edi.services.store.tables import VERSION_TABLE as STORE_VERSIONS

# Every schema the backbone migrates, with its own version table.
MIGRATE_ALL = """
import asyncio, sys, time
from edi.adapters.sql import make_engine, migrate_to_head
from edi.services.objects.tables import VERSION_TABLE as OBJECTS
from edi.services.store.tables import VERSION_TABLE as STORE

async def main(url, start_at):
    engine = make_engine(url)
    await asyncio.sleep(start_at - time.time())  # all processes begin at the same moment
    try:
        await migrate_to_head(engine, "edi.services.store:migrations", STORE)
        await migrate_to_head(engine, "edi.services.objects:migrations", OBJECTS)
        await migrate_to_head(engine, "edi.kapabilitetsregister:migrations")
    finally:
        await engine.dispose()

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""

PROCESSES = 6


async def test_processes_starting_together_on_a_new_database_all_migrate_it(store_url: str) -> None:
    start_at = time.time() + 5
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", MIGRATE_ALL, store_url, str(start_at),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    outcomes = [await asyncio.wait_for(process.communicate(), 120) for process in processes]
    for process, (_, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr.decode()[-2000:]

    engine = make_engine(store_url)
    try:
        async with engine.connect() as connection:
            for table in (STORE_VERSIONS, OBJECTS_VERSIONS, "alembic_version"):
                rows = (await connection.exec_driver_sql(f"SELECT version_num FROM {table}")).all()
                assert len(rows) == 1, (table, rows)
    finally:
        await engine.dispose()
