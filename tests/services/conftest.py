"""A backbone installation per test: its own data directory (stores, embedded bus file, registry) and, on Kafka,
its own bus namespace on the session's broker, all given as EDI_* variables so that services started in this
process and `edi run` subprocesses alike find it.

Tests taking `bus_kind` run on the embedded bus and on the real Kafka broker (marked `kafka`). Tests marked
`heavy` (the crash tests, the whole sample set, the broker restart) are the slow ones: easy to find with
`-m heavy`, never skipped.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from edi.kapabilitetsregister.import_export import parse_import
from edi.kapabilitetsregister.settings import RegistrySettings
from edi.kapabilitetsregister.store import RegistryStore
from edi.services import host
from edi.services.backbone import Backbone
from tests.shared_samples import STANDARDS

T = TypeVar("T")

# Kafka's smallest allowed group session: a member that died is replaced within this (and a third of it).
SESSION_TIMEOUT_S = 6.0
APPRECS = ["ConsumeApplikasjonskvittering1.0", "ConsumeApplikasjonskvittering1.1"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "heavy: a slow test (crash, whole sample set, broker restart, benchmark)")


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def installation(
    request: pytest.FixtureRequest, bus_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, str]]:
    """The EDI_* variables of this test's installation, also set in this process's environment."""
    values = {
        "EDI_DATA_DIR": str(tmp_path / "data"),
        "EDI_SCHEMA_DIRS": str(STANDARDS),
        "EDI_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
        "EDI_POLL_TIMEOUT_S": "0.2",
        "EDI_RETRY_INITIAL_DELAY_S": "0.05",
        "EDI_RELAY_POLL_INTERVAL_S": "0.1",
        "EDI_FOLLOW_INTERVAL_S": "0.05",
    }
    if bus_kind == "kafka":
        values |= {
            "EDI_BUS": "kafka",
            "EDI_KAFKA_BOOTSTRAP_SERVERS": str(request.getfixturevalue("kafka_bootstrap")),
            "EDI_KAFKA_REPLICATION_FACTOR": "1",
            "EDI_BUS_NAMESPACE": f"test-{uuid.uuid4().hex[:10]}",
        }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    yield values


def party(her_id: str | int, *capabilities: str, **fields: Any) -> dict[str, Any]:
    """A registry import entry."""
    return {"herId": int(her_id), "supported": list(capabilities), **fields}


async def seed_registry(parties: Sequence[dict[str, Any]], actor: str = "test") -> None:
    """Import parties into the installation's registry (what `kapreg import` does)."""
    registry = await RegistryStore.open(RegistrySettings().database_url)
    try:
        await registry.import_parties(parse_import(json.dumps(list(parties)).encode(), "test.json"), actor)
    finally:
        await registry.close()


@asynccontextmanager
async def running_backbone(
    services: Sequence[str] = host.SERVICES,
) -> AsyncIterator[tuple[Backbone, host.Parts]]:
    """The services running in this process (as `edi up` runs them), and a Backbone for the test to use."""
    stop = asyncio.Event()
    started: asyncio.Future[host.Parts] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(host.serve(services, stop=stop, started=started.set_result))
    try:
        waiting: set[asyncio.Future[Any]] = {started, serving}
        done, _ = await asyncio.wait(waiting, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if serving in done:
            serving.result()  # it failed to start: say why
        parts = started.result()
        async with Backbone.open() as backbone:
            yield backbone, parts
    finally:
        stop.set()
        await serving


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout_s: float = 30.0, what: str = "") -> T:
    """The first truthy result of `probe`, polled until the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {timeout_s:.0f}s: {what or probe}")
        await asyncio.sleep(0.05)
