"""End-to-end pipeline benchmark: edi.inbound -> validator -> router -> mailbox (SQL store), on real Kafka and on the
embedded bus, for 8 KB dialogmeldinger, beside the bare validation rate measured in the same run.

The services run as `edi run` processes (the layout below), the way a deployment runs them; this process only
writes to edi.inbound and reads the mailbox table. Two measurements per bus:

- throughput: BENCH_MESSAGES documents written as fast as the producer can, timed from the first write until the
  last one is in its receiver's mailbox;
- latency at 500 a second: BENCH_LATENCY_SECONDS of documents paced at 500/s; each message's latency is its
  mailbox row's delivered_at minus its inbound record's timestamp (the producer's clock, this machine).

Run: `uv run python bench/pipeline.py` (needs ../shared; starts a local Kafka broker from Maven jars unless
EDI_TEST_KAFKA_BOOTSTRAP names one, and a local PostgreSQL unless EDI_TEST_POSTGRES_URL names one). Ends with one
JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services.conftest import APPRECS, party, seed_registry  # noqa: E402
from tests.services.documents import DIALOG_SPEC, SENDER, dialog  # noqa: E402
from tests.shared_samples import STANDARDS  # noqa: E402

from edi.adapters.bus import Bus, BusUnavailableError  # noqa: E402
from edi.events.headers import MSG_ID, header  # noqa: E402
from edi.observability.logging import configure_logging  # noqa: E402
from edi.schemas.topics import ACCEPTED, ALL_TOPICS, DELIVERIES, INBOUND  # noqa: E402
from edi.services.runtime import loop  # noqa: E402
from edi.services.store import BackboneSettings, BackboneStore  # noqa: E402
from edi.services.store import tables as t  # noqa: E402
from edi.settings import ValidationSettings  # noqa: E402
from procstat import JIT_SETTLED, CompilerLoad, CpuMeter  # noqa: E402
from provision import kafka_and_postgres  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "20000"))
BUSES = os.environ.get("BENCH_BUSES", "kafka,embedded").split(",")  # e.g. only kafka while tuning
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "20"))
LATENCY_RATE = 500.0
SIZE = 8192
RECEIVERS = ("8143060", "8143061", "8143062", "8143063")
# How each bus is deployed. On Kafka, as production runs it: one process per hot service, the light ones together
# (on two cores they share the CPU with the broker), with the store on PostgreSQL. The relay runs with the router,
# so that the router's view holds the registry before it routes anything. Embedded, as `edi up` runs it: every
# service in one process (the embedded bus and SQLite are files of one machine, written best by one process).
LAYOUTS = {
    "kafka": [["validator"], ["registry-relay", "router"], ["mailbox"], ["status", "receipts"]],
    "embedded": [["registry-relay", "validator", "router", "mailbox", "status", "receipts"]],
}
EDI = Path(sys.executable).parent / "edi"
PRODUCE_WINDOW = 500  # produces in flight at once while writing as fast as possible
PACE_TICK_S = 0.01
# Before anything is measured: a first round has every group joined; then, on a broker this run started, rounds
# until the JVM has compiled its hot paths. A fresh broker's JIT compiler threads take a quarter of a core for a
# minute or more, which a broker in service has long done with.
WARM_UP_ROUND = 2000
WARM_UP_MAX_ROUNDS = 20


def documents(count: int, run: str) -> list[bytes]:
    return [dialog(f"{run}-{n}", receiver=RECEIVERS[n % len(RECEIVERS)], size=SIZE) for n in range(count)]


def bare_validate_per_s(seconds: float = 3.0) -> float:
    validator = ValidationSettings(schema_dirs=[STANDARDS]).validator()
    document = dialog("bare", size=SIZE)
    validator.validate(document)
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        validator.validate(document)
        count += 1
    return count / (time.perf_counter() - began)


@contextmanager
def installation(bus_kind: str, bootstrap: str | None, database_url: str | None = None) -> Iterator[Path]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"edi-bench-{bus_kind}-"))
    values = {
        "EDI_DATA_DIR": str(data_dir), "EDI_SCHEMA_DIRS": str(STANDARDS), "EDI_LOG_LEVEL": "WARNING",
        "EDI_BUS": bus_kind, "EDI_OPS_PORT": "0",  # several service processes: no ops port each
    }
    if bus_kind == "kafka":
        assert bootstrap is not None
        values |= {"EDI_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "EDI_KAFKA_REPLICATION_FACTOR": "1",
                   "EDI_BUS_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}"}
    if database_url is not None:
        values["EDI_DATABASE_URL"] = database_url
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield data_dir
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(data_dir, ignore_errors=True)


# Besides the services, what else spends CPU per message on these two cores, when this run started it.
Others = dict[str, int]  # name -> root pid, its CPU counted with its descendants


def service_meter(bus_kind: str, processes: list[asyncio.subprocess.Process], others: Others) -> CpuMeter:
    """CPU time each service process, each of the others and this bench spend over one phase of the run."""
    names = ["+".join(services) for services in LAYOUTS[bus_kind]]
    return CpuMeter({name: [process.pid] for name, process in zip(names, processes, strict=True)}, others,
                    "this bench (producer, counting)")


async def delivered(store: BackboneStore) -> int:
    async with store.engine.connect() as connection:
        return int((await connection.execute(sa.select(sa.func.count()).select_from(t.mailbox))).scalar_one())


async def wait_for(store: BackboneStore, count: int, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while (found := await delivered(store)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{found} of {count} delivered within {timeout_s:.0f} s")
        await asyncio.sleep(0.25)  # a count over the mailbox each time: often enough, without loading PostgreSQL
    return time.monotonic()


async def produce(bus: Bus, payload: bytes, key: bytes) -> None:
    while True:
        try:
            await bus.produce(INBOUND, payload, key=key)
            return
        except BusUnavailableError:  # e.g. a partition's leader is still being elected just after creation
            await asyncio.sleep(0.2)


async def produce_fast(bus: Bus, payloads: list[bytes]) -> None:
    pending: set[asyncio.Task[Any]] = set()
    for n, payload in enumerate(payloads):
        pending.add(asyncio.create_task(produce(bus, payload, str(n % 64).encode())))
        if len(pending) >= PRODUCE_WINDOW:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)


async def produce_paced(bus: Bus, payloads: list[bytes], rate: float) -> None:
    # Every PACE_TICK_S, the documents that have come due: waking once per document would double this process's
    # CPU per message, which it takes from the services on the same two cores.
    began = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    while len(tasks) < len(payloads):
        due = min(len(payloads), int((time.monotonic() - began) * rate) + 1)
        tasks.extend(asyncio.create_task(produce(bus, payloads[n], str(n % 64).encode()))
                     for n in range(len(tasks), due))
        await asyncio.sleep(PACE_TICK_S)
    await asyncio.gather(*tasks)


async def arrivals(store: BackboneStore, msg_ids: set[str]) -> dict[str, tuple[float, float]]:
    """Per MsgId: when its inbound record was written and when it reached the mailbox (epoch seconds)."""
    m = t.mailbox.c
    async with store.engine.connect() as connection:
        rows = await connection.execute(sa.select(m.msg_id, m.received_at, m.delivered_at))
        return {row.msg_id: (row.received_at.timestamp(), row.delivered_at.timestamp())
                for row in rows if row.msg_id in msg_ids}


async def produced_at(bus: Bus, topic: str, msg_ids: set[str]) -> dict[str, float]:
    """Per MsgId: the timestamp of its record on `topic` (the producing service's clock, this machine)."""
    consumer = await bus.subscribe(f"bench-hops-{uuid.uuid4().hex[:8]}", [topic])
    found: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        while len(found) < len(msg_ids) and time.monotonic() < deadline:
            for record in await consumer.poll(max_records=1000, timeout_s=1.0):
                msg_id = header(record.headers, MSG_ID)
                if msg_id is not None and msg_id.decode() in msg_ids:
                    found.setdefault(msg_id.decode(), record.timestamp_ms / 1000)
    finally:
        await consumer.close()
    return found


def hop_latencies(ends: dict[str, tuple[float, float]], accepted: dict[str, float],
                  deliveries: dict[str, float]) -> str:
    """p50/p99 of each hop: inbound -> edi.accepted (validator), -> edi.deliveries (router), -> mailbox row."""
    hops: dict[str, list[float]] = {"validator": [], "router": [], "mailbox": []}
    for msg_id, (written, delivered) in ends.items():
        if msg_id in accepted and msg_id in deliveries:
            hops["validator"].append(accepted[msg_id] - written)
            hops["router"].append(deliveries[msg_id] - accepted[msg_id])
            hops["mailbox"].append(delivered - deliveries[msg_id])
    return ", ".join(
        f"{name} p50 {statistics.median(times) * 1000:.0f} ms p99 {sorted(times)[int(len(times) * 0.99)] * 1000:.0f} ms"
        for name, times in hops.items() if times)


async def warm_up(bus: Bus, store: BackboneStore, broker: int | None) -> int:
    """Messages sent through the pipeline until it is warm (see WARM_UP_ROUND); returns how many."""
    load = CompilerLoad(broker) if broker else None
    if load and not load.present:
        print(f"warm-up: process {broker} has no JIT compiler threads; warming for all {WARM_UP_MAX_ROUNDS} rounds")
    size, rounds = (WARM_UP_ROUND, WARM_UP_MAX_ROUNDS) if broker else (200, 1)
    sent, share = 0, 1.0
    for round_number in range(rounds):
        if load:
            load.start()
        await produce_fast(bus, documents(size, f"warm{round_number}"))
        sent += size
        await wait_for(store, sent, 120)
        if load and load.present:
            share = load.share()
            if share < JIT_SETTLED and round_number > 0:  # the first round also has the groups joining
                break
    print(f"warm-up: {sent} messages" + (f", the broker's JIT compiler at {share:.0%} of a core in the last "
                                         f"{size}" if broker else ""))
    return sent


async def measure(bus_kind: str, others: Others) -> dict[str, float]:
    await seed_registry([*(party(r, DIALOG_SPEC) for r in RECEIVERS), party(SENDER, *APPRECS)])
    settings = BackboneSettings()
    bus = settings.open_bus()
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    store = await BackboneStore.open(settings.store_url)
    processes = [
        await asyncio.create_subprocess_exec(str(EDI), "run", *services, start_new_session=True)
        for services in LAYOUTS[bus_kind]
    ]
    try:
        warm = await warm_up(bus, store, others.get("broker"))

        payloads = documents(MESSAGES, "throughput")
        meter = service_meter(bus_kind, processes, others)
        began = time.monotonic()
        await produce_fast(bus, payloads)
        produced_s = time.monotonic() - began
        finished = await wait_for(store, warm + MESSAGES, 600)
        throughput = MESSAGES / (finished - began)
        print(f"{bus_kind:8s} throughput: {MESSAGES} messages in {finished - began:.1f} s = {throughput:.0f}/s "
              f"(written to edi.inbound in {produced_s:.1f} s)")
        print(f"{bus_kind:8s} CPU per message: {meter.per_message(MESSAGES)}")

        paced = documents(int(LATENCY_RATE * LATENCY_SECONDS), "latency")
        meter = service_meter(bus_kind, processes, others)
        await produce_paced(bus, paced, LATENCY_RATE)
        await wait_for(store, warm + MESSAGES + len(paced), 300)
        print(f"{bus_kind:8s} CPU per message at {LATENCY_RATE:.0f}/s: {meter.per_message(len(paced))}")
        msg_ids = {f"latency-{n}" for n in range(len(paced))}
        ends = await arrivals(store, msg_ids)
        times = sorted((delivered - written) * 1000 for written, delivered in ends.values())
        p50 = statistics.median(times)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{bus_kind:8s} latency at {LATENCY_RATE:.0f}/s for {LATENCY_SECONDS:.0f} s: p50 {p50:.0f} ms, "
              f"p99 {p99:.0f} ms, max {times[-1]:.0f} ms ({len(times)} messages)")
        print(f"{bus_kind:8s} by hop: " + hop_latencies(
            ends, await produced_at(bus, ACCEPTED, msg_ids), await produced_at(bus, DELIVERIES, msg_ids)))
        return {"msgs_per_s": throughput, "p50_ms": p50, "p99_ms": p99}
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await process.wait()
        await store.close()
        await bus.close()


