"""Which bus a process uses, from EDI_* variables: the embedded SQLite log by default, Kafka in production."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from edi.adapters.bus.embedded import EmbeddedBus
from edi.adapters.bus.kafka import KafkaBus
from edi.adapters.bus.port import Bus


class BusSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    bus: Literal["embedded", "kafka"] = "embedded"
    # The embedded bus's file; every process of one installation points at the same one.
    bus_path: Path = Path("var/edi-bus.sqlite3")
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_client_id: str = "edi"
    # Replicas per created topic; unset means min(3, brokers in the cluster).
    kafka_replication_factor: int | None = None
    kafka_request_timeout_s: float = 30.0
    # How long the Kafka producer waits for more records to share a request. Measured with bench/relay.py, 0 and
    # 5 alternating in one run: 5 ms moved 7-25% more records a second with less CPU per record in the services
    # and the broker (fewer, fuller requests), for at most 5 ms more per hop.
    kafka_linger_ms: int = 5
    # How long a silent group member keeps its partitions (both buses).
    session_timeout_s: float = 10.0

    def open_bus(self) -> Bus:
        """The configured bus, not started yet."""
        if self.bus == "kafka":
            return KafkaBus(
                self.kafka_bootstrap_servers,
                client_id=self.kafka_client_id,
                replication_factor=self.kafka_replication_factor,
                request_timeout_s=self.kafka_request_timeout_s,
                session_timeout_s=self.session_timeout_s,
                linger_ms=self.kafka_linger_ms,
            )
        return EmbeddedBus(self.bus_path, session_timeout_s=self.session_timeout_s)
