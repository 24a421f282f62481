"""`edi up`: the whole backbone in one process on embedded defaults, ready for `edi send` and the HTTP API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edi.observability.logging import configure_logging
from edi.services.runtime import loop
from edi.services.up import Started
from edi.services.up import up as run_up


def up(
    host: Annotated[str, typer.Option("--host", help="Interface the HTTP API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port of the HTTP API.")] = 8080,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Where the bus, stores, registry and blobs live (default EDI_DATA_DIR, else ./.edi-data).",
    )] = None,
) -> None:
    """Run the whole backbone in this process until Ctrl-C: every service, the capability registry (with demo
    parties on first start) and the HTTP API. EDI_BUS=kafka, EDI_DATABASE_URL and friends switch parts to
    Kafka or PostgreSQL."""
    configure_logging(format="json" if os.environ.get("EDI_LOG_FORMAT") == "json" else "console",
                      level=os.environ.get("EDI_LOG_LEVEL", "WARNING"))
    loop.run(run_up(host_name=host, port=port, data_dir=data_dir, started=_announce))


def _announce(started: Started) -> None:
    lines = [
        "edi up: the backbone is running (Ctrl-C stops it)",
        f"  data directory  {started.data_dir}",
        f"  bus             {started.bus}",
        f"  store           {started.store}",
        f"  registry        {started.registry}" + (
            f"  ({started.demo_parties} demo parties imported; `kapreg parties list`)" if started.demo_parties else ""),
        f"  blobs           {started.blobs}",
        f"  HTTP API        {started.api_url + ' (EDI 2.0 v2)' if started.api_url else 'not installed'}",
        "Try it:",
        "  edi send ../shared/samples/dialogmelding/ks-no-fiks-nhn-client/dialogmelding/1.0/foresporsel-og-svar/"
        "dialog-notat-webmed-test.xml",
        "  edi inbox --her-id 8143060",
    ]
    if started.data_dir != Path(".edi-data").resolve():
        lines += [f"(other commands find this data directory with --data-dir {started.data_dir} or EDI_DATA_DIR)"]
    typer.echo("\n".join(lines))
    loop.freeze_startup_objects()  # started: see the function
