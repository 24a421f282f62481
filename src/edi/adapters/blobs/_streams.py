"""Stream helpers shared by the blob stores."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def rechunk(data: AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """The same bytes in chunks of exactly `size` (the last may be shorter): callers write, hash and upload in
    units that suit them, whatever the sender's chunking, holding at most one unit and one incoming chunk."""
    buffer = bytearray()
    async for chunk in data:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(memoryview(buffer)[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
