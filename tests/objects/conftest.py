"""An object service on a directory blob store and SQLite (or the session's PostgreSQL), and its API in-process.

The API's caller is whoever the `X-Her-Ids` header says (comma-separated): a stand-in for the gateway's
authentication, which the API takes as a dependency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import Header

from edi.adapters.blobs import BlobStore, DirectoryBlobStore
from edi.services.objects.api import create_objects_app
from edi.services.objects.service import ObjectService

PUBLIC_URL = "https://edi.test"
RETENTION = timedelta(days=30)
MAX_BYTES = 64 * 1024 * 1024
SENDER, RECEIVER, COPY, STRANGER = "8093", "8142", "8150", "9999"

OpenService = Callable[..., Awaitable[ObjectService]]


def header_her_ids(x_her_ids: str = Header(default="")) -> frozenset[str]:
    return frozenset(h.strip() for h in x_her_ids.split(",") if h.strip())


def as_(*her_ids: str) -> dict[str, str]:
    return {"X-Her-Ids": ",".join(her_ids)}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """For the tests whose SQL matters: every database the service runs on."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'objects.db'}"
    url: str = request.getfixturevalue("postgres_server").create_database()
    return url


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'objects.db'}"


# Function loop scope: the engine's connections must live on the test's own event loop.
@pytest_asyncio.fixture(loop_scope="function")
async def open_service(tmp_path: Path) -> AsyncIterator[OpenService]:
    opened: list[ObjectService] = []

    async def open_(database_url: str, blobs: BlobStore | None = None, *, max_bytes: int = MAX_BYTES) -> ObjectService:
        service = await ObjectService.open(database_url, blobs or DirectoryBlobStore(tmp_path / "blobs"),
                                           public_url=PUBLIC_URL, retention=RETENTION, max_bytes=max_bytes)
        opened.append(service)
        return service

    yield open_
    for service in opened:
        await service.close()


@pytest_asyncio.fixture(loop_scope="function")
async def service(open_service: OpenService, database_url: str) -> ObjectService:
    return await open_service(database_url)


@pytest_asyncio.fixture(loop_scope="function")
async def client(service: ObjectService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_objects_app(service, header_her_ids)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as http:
        yield http


async def chunks(content: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start : start + size]


def form(sender: str, receivers: list[str], content: bytes, *, file_name: str = "scan.pdf",
         content_type: str = "application/pdf") -> dict[str, Any]:
    """httpx arguments for the DEFT-style upload form: the fields first, then the file."""
    return {
        "data": {"SenderHerId": sender, "ReceiverHerIds": receivers},
        "files": {"File": (file_name, content, content_type)},
    }
