"""The backbone's SQL store on each engine it runs on: SQLite, and the session's real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from edi.services.store import BackboneStore
from tests.support.postgres import PostgresServer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database()
    return f"sqlite+aiosqlite:///{tmp_path / 'backbone.db'}"


@pytest_asyncio.fixture(loop_scope="function")
async def store(store_url: str) -> AsyncIterator[BackboneStore]:
    opened = await BackboneStore.open(store_url)
    yield opened
    await opened.close()
