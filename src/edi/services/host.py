"""Running any set of the backbone's services in one process: one of them (`edi run router`) or all of them
(`edi up`), on the bus, store and registry the settings name.

The parts a process needs are opened once and shared: the bus, the SQL store, the validator (its compiled
schemas), and one registry view fed from edi.registry for the router, mailbox and receipts. Every service then
runs until SIGTERM/SIGINT (or the `stop` event); if one of them fails, the others are stopped and the failure
ends the process.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from edi.adapters.bus import Bus
from edi.core.catalog import SchemaInventory, grouped_labels
from edi.core.validation import Validator
from edi.kapabilitetsregister.store import RegistryStore
from edi.observability.probes import Ops
from edi.schemas.topics import ALL_TOPICS
from edi.services.backbone import Backbone
from edi.services.mailbox import service as mailbox
from edi.services.objects import janitor as objects_janitor
from edi.services.objects.offload import Attachments
from edi.services.objects.settings import ObjectSettings
from edi.services.operations.service import Operations
from edi.services.receipts import service as receipts
from edi.services.registry_relay.feed import RegistryFeed
from edi.services.registry_relay.relay import RegistryRelay, RegistryRelaySettings
from edi.services.router import service as router
from edi.services.runtime import Service, ServiceSettings, run_service
from edi.services.status import service as status
from edi.services.store import BackboneSettings, BackboneStore
from edi.services.validator import service as validator
from edi.settings import ValidationSettings

log = structlog.get_logger(__name__)

class ServiceName(StrEnum):
    VALIDATOR = "validator"
    ROUTER = "router"
    MAILBOX = "mailbox"
    STATUS = "status"
    RECEIPTS = "receipts"
    REGISTRY_RELAY = "registry-relay"
    GATEWAY = "gateway"  # the HTTP API (EDI 2.0 v2, notifications, /objects, /ops)
    OBJECTS_JANITOR = "objects-janitor"  # deletes objects past their retention


# The services on the bus; a process of them all carries every message from edi.inbound to the mailboxes.
SERVICES = tuple(name.value for name in ServiceName if name not in (ServiceName.GATEWAY, ServiceName.OBJECTS_JANITOR))

# A part of a process: runs until `stop` is set.
Component = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Parts:
    """The shared parts of one process, each opened on first use and closed with the process."""

    def __init__(self, overrides: dict[str, Any], stack: AsyncExitStack, validator: Validator | None = None) -> None:
        self.overrides = overrides  # settings given on the command line, over the EDI_* environment
        self.settings = BackboneSettings(**overrides)
        self._stack = stack
        self._bus: Bus | None = None
        self._store: BackboneStore | None = None
        self._given_validator = validator  # one the command made already (`edi up --schemas`)
        self._validator: Validator | None = None
        self._feed: RegistryFeed | None = None
        self._registry: RegistryStore | None = None
        self._attachments: Attachments | None = None
        self.relay: RegistryRelay | None = None  # set when this process runs the registry relay
        self.components: list[tuple[str, Component]] = []
        self.ops = Ops(stack)  # what /metrics and /readyz report of this process

    async def bus(self) -> Bus:
        if self._bus is None:
            bus = self.settings.open_bus()
            await bus.start()
            self._stack.push_async_callback(bus.close)
            await bus.ensure_topics(ALL_TOPICS)
            self._bus = bus
            self.ops.watch_bus(bus)
        return self._bus

    async def store(self) -> BackboneStore:
        if self._store is None:
            self._store = await BackboneStore.open(self.settings.store_url)
            self._stack.push_async_callback(self._store.close)
            self.ops.watch_database("store", self._store.engine)
        return self._store

    def validator(self) -> Validator:
        if self._validator is None:
            self._validator = self._given_validator or ValidationSettings().validator()
            # At start, so that a set that does not compile stops the process rather than a sender's message.
            self._validator.catalog.compile_all()
            self._tell_schemas_missing(self._validator.catalog.inventory())
        return self._validator

    def _tell_schemas_missing(self, inventory: SchemaInventory) -> None:
        """A process that validates says at start, and in /readyz, which known standards it cannot validate, so
        that documents accepted unvalidated (or refused, under EDI_REQUIRE_SCHEMAS) are no surprise."""
        if not inventory.missing:
            return
        required = validator.ValidatorSettings(**self.overrides).require_schemas
        outcome = "refused (EDI_REQUIRE_SCHEMAS)" if required else "accepted unvalidated"
        log.warning("standards not validated: no schema installed", documents=outcome,
                    standards=[standard.label for standard in inventory.missing],
                    hint="--schemas DIR or EDI_SCHEMA_DIRS; `edi schemas` lists what is installed")
        self.ops.tell("schemas", f"not validated, {outcome}: {', '.join(grouped_labels(inventory.missing))}")

    async def feed(self) -> RegistryFeed:
        if self._feed is None:
            self._feed = RegistryFeed(await self.bus(), "edi")
            self.components.append(("registry-view", self._feed.run))
            self.ops.watch_registry_view(self._feed.ready.is_set)
        return self._feed

    async def registry(self, settings: RegistryRelaySettings) -> RegistryStore:
        if self._registry is None:
            self._registry = await RegistryStore.open(settings.registry_settings().database_url)
            self._stack.push_async_callback(self._registry.close)
            self.ops.watch_database("registry", self._registry.engine)
        return self._registry

    async def attachments(self) -> Attachments:
        """The object service (large attachments), on the blob store and database the settings name."""
        if self._attachments is None:
            self._attachments = await ObjectSettings(**self.overrides).open_attachments()
            self._stack.push_async_callback(self._attachments.objects.close)
        return self._attachments

    async def add_service(self, service: Service, settings: ServiceSettings) -> None:
        bus = self.ops.consumers.bus(await self.bus(), service.name)

        async def run(stop: asyncio.Event) -> None:
            await run_service(service, bus, settings, stop)

        self.components.append((service.name, run))


async def add(parts: Parts, name: str) -> None:
    """Add one service (by its `edi run` name) to the process."""
    o = parts.overrides
    if name == "validator":
        validator_settings = validator.ValidatorSettings(**o)
        service = validator.build(parts.validator(), await parts.store(), validator_settings,
                                  await parts.attachments())
        await parts.add_service(service, validator_settings)
    elif name == "router":
        settings = router.RouterSettings(**o)
        await parts.add_service(
            router.build(await parts.feed(), await parts.attachments(), settings.capability_policy), settings)
    elif name == "mailbox":
        service = mailbox.build(await parts.store(), await parts.feed(), await parts.bus())
        parts.ops.sample_backlog(await parts.store())
        await parts.add_service(service, mailbox.MailboxSettings(**o))
    elif name == "status":
        status_settings = status.StatusSettings(**o)
        await parts.add_service(status.build(await parts.store()), status_settings)
        janitor = status.Janitor(await parts.store(), await parts.bus(), status_settings)
        parts.components.append(("status-janitor", janitor.run))
    elif name == "receipts":
        receipts_settings = receipts.ReceiptsSettings(**o)
        await parts.add_service(receipts.build(await parts.store(), await parts.feed(), receipts_settings),
                                receipts_settings)
    elif name == "registry-relay":
        relay_settings = RegistryRelaySettings(**o)
        registry = await parts.registry(relay_settings)
        parts.relay = RegistryRelay(registry, await parts.store(), await parts.bus(), relay_settings)
        await parts.relay.catch_up()  # before the views of this process read edi.registry
        parts.components.append(("registry-relay", parts.relay.run))
    elif name == "gateway":
        parts.components.append(("gateway", await _gateway(parts)))
    elif name == "objects-janitor":
        objects = (await parts.attachments()).objects
        interval_s = ObjectSettings(**o).object_janitor_interval_s

        async def sweep(stop: asyncio.Event) -> None:
            await objects_janitor.run(objects, interval_s, stop)

        parts.components.append(("objects-janitor", sweep))
    else:
        raise ValueError(f"unknown service {name!r}; the services are: {', '.join(ServiceName)}")


async def _gateway(parts: Parts) -> Component:
    from edi.services.gateway.access import RegistryDirectory
    from edi.services.gateway.app import create_app
    from edi.services.gateway.server import http_component
    from edi.services.gateway.settings import GatewaySettings

    o = parts.overrides
    settings = GatewaySettings(**o)
    bus, store, attachments = await parts.bus(), await parts.store(), await parts.attachments()
    registry = await parts.registry(RegistryRelaySettings(**o))
    backbone = Backbone(bus=bus, store=store, validator=parts.validator(), feed=await parts.feed(),
                        require_schemas=validator.ValidatorSettings(**o).require_schemas, attachments=attachments)
    app = create_app(backbone, settings, directory=RegistryDirectory(registry), objects=attachments.objects,
                     ops=parts.ops, operations=Operations(bus, store))
    return http_component(app, settings.http_host, settings.http_port)


async def serve(
    names: Sequence[str],
    *,
    data_dir: Path | None = None,
    stop: asyncio.Event | None = None,
    extra: Callable[[Parts], Awaitable[Sequence[tuple[str, Component]]]] | None = None,
    started: Callable[[Parts], None] | None = None,
    settings: dict[str, Any] | None = None,
    validator: Validator | None = None,
) -> None:
    """Run the named services (and `extra` components made from the same parts) until stopped; `settings` are
    given over the EDI_* environment to every part, and `validator` (default: from the EDI_* settings) validates."""
    stop = stop or asyncio.Event()
    overrides: dict[str, Any] = {**(settings or {}), **({} if data_dir is None else {"data_dir": data_dir})}
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        parts = Parts(overrides, stack, validator)
        for name in dict.fromkeys(names):
            await add(parts, name)
        if extra is not None:
            parts.components.extend(await extra(parts))
        handled = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, stop.set)
                handled.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (uvloop: ValueError)
                pass
        stack.callback(lambda: [loop.remove_signal_handler(s) for s in handled])
        if started is not None:
            started(parts)
        log.info("backbone started", services=[name for name, _ in parts.components])
        await _run_all(parts.components, stop)


async def _run_all(components: Sequence[tuple[str, Component]], stop: asyncio.Event) -> None:
    """Run every component; the first to fail (or to end on its own) stops the rest, and its error is raised."""
    tasks: dict[asyncio.Task[None], str] = {
        asyncio.create_task(component(stop), name=name): name for name, component in components
    }
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task, name in tasks.items():
            if task in done and task.exception() is not None:
                log.error("backbone component failed", component=name, error=repr(task.exception()))
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stopping.cancel()
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
