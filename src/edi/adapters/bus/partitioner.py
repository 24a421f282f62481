"""Which partition a key goes to: Kafka's default partitioner, shared by both bus adapters.

The Java client (and aiokafka) hash the key bytes with murmur2 and take the positive 31 bits modulo the
partition count. Using the very same function on the embedded bus means a key lands on the same partition
whichever bus carries it, so per-key ordering arguments hold for both.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for_key(key: bytes, partitions: int) -> int:
    digest: int = murmur2(key)
    return (digest & 0x7FFFFFFF) % partitions
