"""Relay-ceiling benchmark: how fast can three at-least-once Kafka hops move 8 KB records on this machine, with no
work in them, beside the same three hops as the project's own runtime, measured in the same run.

Why: bench/pipeline.py (edi.inbound -> validator -> router -> mailbox -> status, services as `edi run` processes)
reaches a few hundred messages a second where the target is 2,000/s. This gives the ceiling that target has to fit
under on the same machine and broker: if relaying alone, three hops deep, cannot reach it, no handler work can.

Two variants, each on its own fresh topics (prefix `relay-<variant>-<random>.`, the topic specs of
`edi.schemas.topics`, 12 partitions on the hot topics), with the pipeline's shape of three relay processes:
inbound -> accepted, accepted -> deliveries, deliveries -> status (named after the pipeline's validator, router and
mailbox, whose hops they stand in for).

- bare: each process a plain aiokafka consumer (group member, auto-commit off) and producer (acks=all, idempotent,
  the settings of `edi.adapters.bus.kafka`), relaying every record unchanged: getmany, send all, await every ack,
  then commit. The library+broker ceiling for at-least-once relaying.
- runtime: each process a `Service` with one pass-through `bytes` handler (the input emitted unchanged, same key)
  run by `edi.services.host.serve` as `edi run` runs services: FairBus, NamespacedBus and KafkaBus, the runtime's
  per-record steps, correlation headers, commits. Its distance from `bare` is the runtime's own cost.

For each: BENCH_MESSAGES (default 20000) records written to edi.inbound as fast as this process can, timed from the
first write until the last record is seen on edi.status (a consumer in this process counts them), after a warm-up
of 200 that has every group joined. Reported: msgs/s, CPU ms per message of each relay process (and of this
process, which produces and counts, and of the broker when its pid is known), and each topic's record count as
a check that nothing was lost or doubled.

Run: `uv run python bench/relay.py` (starts a local Kafka broker from Maven jars unless EDI_TEST_KAFKA_BOOTSTRAP
names one, e.g. `source /tmp/infra/env`; the broker's CPU is then "n/a" unless BENCH_BROKER_PID gives its pid, and
counts whatever else that broker serves meanwhile). Needs ../shared for the documents. Ends with one JSON line.
A relay process alone: `python bench/relay.py --relay bare|runtime validator|router|mailbox` with
EDI_KAFKA_BOOTSTRAP_SERVERS and EDI_BUS_NAMESPACE set (this script starts them so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edi.observability.logging import configure_logging  # noqa: E402
from edi.schemas.topics import ACCEPTED, ALL_TOPICS, DELIVERIES, INBOUND, STATUS  # noqa: E402
from edi.services.runtime import (  # noqa: E402
    Message,
    Output,
    Result,
    Service,
    loop,
)
from procstat import cpu_seconds  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "20000"))
WARM = 200
SIZE = 8192
KEYS = 64  # as bench/pipeline.py keys its inbound records
VARIANTS = ("bare", "runtime")
# The bare relay's batch: as many records as the runtime's fair consumer fetches at a time.
BARE_BATCH = 500
CLIENT_ID = "edi"
# KafkaBus's defaults (edi.adapters.bus.settings): request timeout 30 s, session timeout 10 s.
REQUEST_TIMEOUT_MS = 30_000
SESSION_TIMEOUT_MS = 10_000
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Hop:
    name: str  # the pipeline service whose hop this stands in for; the consumer group
    source: str
    target: str


HOPS = (Hop("validator", INBOUND, ACCEPTED), Hop("router", ACCEPTED, DELIVERIES), Hop("mailbox", DELIVERIES, STATUS))
HOP_TOPICS = (INBOUND, ACCEPTED, DELIVERIES, STATUS)


def producer(bootstrap: str) -> AIOKafkaProducer:
    # The producer edi.adapters.bus.kafka.KafkaBus makes, setting for setting.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=CLIENT_ID,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        retry_backoff_ms=200,
    )


# --- the relay processes ---------------------------------------------------------------------------------------


async def bare_relay(hop: Hop, bootstrap: str, namespace: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # The consumer KafkaBus.subscribe makes, setting for setting.
    consumer = AIOKafkaConsumer(
        f"{namespace}.{hop.source}",
        bootstrap_servers=bootstrap,
        client_id=CLIENT_ID,
        group_id=f"{namespace}.{hop.name}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        retry_backoff_ms=200,
    )
    out = producer(bootstrap)
    target = f"{namespace}.{hop.target}"
    await out.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=BARE_BATCH)
            if not batches:
                continue
            # send() only queues the record; awaiting every ack before the commit makes it at-least-once.
            acks = [
                await out.send(target, r.value, key=r.key, headers=list(r.headers))
                for records in batches.values()
                for r in records
            ]
            await asyncio.gather(*acks)
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
    finally:
        await consumer.stop()
        await out.stop()


def relay_service(hop: Hop) -> Service:
    service = Service(hop.name)

    @service.handler(hop.source, payload=bytes, outputs=[hop.target])
    async def relay(message: Message[bytes]) -> Result:
        return [Output(hop.target, message.payload, key=message.record.key)]

    return service


async def runtime_relay(hop: Hop) -> None:
    from edi.observability.tracing import configure_tracing
    from edi.services import host

    configure_tracing()  # as `edi run` does (off unless EDI_TRACING)
    service = relay_service(hop)

    async def add(parts: host.Parts) -> list[tuple[str, host.Component]]:
        # The way host.add() adds a service: its bus watched by the process's Ops, the settings of EDI_*.
        await parts.add_service(service, parts.settings)
        return []

    await host.serve([], extra=add)


def run_relay(variant: str, hop_name: str) -> None:
    configure_logging(level=os.environ.get("EDI_LOG_LEVEL", "WARNING"))
    hop = next(hop for hop in HOPS if hop.name == hop_name)
    if variant == "bare":
        loop.run(bare_relay(hop, os.environ["EDI_KAFKA_BOOTSTRAP_SERVERS"], os.environ["EDI_BUS_NAMESPACE"]))
    else:
        loop.run(runtime_relay(hop))


# --- the measuring process -------------------------------------------------------------------------------------


class Counter:
    """Counts the records arriving on one topic, reading every partition from the beginning, outside any group."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.count = 0

    async def run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            self.count += sum(len(records) for records in batches.values())

    async def reached(self, count: int, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while self.count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.count} of {count} records on the last topic within {timeout_s:.0f} s")
            await asyncio.sleep(0.005)
        return time.monotonic()


