"""The operations endpoints over HTTP: /metrics, /healthz (alive) and /readyz (ready), and the request metrics
and spans of an HTTP API.

The gateway mounts `ops_router` on its own app; a process without the gateway (`edi run validator`) serves it on
the small ops server (`serve_ops`, EDI_OPS_PORT, default 9100; 0 turns it off).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edi.observability import metrics, tracing
from edi.observability.probes import Ops

log = structlog.get_logger(__name__)


class OpsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    ops_host: str = "0.0.0.0"  # probes and Prometheus come from outside the pod
    ops_port: int = 9100  # 0: no ops server (tests that run many processes)


def ops_router(ops: Ops) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    async def metrics_text() -> Response:
        return Response(await metrics.render(), media_type=metrics.CONTENT_TYPE)

    @router.get("/healthz")
    async def alive() -> dict[str, str]:
        # Answered by the process's own event loop: if it answers, the loop runs.
        return {"status": "alive"}

    @router.get("/readyz")
    async def ready() -> JSONResponse:
        readiness = await ops.ready()
        return JSONResponse({"ready": readiness.ready, "checks": readiness.checks, "details": readiness.details},
                            status_code=200 if readiness.ready else 503)

    return router


async def serve_ops(ops: Ops, settings: OpsSettings, stop: asyncio.Event) -> None:
    """Serve the ops endpoints until `stop`. A port that cannot be had is logged, not fatal: the services still
    run (and the probes, failing, say so)."""
    # Returning early would end the process (a component that ends stops the others): wait for `stop` instead.
    if settings.ops_port == 0:
        await stop.wait()
        return
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(ops_router(ops))
    try:
        sock = socket.create_server((settings.ops_host, settings.ops_port), reuse_port=False)
    except OSError as exc:
        log.error("cannot serve /metrics, /healthz and /readyz", host=settings.ops_host, port=settings.ops_port,
                  error=str(exc))
        await stop.wait()
        return
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="ops-http")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        await serving
        sock.close()


class HttpObservability:
    """Per request: the count and duration by route template (not by path, which holds ids), and a server span
    when tracing is on (for a request about a message, in that message's trace)."""

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute]) -> None:
        self.app = app
        self._app_routes = routes  # the application's, to name the route before the request is handled
        self._routes: list[BaseRoute] | None = None  # those, with included routers' routes in their place

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, params = self._route(scope)
        if route in _OPS_PATHS:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with tracing.serving(method, route, headers, params.get("id")) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                if span is not None:
                    span.set_attribute("http.response.status_code", status)
                metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
                metrics.HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)

    def _route(self, scope: Scope) -> tuple[str, dict[str, Any]]:
        if self._routes is None:  # at the first request: the application has all its routes by then
            self._routes = [context.original_route for context in iter_route_contexts(self._app_routes)]
        for route in self._routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                params = child.get("path_params", {})
                return str(getattr(route, "path", "unknown")), {k: str(v) for k, v in params.items()}
        return "unmatched", {}


_OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
