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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.kafka import SERVER_JVM_FLAGS, provision_broker
from tests.support.postgres import provision_server


@dataclass
class Infrastructure:
    bootstrap_servers: str
    database_url: str
    # name ("broker", "PostgreSQL") -> root pid, where known: started here, or given as BENCH_BROKER_PID
    pids: dict[str, int] = field(default_factory=dict)


@contextmanager
def kafka_and_postgres() -> Iterator[Infrastructure]:
    broker = provision_broker(SERVER_JVM_FLAGS)  # as Kafka's own scripts run a broker
    try:
        postgres = provision_server()
        try:
            infrastructure = Infrastructure(broker.bootstrap_servers, postgres.create_database())
            if (process := getattr(broker, "process", None)) is not None:
                infrastructure.pids["broker"] = process.pid
            elif "BENCH_BROKER_PID" in os.environ:  # a broker this run did not start (EDI_TEST_KAFKA_BOOTSTRAP)
                infrastructure.pids["broker"] = int(os.environ["BENCH_BROKER_PID"])
            if (data_dir := getattr(postgres, "data_dir", None)) is not None:
                infrastructure.pids["PostgreSQL"] = int((data_dir / "postmaster.pid").read_text().split()[0])
            yield infrastructure
        finally:
            postgres.drop_created_databases()
            postgres.close()
    finally:
        broker.close()
