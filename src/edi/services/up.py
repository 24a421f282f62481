"""`edi up`: the whole backbone in one process, on embedded defaults unless the settings say otherwise.

Embedded bus, SQLite stores and blobs in one data directory, the capability registry with demo parties on first
start, every service, the object janitor, and the HTTP API (the gateway with the object API at /objects, in
development mode with locally issued dev tokens) when it is installed. `EDI_BUS=kafka`, `EDI_DATABASE_URL`,
`EDI_REGISTRY_DATABASE_URL` and `EDI_BLOB_STORE=s3` move a part to production infrastructure; the rest of the
process stays the same.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from edi.adapters.blobs.settings import BlobSettings
from edi.core.catalog import SchemaInventory
from edi.core.validation import Validator
from edi.kapabilitetsregister.import_export import parse_import
from edi.kapabilitetsregister.store import RegistryStore
from edi.observability.tracing import configure_tracing
from edi.services import host
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
    schemas: SchemaInventory  # what the validator validates, with which schema set
    require_schemas: bool  # documents with a part of a standard in schemas.missing are refused


async def seed_demo_registry(registry: RegistryStore) -> int:
    """Import the demo parties into an empty registry; returns how many (none when it has parties)."""
    if await registry.list_parties():
        return 0
    data = (resources.files("edi.services") / DEMO_REGISTRY).read_bytes()
    result = await registry.import_parties(parse_import(data, DEMO_REGISTRY), DEMO_ACTOR)
    return len({change.her_id for change in result.changes})


async def up(
    *, host_name: str, port: int, data_dir: Path | None, stop: asyncio.Event | None = None,
    started: Callable[[Started], None] | None = None, with_api: bool = True, validator: Validator | None = None,
) -> None:
    """`validator`: the one to use (`edi up --schemas` makes it, to refuse a broken set before starting); by
    default, the EDI_* settings'."""
    overrides: dict[str, Any] = {} if data_dir is None else {"data_dir": data_dir}
    relay_settings = RegistryRelaySettings(**overrides)
    settings: dict[str, Any] = {"http_host": host_name, "http_port": port}
    if "EDI_ENVIRONMENT" not in os.environ:  # a laptop's backbone trusts the local dev issuer unless told otherwise
        settings["environment"] = "development"
    configure_tracing()
    demo = 0

    async def seed(parts: host.Parts) -> Sequence[tuple[str, host.Component]]:
        nonlocal demo
        demo = await seed_demo_registry(await parts.registry(relay_settings))
        if demo and parts.relay is not None:  # the demo parties reach the views before the services start
            await parts.relay.catch_up()
        return []

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
            api_url=f"http://{host_name}:{port}" if with_api else None, demo_parties=demo,
            schemas=parts.validator().catalog.inventory(),
            require_schemas=ValidatorSettings(**parts.overrides).require_schemas,
        ))

    names = [*host.SERVICES, host.ServiceName.OBJECTS_JANITOR, *([host.ServiceName.GATEWAY] if with_api else [])]
    await host.serve(names, data_dir=data_dir, stop=stop, extra=seed, started=announce, settings=settings,
                     validator=validator)


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
