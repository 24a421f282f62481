"""A Kafka broker and a PostgreSQL database for a benchmark run: those EDI_TEST_KAFKA_BOOTSTRAP and
EDI_TEST_POSTGRES_URL name, else started here as the test suite starts them (the broker with Kafka's own JVM
settings), with their pids so that the benchmarks can print their CPU per message."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.kafka import SERVER_JVM_FLAGS, provision_broker
from tests.support.postgres import provision_server


@dataclass
class Infrastructure:
    bootstrap_servers: str
    database_url: str
    # name ("broker", "PostgreSQL") -> root pid, where known: started here, or given as BENCH_BROKER_PID
    pids: dict[str, int] = field(default_factory=dict)


def broker_pid(broker: Any) -> int | None:
    """The broker's pid when this run started it (tests.support.kafka.LocalKafka), else BENCH_BROKER_PID if set
    (a broker run elsewhere on this machine, e.g. `ss -ltnp 'sport = :PORT'` names it), else None."""
    process = getattr(broker, "process", None)
    if process is not None:
        return int(process.pid)
    given = os.environ.get("BENCH_BROKER_PID")
    return int(given) if given else None


@contextmanager
def kafka_and_postgres() -> Iterator[Infrastructure]:
    broker = provision_broker(SERVER_JVM_FLAGS)  # as Kafka's own scripts run a broker
    try:
        postgres = provision_server()
        try:
            infrastructure = Infrastructure(broker.bootstrap_servers, postgres.create_database())
            if (pid := broker_pid(broker)) is not None:
                infrastructure.pids["broker"] = pid
            if (data_dir := getattr(postgres, "data_dir", None)) is not None:
                infrastructure.pids["PostgreSQL"] = int((data_dir / "postmaster.pid").read_text().split()[0])
            yield infrastructure
        finally:
            postgres.drop_created_databases()
            postgres.close()
    finally:
        broker.close()
