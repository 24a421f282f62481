"""Every Kafka topic of the backbone, in one place: names, partition counts, retention and compaction.

Services import the names from here rather than spelling them, and `Bus.ensure_topics(ALL_TOPICS)` creates
whatever is missing at start-up (Kafka via the admin client, the embedded bus in its SQLite file).

Partition counts bound a consumer group's parallelism and fix which partition a key lands on, so raising one
later reshuffles keys: they are generous from the start. At a few hundred messages a second at peak, 12
partitions on the hot path leave plenty of headroom on a modest cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

_DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    # None keeps records forever (Kafka retention.ms=-1).
    retention_ms: int | None
    # Log compaction: only the newest record per key is kept (cleanup.policy=compact); no retention.
    compacted: bool = False


INBOUND = "edi.inbound"  # raw envelopes from trusted internal producers, validated by the validator
ACCEPTED = "edi.accepted"  # AcceptedMessage, keyed by message id
DELIVERIES = "edi.deliveries"  # Delivery, one per receiver, keyed by receiver HER-id
REJECTED = "edi.rejected"  # Rejection, keyed by message id
STATUS = "edi.status"  # StatusChange, keyed by message id
REGISTRY = "edi.registry"  # RegistryChange, compacted, keyed by the registry entity key

# The services that consume, each with its own dead-letter topic so one service's poison never mixes with
# another's and each can be replayed on its own.
CONSUMING_SERVICES = ("validator", "router", "mailbox", "status", "receipts")


def dead_letter_topic(service: str) -> str:
    return f"edi.dlq.{service}"


def dead_letter_spec(service: str) -> TopicSpec:
    # Dead letters wait for an operator, so they are kept longer; they are rare, so one partition each.
    return TopicSpec(dead_letter_topic(service), partitions=1, retention_ms=30 * _DAY_MS)


def _topics() -> tuple[TopicSpec, ...]:
    week = 7 * _DAY_MS
    flow = (
        TopicSpec(INBOUND, partitions=12, retention_ms=week),
        TopicSpec(ACCEPTED, partitions=12, retention_ms=week),
        TopicSpec(DELIVERIES, partitions=12, retention_ms=week),
        TopicSpec(REJECTED, partitions=6, retention_ms=week),
        TopicSpec(STATUS, partitions=12, retention_ms=week),
        TopicSpec(REGISTRY, partitions=1, retention_ms=None, compacted=True),
    )
    return flow + tuple(dead_letter_spec(service) for service in CONSUMING_SERVICES)


ALL_TOPICS: tuple[TopicSpec, ...] = _topics()
