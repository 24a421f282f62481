"""`edi run`: one or more of the backbone's services in this process, for deployments that run each on its own."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from edi.observability.http import OpsSettings, serve_ops
from edi.observability.logging import configure_logging
from edi.observability.tracing import configure_tracing
from edi.services import host
from edi.services.host import ServiceName
from edi.services.runtime import loop


def run(
    services: Annotated[list[ServiceName], typer.Argument(help="The services to run in this process.")],
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="The data directory (default EDI_DATA_DIR, else ./.edi-data).")] = None,
) -> None:
    """Run backbone services until SIGTERM or Ctrl-C: validator, router, mailbox, status, receipts,
    registry-relay. Logs are JSON lines on stderr (EDI_LOG_FORMAT=console for people). /metrics, /healthz and
    /readyz are served on EDI_OPS_PORT (default 9100; 0: not served); EDI_TRACING=true records traces."""
    names = [service.value for service in services]
    configure_logging(
        format="console" if os.environ.get("EDI_LOG_FORMAT") == "console" else "json",
        level=os.environ.get("EDI_LOG_LEVEL", "INFO"), service="+".join(names),
    )
    configure_tracing()
    loop.run(host.serve(names, data_dir=data_dir, extra=_ops_server,
                        started=lambda _: loop.freeze_startup_objects()))


async def _ops_server(parts: host.Parts) -> list[tuple[str, host.Component]]:
    settings = OpsSettings()

    async def run(stop: asyncio.Event) -> None:
        await serve_ops(parts.ops, settings, stop)

    return [("ops-http", run)]