def main() -> None:
    configure_logging(level="WARNING")

    print(f"{MESSAGES} messages of {SIZE} bytes for throughput; {LATENCY_RATE:.0f}/s for {LATENCY_SECONDS:.0f} s "
          "for latency; services as processes: "
          + "; ".join(f"{bus}: {' | '.join('+'.join(group) for group in layout)}" for bus, layout in LAYOUTS.items()))
    bare = bare_validate_per_s()
    print(f"bare validation (same 8 KB document, one thread): {bare:.0f}/s")
    results: dict[str, dict[str, float]] = {}
    if "kafka" in BUSES:
        with kafka_and_postgres() as infrastructure, installation(
                "kafka", infrastructure.bootstrap_servers, infrastructure.database_url):
            results["kafka"] = loop.run(measure("kafka", infrastructure.pids))
    if "embedded" in BUSES:
        with installation("embedded", None):
            results["embedded"] = loop.run(measure("embedded", {}))

    def figure(bus: str, key: str, digits: int | None) -> float | None:
        return round(results[bus][key], digits) if bus in results else None  # None: that bus was not measured

    print(json.dumps({
        "kafka_msgs_per_s": figure("kafka", "msgs_per_s", None),
        "kafka_p50_ms_at_500": figure("kafka", "p50_ms", 1),
        "kafka_p99_ms_at_500": figure("kafka", "p99_ms", 1),
        "embedded_msgs_per_s": figure("embedded", "msgs_per_s", None),
        "embedded_p99_ms_at_500": figure("embedded", "p99_ms", 1),
        "bare_validate_per_s": round(bare),
    }))

if __name__ == "__main__":
    main()
