"""Declaring a service: a name (its consumer group) and typed handlers, one per input topic.

    service = Service("router")

    @service.handler(topics.ACCEPTED, payload=AcceptedMessage, outputs=[topics.DELIVERIES])
    async def route(message: Message[AcceptedMessage]) -> Result:
        return [Output(topics.DELIVERIES, delivery) for delivery in deliveries_of(message.payload)]

    asyncio.run(serve(service, RouterSettings()))

A handler gets the decoded payload with the record's coordinates and correlation ids, and returns the records
to produce, or an outcome (`Retryable`, `Reject`, `Poison`). The runtime (`runner.py`) owns everything else:
polling, decoding, retries, producing, committing, dead letters and shutdown. Handlers must be idempotent
(records are delivered at least once) and may run concurrently for different partitions. A handler whose work
waits on I/O (a store write) may also declare `concurrency`: that many records of one partition are handled at
once, started in order (each runs up to its first wait before the next starts, so writes queued there keep the
partition's order), with offsets still committed in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from edi.adapters.bus.port import Record
from edi.events.headers import Correlation
from edi.events.models import Event, Rejection
from edi.schemas.topics import REJECTED
from edi.services.runtime.outcomes import Outcome, Reject
from edi.services.runtime.retry import RetryPolicy

P = TypeVar("P", bound="Event | bytes")

# The concurrency for a handler whose time goes on a store write: enough records of a partition in flight to fill
# the store's group commits (a topic keyed by receiver may have only a few busy partitions).
STORE_WRITER_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class Message(Generic[P]):
    payload: P  # the decoded event, or the raw bytes for a `bytes` handler
    record: Record  # where it came from: topic, partition, offset, key, headers
    correlation: Correlation
    attempt: int  # 1 on first delivery to the handler, counting up on retries


@dataclass(frozen=True, slots=True)
class Output:
    """A record for the runtime to produce; the input's offset is committed only once all are acknowledged."""

    topic: str
    value: Event | bytes | None
    key: bytes | None = None  # None with an event: the event's own partition key
    correlation: Correlation | None = None  # None: the input's correlation, in a new span of its trace


Result = Sequence[Output] | Outcome
Handler = Callable[[Message[P]], Awaitable[Result]]
# Turns a Reject into the Rejection event on edi.rejected (only the handler's side knows the message ids).
RejectionBuilder = Callable[[Message[P], Reject], Rejection]


@dataclass(frozen=True, slots=True)
class Route(Generic[P]):
    topic: str
    payload: type[P]
    handler: Handler[P]
    outputs: frozenset[str]
    rejections: RejectionBuilder[P] | None
    retry: RetryPolicy | None  # None: the service settings' policy
    concurrency: int = 1  # records of one partition handled at once


class Service:
    def __init__(self, name: str) -> None:
        self.name = name  # also the consumer group and the dead-letter topic's suffix
        self.routes: dict[str, Route[Any]] = {}

    def handler(
        self,
        topic: str,
        *,
        payload: type[P],
        outputs: Sequence[str] = (),
        rejections: RejectionBuilder[P] | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int = 1,
    ) -> Callable[[Handler[P]], Handler[P]]:
        """Register the decorated function as the handler of `topic`, whose records hold `payload` (an event
        type, or `bytes` for raw records). It may produce to `outputs` only (and to edi.rejected when it has
        `rejections`). `concurrency`: see the module docstring."""
        if topic in self.routes:
            raise ValueError(f"{self.name} already has a handler for {topic}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")

        def register(handler: Handler[P]) -> Handler[P]:
            declared = frozenset(outputs) | ({REJECTED} if rejections is not None else set())
            self.routes[topic] = Route(topic, payload, handler, declared, rejections, retry, concurrency)
            return handler

        return register

    @property
    def input_topics(self) -> list[str]:
        return sorted(self.routes)
