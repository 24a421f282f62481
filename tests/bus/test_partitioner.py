"""The shared partitioner is the Java client's: Kafka's own murmur2 test vectors (UtilsTest.testMurmur2)."""

from __future__ import annotations

import pytest

from edi.adapters.bus.partitioner import partition_for_key


@pytest.mark.parametrize(
    ("key", "java_murmur2"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_keys_map_to_partitions_as_the_java_client_maps_them(key: bytes, java_murmur2: int) -> None:
    # Java: Utils.toPositive(murmur2(key)) % numPartitions, where toPositive masks the sign bit.
    for partitions in (1, 3, 12, 50):
        assert partition_for_key(key, partitions) == (java_murmur2 & 0x7FFFFFFF) % partitions
