"""`edi up`: the whole backbone in one process, on embedded defaults unless the settings say otherwise.

Embedded bus, SQLite stores and blobs in one data directory, the capability registry with demo parties on first
start, every service, the object janitor, and the HTTP API (the gateway with the object API at /objects, in
development mode with locally issued dev tokens) when it is installed. `EDI_BUS=kafka`, `EDI_DATABASE_URL`,
`EDI_REGISTRY_DATABASE_URL` and `EDI_BLOB_STORE=s3` move a part to production infrastructure; the rest of the
process stays the same.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from edi.adapters.blobs.settings import BlobSettings
from edi.kapabilitetsregister.import_export import parse_import
from edi.kapabilitetsregister.store import RegistryStore
from edi.observability.probes import Ops
from edi.observability.tracing import configure_tracing
from edi.services import host
from edi.services.backbone import Backbone
from edi.services.objects import janitor
from edi.services.objects.service import ObjectService
from edi.services.objects.settings import ObjectSettings
from edi.services.operations.service import Operations
from edi.services.registry_relay.relay import RegistryRelaySettings
from edi.services.validator.service import ValidatorSettings

DEMO_REGISTRY = "demo-registry.json"
DEMO_ACTOR = "edi up (demo data)"


@dataclass(frozen=True, slots=True)
class Started:
    """What `edi up` tells its user at start."""

    data_dir: Path
    bus: str
    store: str
    registry: str
    blobs: str
    api_url: str | None  # None: the HTTP API is not installed
    demo_parties: int  # parties imported now (0: the registry had parties already)


async def seed_demo_registry(registry: RegistryStore) -> int:
    """Import the demo parties into an empty registry; returns how many (none when it has parties)."""
    if await registry.list_parties():
        return 0
    data = (resources.files("edi.services") / DEMO_REGISTRY).read_bytes()
    result = await registry.import_parties(parse_import(data, DEMO_REGISTRY), DEMO_ACTOR)
    return len({change.her_id for change in result.changes})


def gateway_installed() -> bool:
    return importlib.util.find_spec("edi.services.gateway.app") is not None


async def up(
    *, host_name: str, port: int, data_dir: Path | None, stop: asyncio.Event | None = None,
    started: Callable[[Started], None] | None = None, with_api: bool = True,
) -> None:
    overrides: dict[str, Any] = {} if data_dir is None else {"data_dir": data_dir}
    relay_settings = RegistryRelaySettings(**overrides)
    api = with_api and gateway_installed()
    configure_tracing()
    demo = 0

    async def seed_and_serve_api(parts: host.Parts) -> Sequence[tuple[str, host.Component]]:
        nonlocal demo
        registry = await parts.registry(relay_settings)
        demo = await seed_demo_registry(registry)
        if demo:
            relay = parts.relay  # the demo parties reach the views before the services start
            if relay is not None:
                await relay.catch_up()
        attachments = await parts.attachments()
        interval_s = ObjectSettings(**overrides).object_janitor_interval_s

        async def sweep(stop: asyncio.Event) -> None:
            await janitor.run(attachments.objects, interval_s, stop)

        if not api:
            return [("objects-janitor", sweep)]
        backbone = Backbone(
            bus=await parts.bus(), store=await parts.store(), validator=parts.validator(), feed=await parts.feed(),
            require_schemas=ValidatorSettings(**overrides).require_schemas, attachments=attachments,
        )
        gateway = _gateway(backbone, registry, attachments.objects, relay_settings.data_dir, host_name, port,
                           parts.ops, Operations(await parts.bus(), await parts.store()))
        return [("objects-janitor", sweep), ("gateway", gateway)]

    def announce(parts: host.Parts) -> None:
        settings = parts.settings
        if started is None:
            return
        bus = (f"kafka ({settings.kafka_bootstrap_servers})" if settings.bus == "kafka"
               else f"embedded ({settings.bus_path.resolve()})")
        blob_settings = BlobSettings(**overrides)
        blobs = (f"s3 (bucket {blob_settings.s3_bucket})" if blob_settings.blob_store == "s3"
                 else str((blob_settings.blob_dir or blob_settings.data_dir / "blobs").resolve()))
        started(Started(
            data_dir=settings.data_dir.resolve(), bus=bus, store=_safe(settings.store_url),
            registry=_safe(relay_settings.registry_settings().database_url), blobs=blobs,
            api_url=f"http://{host_name}:{port}" if api else None, demo_parties=demo,
        ))

    await host.serve(host.SERVICES, data_dir=data_dir, stop=stop, extra=seed_and_serve_api, started=announce)


def _gateway(
    backbone: Backbone, registry: RegistryStore, objects: ObjectService, data_dir: Path, host_name: str, port: int,
    ops: Ops, operations: Operations,
) -> host.Component:
    import uvicorn

    from edi.services.gateway.access import RegistryDirectory
    from edi.services.gateway.app import create_app
    from edi.services.gateway.settings import Environment, GatewaySettings

    # A laptop's backbone trusts the local dev issuer unless the environment says otherwise.
    defaults = {} if "EDI_ENVIRONMENT" in os.environ else {"environment": Environment.DEVELOPMENT}
    settings = GatewaySettings(data_dir=data_dir, **defaults)  # type: ignore[arg-type]
    app = create_app(backbone, settings, directory=RegistryDirectory(registry), objects=objects, ops=ops,
                     operations=operations)
    server = uvicorn.Server(uvicorn.Config(app, host=host_name, port=port, log_config=None, access_log=False))

    async def run(stop: asyncio.Event) -> None:
        serving = asyncio.create_task(server.serve(), name="gateway-http")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        stopping.cancel()
        await serving

    return run


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