async def produce_fast(out: AIOKafkaProducer, topic: str, payloads: list[bytes]) -> None:
    acks = [await out.send(topic, payload, key=str(n % KEYS).encode()) for n, payload in enumerate(payloads)]
    await asyncio.gather(*acks)


async def wait_for_leaders(out: AIOKafkaProducer, partitions: list[TopicPartition], timeout_s: float = 60) -> None:
    # Just after creation a partition has no leader for a moment. Waiting until the metadata names them all spares
    # the counter's first offset lookups; the broker may still refuse the first produces briefly (aiokafka retries
    # them, logging a warning each), which only the warm-up sees.
    deadline = time.monotonic() + timeout_s
    for topic in {tp.topic for tp in partitions}:
        await out.partitions_for(topic)  # makes the client follow the topic's metadata
    while not all(out.client.cluster.leader_for_partition(tp) not in (None, -1) for tp in partitions):
        if time.monotonic() > deadline:
            raise TimeoutError(f"partitions without a leader after {timeout_s:.0f} s")
        await asyncio.sleep(0.1)
        await out.client.force_metadata_update()


async def stop_processes(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def measure(variant: str, bootstrap: str, broker_pid: int | None) -> dict[str, Any]:
    from tests.services.documents import dialog

    from edi.adapters.bus.kafka import KafkaBus
    from edi.services.buses import NamespacedBus

    namespace = f"relay-{variant}-{uuid.uuid4().hex[:8]}"
    # All the backbone's topics, as the pipeline's processes create them, under this variant's prefix.
    await NamespacedBus(KafkaBus(bootstrap, client_id=CLIENT_ID, replication_factor=1), namespace).ensure_topics(
        ALL_TOPICS
    )
    specs = {spec.name: spec for spec in ALL_TOPICS}
    data_dir = Path(tempfile.mkdtemp(prefix=f"edi-bench-relay-{variant}-"))
    env = os.environ | {
        "EDI_BUS": "kafka", "EDI_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "EDI_KAFKA_REPLICATION_FACTOR": "1",
        "EDI_BUS_NAMESPACE": namespace, "EDI_DATA_DIR": str(data_dir), "EDI_LOG_LEVEL": "WARNING",
        "EDI_OPS_PORT": "0",
    }  # fmt: skip
    out = producer(bootstrap)
    counter = Counter(AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id=CLIENT_ID, enable_auto_commit=False))
    await out.start()
    await counter.consumer.start()
    hop_partitions = [
        TopicPartition(f"{namespace}.{topic}", p) for topic in HOP_TOPICS for p in range(specs[topic].partitions)
    ]
    await wait_for_leaders(out, hop_partitions)
    counting: asyncio.Task[None] | None = None
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--relay", variant, hop.name, env=env, start_new_session=True
        )
        for hop in HOPS
    ]
    first = f"{namespace}.{INBOUND}"
    try:
        await produce_fast(out, first, [dialog(f"warm-{n}", size=SIZE) for n in range(WARM)])
        counter.consumer.assign([tp for tp in hop_partitions if tp.topic == f"{namespace}.{STATUS}"])
        await counter.consumer.seek_to_beginning()
        counting = asyncio.create_task(counter.run())
        await counter.reached(WARM, 180)

        payloads = [dialog(f"{variant}-{n}", size=SIZE) for n in range(MESSAGES)]
        pids = {hop.name: process.pid for hop, process in zip(HOPS, processes, strict=True)}
        pids["bench"] = os.getpid()
        if broker_pid is not None:
            pids["broker"] = broker_pid
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        began = time.monotonic()
        await produce_fast(out, first, payloads)
        produced_s = time.monotonic() - began
        finished = await counter.reached(WARM + MESSAGES, 600)
        cpu_ms = {name: (cpu_seconds(pid) - cpu_before[name]) / MESSAGES * 1000 for name, pid in pids.items()}
        elapsed = finished - began
        rate = MESSAGES / elapsed

        # Every record each hop wrote, to see that none was lost or written twice (a retried produce).
        ends = await counter.consumer.end_offsets(hop_partitions)
        records = {t: sum(o for tp, o in ends.items() if tp.topic == f"{namespace}.{t}") for t in HOP_TOPICS}
        print(f"{time.strftime('%H:%M:%S')} {variant:7s}: {MESSAGES} records in {elapsed:.1f} s = {rate:.0f}/s "
              f"(written to {INBOUND} in {produced_s:.1f} s; load average {os.getloadavg()[0]:.2f}); CPU ms/message: "
              + ", ".join(f"{name} {ms:.3f}" for name, ms in cpu_ms.items())
              + ("" if broker_pid is not None else ", broker n/a")
              + "; records per topic: " + ", ".join(f"{topic} {n}" for topic, n in records.items()),
              flush=True)
        return {"msgs_per_s": rate, "seconds": elapsed, "produce_s": produced_s, "cpu_ms": cpu_ms, "records": records}
    finally:
        await stop_processes(processes)
        if counting is not None:
            counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counting
        await counter.consumer.stop()
        await out.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    configure_logging(level="WARNING")
    from tests.support.kafka import SERVER_JVM_FLAGS, provision_broker

    from provision import broker_pid

    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}: {MESSAGES} records of {SIZE} bytes through three relay "
          f"processes ({', '.join(f'{h.source} -> {h.target}' for h in HOPS)}), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    broker = provision_broker(SERVER_JVM_FLAGS)  # as Kafka's own scripts run a broker
    pid = broker_pid(broker)
    print(f"broker: {broker.description}" + ("" if pid is not None else " (its pid is unknown here: CPU n/a)"),
          flush=True)
    results: dict[str, dict[str, Any]] = {}
    try:
        for variant in VARIANTS:
            results[variant] = asyncio.run(measure(variant, broker.bootstrap_servers, pid))
    finally:
        broker.close()

    def cpu(variant: str) -> dict[str, float | str]:
        figures: dict[str, float | str] = {name: round(ms, 3) for name, ms in results[variant]["cpu_ms"].items()}
        figures.setdefault("broker", "n/a")
        return figures

    print(json.dumps({
        "bare_aiokafka_relay_msgs_per_s": round(results["bare"]["msgs_per_s"]),
        "runtime_relay_msgs_per_s": round(results["runtime"]["msgs_per_s"]),
        "bare_cpu_ms_per_msg": cpu("bare"),
        "runtime_cpu_ms_per_msg": cpu("runtime"),
        "written_to_inbound_per_s": {v: round(MESSAGES / results[v]["produce_s"]) for v in VARIANTS},
        "messages": MESSAGES,
        "bytes": SIZE,
    }))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--relay", nargs=2, metavar=("VARIANT", "HOP"), help="run one relay process: "
                        f"VARIANT in {'|'.join(VARIANTS)}, HOP in {'|'.join(h.name for h in HOPS)}")
    arguments = parser.parse_args()
    if arguments.relay:
        run_relay(*arguments.relay)
    else:
        main()
