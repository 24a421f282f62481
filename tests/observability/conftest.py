"""The services' installation fixtures, and the ops endpoints of a running process over real HTTP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from edi.observability.http import OpsSettings, serve_ops
from edi.observability.probes import Ops
from tests.services.conftest import bus_kind, installation

__all__ = ["bus_kind", "installation", "ops_endpoints"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def ops_endpoints(ops: Ops) -> AsyncIterator[httpx.AsyncClient]:
    """The ops server (what `edi run` serves on EDI_OPS_PORT) for these parts, and a client of it."""
    settings = OpsSettings(ops_host="127.0.0.1", ops_port=free_port())
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_ops(ops, settings, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.ops_port}", timeout=10) as client:
            for _ in range(100):
                try:
                    await client.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            yield client
    finally:
        stop.set()
        await serving


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "heavy: a slow test (crash, whole sample set, broker restart, benchmark)")
