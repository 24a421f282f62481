"""Where the backbone keeps its state, from EDI_* variables: one data directory on a laptop (`edi up`), a
PostgreSQL database and a Kafka cluster in production."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edi.adapters.bus import Bus
from edi.services.buses import FairBus, NamespacedBus
from edi.services.runtime import ServiceSettings

DEFAULT_DATA_DIR = Path(".edi-data")  # the registry's default too (EDI_DATA_DIR)


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    # The mailbox/status store; default: SQLite at <data dir>/backbone.db.
    database_url: str | None = None

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'backbone.db').resolve()}"


class BackboneSettings(ServiceSettings, StoreSettings):
    """What every backbone process shares: the bus, the runtime's knobs and the store. Each service's settings
    class adds its own."""

    # A prefix for every topic and consumer group, so several installations can share one Kafka cluster
    # (receivers' own topics get it too); empty: the plain names of edi.schemas.topics.
    bus_namespace: str = ""

    def open_bus(self) -> Bus:
        bus = super().open_bus()
        return FairBus(NamespacedBus(bus, self.bus_namespace) if self.bus_namespace else bus)

    @model_validator(mode="after")
    def _bus_in_data_dir(self) -> BackboneSettings:
        # Every process of one installation must meet on one embedded bus file: unless EDI_BUS_PATH says
        # otherwise, it lives in the data directory beside the stores.
        if "bus_path" not in self.model_fields_set:
            self.bus_path = self.data_dir / "bus.sqlite3"
        return self
