"""Serving an ASGI app as one component of a backbone process: uvicorn until the process's `stop` event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn
from starlette.types import ASGIApp


def http_component(app: ASGIApp, host: str, port: int) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))

    async def run(stop: asyncio.Event) -> None:
        serving = asyncio.create_task(server.serve(), name="gateway-http")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        stopping.cancel()
        await serving

    return run
