"""The Bus port and its two adapters: Apache Kafka for production, a SQLite log for one machine."""

from edi.adapters.bus.embedded import EmbeddedBus
from edi.adapters.bus.kafka import KafkaBus
from edi.adapters.bus.port import (
    Ack,
    Bus,
    BusError,
    BusUnavailableError,
    Consumer,
    Headers,
    Record,
    RevokeHook,
    TopicPartition,
    UnknownTopicError,
)
from edi.adapters.bus.settings import BusSettings

__all__ = [
    "Ack",
    "Bus",
    "BusError",
    "BusSettings",
    "BusUnavailableError",
    "Consumer",
    "EmbeddedBus",
    "Headers",
    "KafkaBus",
    "Record",
    "RevokeHook",
    "TopicPartition",
    "UnknownTopicError",
]
