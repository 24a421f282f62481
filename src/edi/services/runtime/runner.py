"""The loop every service runs: poll, decode, handle, produce, commit; retries, dead letters and shutdown.

Guarantees:
- An input's offset is committed only after every output of its handler (or its dead letter) is acknowledged
  by the broker, and only for partitions this member still owns; anything not committed comes again.
- Records of one partition are handled in order, one at a time unless the route declares more (a record's
  outputs are produced while the next one is handled); the partitions of a batch run concurrently.
- A handler that fails (`Retryable`, or any unexpected exception) is retried with growing, jittered delays,
  up to its attempt limit; then, or at once for `Poison` and undecodable records, the record goes to the
  service's dead-letter topic with the reason, attempts and original coordinates, and the partition moves on.
- The broker being away is waited out: produces and commits are retried until it is back.
- On stop, the records being handled get `shutdown_timeout_s` to finish; what finished is committed, the rest
  is left for redelivery, and the consumer leaves its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from edi.adapters.bus.port import Ack, Bus, BusError, BusUnavailableError, Consumer, Headers, Record, TopicPartition
from edi.events import headers as h
from edi.events.codec import AvroCodec, DecodeError, default_codec
from edi.events.headers import Correlation
from edi.events.models import DeadLetter, Event
from edi.observability import metrics, tracing
from edi.observability.logging import bind_record_context, reset_record_context
from edi.schemas.topics import ALL_TOPICS, REJECTED, dead_letter_spec, dead_letter_topic
from edi.services.runtime.outcomes import Outcome, Poison, Reject, Retryable
from edi.services.runtime.retry import BROKER_BACKOFF
from edi.services.runtime.service import Message, Output, Route, Service
from edi.services.runtime.settings import ServiceSettings

log = structlog.get_logger(__name__)

# Leaving cleanly after the in-flight records: the final commit and the group leave each get this long.
CLOSE_TIMEOUT_S = 5.0
# A reason is for people reading a dead-letter topic; an exception message can be long.
_MAX_REASON_CHARS = 2000


class DeadLetterUnavailableError(BusError):
    """A record could not be moved to the dead-letter topic: the service stops rather than skip it."""


@dataclass(frozen=True, slots=True)
class _Outgoing:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: Headers


async def run_service(
    service: Service, bus: Bus, settings: ServiceSettings, stop: asyncio.Event, *, codec: AvroCodec | None = None
) -> None:
    """Consume until `stop` is set, then finish in-flight records (within the bound), commit and leave."""
    await _Runner(service, bus, settings, codec or default_codec()).run(stop)


async def serve(service: Service, settings: ServiceSettings) -> None:
    """Run a service as a process: open the configured bus, create missing topics, stop on SIGTERM/SIGINT."""
    bus = settings.open_bus()
    await bus.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    try:
        await bus.ensure_topics([*ALL_TOPICS, dead_letter_spec(service.name)])
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info("service started", service=service.name, bus=settings.bus, topics=service.input_topics)
        await run_service(service, bus, settings, stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await bus.close()
        log.info("service stopped", service=service.name)


class _Runner:
    def __init__(self, service: Service, bus: Bus, settings: ServiceSettings, codec: AvroCodec) -> None:
        self._service = service
        self._bus = bus
        self._settings = settings
        self._codec = codec
        self._retry = settings.retry_policy()
        self._dead_letter_topic = dead_letter_topic(service.name)
        # Per partition, the offset to commit next: one past the last record fully dealt with.
        self._done: dict[TopicPartition, int] = {}
        self._idle = asyncio.Event()  # no batch in flight
        self._idle.set()
        self._stopping = asyncio.Event()
        self._consumer: Consumer | None = None
        # Labelled once: looking a metric's child up by its labels for every record costs more than observing.
        self._handler_seconds = {topic: metrics.HANDLER_SECONDS.labels(service.name, topic) for topic in service.routes}

    async def run(self, stop: asyncio.Event) -> None:
        self._consumer = await self._bus.subscribe(
            self._service.name, self._service.input_topics, on_revoked=self._on_revoked
        )
        consuming = asyncio.create_task(self._consume(self._consumer), name=f"{self._service.name}-consume")
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({consuming, stopped}, return_when=asyncio.FIRST_COMPLETED)
            self._stopping.set()
            # In-flight records get the bound to finish; what has not finished by then is abandoned uncommitted.
            finished, _ = await asyncio.wait({consuming}, timeout=self._settings.shutdown_timeout_s)
            if finished:
                consuming.result()  # a fatal error ends the service with that error
            else:
                log.warning("abandoning in-flight records at shutdown", service=self._service.name)
        finally:
            stopped.cancel()
            consuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consuming
            with contextlib.suppress(TimeoutError, BusError):
                await asyncio.wait_for(self._commit(self._consumer), CLOSE_TIMEOUT_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._consumer.close(), CLOSE_TIMEOUT_S)

    async def _consume(self, consumer: Consumer) -> None:
        attempt = 0
        commit_due = 0.0
        while not self._stopping.is_set():
            # Offsets are committed at most once per commit interval: under a steady trickle each poll brings a
            # few records, and a commit after each would cost the broker a write per poll. What is done is
            # committed within the interval all the same, for the poll waits no longer than that.
            now = time.monotonic()
            if self._done and now >= commit_due:
                await self._commit(consumer)
                now = time.monotonic()
                commit_due = now + self._settings.commit_interval_s
            wait_s = self._settings.poll_timeout_s
            if self._done:
                wait_s = min(wait_s, max(0.0, commit_due - now))
            try:
                records = await consumer.poll(max_records=self._settings.batch_max_records, timeout_s=wait_s)
            except BusUnavailableError as exc:
                attempt += 1
                log.warning("poll failed, retrying", service=self._service.name, error=str(exc))
                await self._pause(BROKER_BACKOFF.delay_s(attempt))
                continue
            attempt = 0
            if records:
                self._idle.clear()
                try:
                    await self._process_batch(records)
                finally:
                    self._idle.set()

    async def _commit(self, consumer: Consumer) -> None:
        if not self._done:
            return
        offsets = dict(self._done)
        try:
            await consumer.commit(offsets)
        except BusUnavailableError as exc:
            log.warning("commit failed, keeping the offsets for the next one", error=str(exc))
            return
        # Committed, or refused because the partition has moved to another member: either way, done here.
        for tp, offset in offsets.items():
            if self._done.get(tp) == offset:
                del self._done[tp]

    async def _on_revoked(self, partitions: frozenset[TopicPartition]) -> None:
        # A rebalance takes partitions away: let the batch in flight finish (bounded), then commit what is done
        # of them, so that their next owner does not handle those records again.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self._settings.shutdown_timeout_s)
        offsets = {tp: offset for tp, offset in self._done.items() if tp in partitions}
        if offsets and self._consumer is not None:
            try:
                await self._consumer.commit(offsets)
            except BusError as exc:
                log.warning("commit before rebalance failed", error=str(exc))
        for tp in partitions:
            self._done.pop(tp, None)

    async def _process_batch(self, records: list[Record]) -> None:
        by_partition: dict[TopicPartition, list[Record]] = {}
        for record in records:
            by_partition.setdefault(record.topic_partition, []).append(record)
        async with asyncio.TaskGroup() as group:
            for partition_records in by_partition.values():
                group.create_task(self._process_partition(partition_records))

    async def _process_partition(self, records: list[Record]) -> None:
        # Records are handled in order, up to the route's concurrency at once; each record's outputs are produced
        # while the next records are handled, and the partition's offset advances, in order, as soon as they are
        # acknowledged.
        window = asyncio.Semaphore(self._service.routes[records[0].topic].concurrency)
        steps: deque[tuple[Record, asyncio.Task[bool]]] = deque()
        try:
            for record in records:
                # Once stopping, no new record is started; an abandoned one stops its partition, since no later
                # offset of it may be committed.
                await window.acquire()
                if self._stopping.is_set():
                    window.release()
                    break
                step = asyncio.create_task(self._step(record, window))
                steps.append((record, step))
                step.add_done_callback(lambda _: self._advance(steps))
            for _, step in list(steps):
                if not await step:  # raises what a dead letter that could not be written raised
                    return
        finally:
            for _, step in steps:
                step.cancel()  # only those not finished: their records stay uncommitted

    async def _step(self, record: Record, window: asyncio.Semaphore) -> bool:
        """Handle the record (holding a place in the window), then see its outputs or dead letter acknowledged:
        True once they are, False if abandoned. Both under the record's log context and trace span."""
        correlation = Correlation.from_headers(record.headers)
        context = bind_record_context({
            "service": self._service.name, "topic": record.topic, "partition": record.partition,
            "offset": record.offset, **correlation.log_context(),
        })
        try:
            with tracing.handling(self._service.name, record, correlation) as correlation:
                try:
                    publication = await self._handle(record, correlation)
                finally:
                    window.release()
                return publication is not None and await publication
        finally:
            reset_record_context(context)

    def _advance(self, steps: deque[tuple[Record, asyncio.Task[bool]]]) -> None:
        while steps and steps[0][1].done():
            record, step = steps[0]
            if step.cancelled() or step.exception() is not None or not step.result():
                return
            steps.popleft()
            self._done[record.topic_partition] = record.offset + 1

    async def _handle(self, record: Record, correlation: Correlation) -> Coroutine[Any, Any, bool] | None:
        """Handle one record, retrying as its route says; then the producing of its outputs or its dead letter,
        to await (True once acknowledged, False if abandoned); None if abandoned before."""
        route = self._service.routes[record.topic]
        try:
            payload = _decode(route, record.value, self._codec)
        except DecodeError as exc:
            return self._dead_letter(record, f"cannot decode: {exc}", attempts=1)
        retry = route.retry or self._retry
        attempt = 0
        while True:
            attempt += 1
            result = await self._attempt(route, Message(payload, record, correlation, attempt))
            if isinstance(result, Poison):
                return self._dead_letter(record, result.reason, attempt)
            if not isinstance(result, Retryable):
                return self._publish(route, record, correlation, result, attempt)
            if retry.gives_up_after(attempt):
                reason = f"gave up after {attempt} attempts: {result.reason}"
                return self._dead_letter(record, reason, attempt)
            delay = retry.delay_s(attempt)
            log.warning("handler failed, retrying", attempt=attempt, delay_s=round(delay, 3), reason=result.reason)
            if not await self._pause(delay):
                return None

    async def _attempt(self, route: Route[Any], message: Message[Any]) -> Sequence[Output] | Retryable | Poison:
        started = time.perf_counter()
        try:
            result = await route.handler(message)
            if isinstance(result, Outcome):
                raise result
            if isinstance(result, Sequence) and all(isinstance(output, Output) for output in result):
                return result
            return Poison(f"handler returned {type(result).__name__}, neither outputs nor an outcome")
        except Reject as reject:
            if route.rejections is None:
                return Poison(f"rejected ({reject.apprec_code}: {reject.reason}), but the handler has no rejections")
            log.info("message rejected", apprec_code=reject.apprec_code, reason=reject.reason)
            metrics.refused(self._service.name, [reject.apprec_code])
            return [Output(REJECTED, route.rejections(message, reject))]
        except (Retryable, Poison) as outcome:
            return outcome
        except Exception as exc:  # a bug or an unforeseen outage: retried, then dead-lettered, never skipped
            log.warning("handler raised", exc_info=True)
            return Retryable(f"{type(exc).__name__}: {exc}")
        finally:
            self._handler_seconds[route.topic].observe(time.perf_counter() - started)

    async def _publish(
        self, route: Route[Any], record: Record, correlation: Correlation, outputs: Sequence[Output], attempt: int
    ) -> bool:
        undeclared = {output.topic for output in outputs} - route.outputs
        if undeclared:
            reason = f"handler produced to undeclared topics {sorted(undeclared)}"
            return await self._dead_letter(record, reason, attempt)
        try:
            outgoing = [self._encode(output, correlation) for output in outputs]
            return await self._produce(outgoing)
        except BusError as exc:  # not transient: e.g. a record too large for the broker
            return await self._dead_letter(record, f"cannot produce its outputs: {exc}", attempt)
        except (ValueError, TypeError) as exc:  # the event does not fit its schema
            return await self._dead_letter(record, f"cannot encode its outputs: {exc}", attempt)

    def _encode(self, output: Output, correlation: Correlation) -> _Outgoing:
        headers = (output.correlation or correlation.child()).to_headers()
        if isinstance(output.value, Event):
            key = output.key if output.key is not None else output.value.partition_key()
            return _Outgoing(output.topic, self._codec.encode(output.value), key, headers)
        return _Outgoing(output.topic, output.value, output.key, headers)

    async def _produce(self, outgoing: list[_Outgoing]) -> bool:
        """Produce all, concurrently; retry the ones the broker did not take until it does. False if stopping
        first. Raises BusError for a record the broker will never take."""
        attempt = 0
        while outgoing:
            results = await self._produce_each(outgoing)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, BusUnavailableError):
                    raise result
            outgoing = [o for o, result in zip(outgoing, results, strict=True) if isinstance(result, BaseException)]
            if outgoing:
                attempt += 1
                log.warning("broker unavailable, retrying produce", records=len(outgoing), attempt=attempt)
                if not await self._pause(BROKER_BACKOFF.delay_s(attempt)):
                    return False
        return True

    async def _produce_each(self, outgoing: list[_Outgoing]) -> list[Ack | BaseException]:
        """Each record's acknowledgement or error. Most records have one output: that is produced directly,
        without the tasks and futures of a gather."""
        producing = [self._bus.produce(o.topic, o.value, key=o.key, headers=o.headers) for o in outgoing]
        if len(producing) == 1:
            try:
                return [await producing[0]]
            except Exception as exc:
                return [exc]
        return await asyncio.gather(*producing, return_exceptions=True)

    async def _dead_letter(self, record: Record, reason: str, attempts: int) -> bool:
        reason = reason[:_MAX_REASON_CHARS]
        log.error("moving record to the dead-letter topic", reason=reason, attempts=attempts)
        metrics.DEAD_LETTERS.labels(self._service.name, record.topic).inc()
        letter = DeadLetter(
            service=self._service.name,
            original_topic=record.topic,
            original_partition=record.partition,
            original_offset=record.offset,
            original_timestamp=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
            original_key=record.key,
            original_value=record.value,
            reason=reason,
            attempts=attempts,
            failed_at=datetime.now(UTC),
        )
        # The original headers stay (correlation, trace); the dead-letter ones say why and where from.
        headers = (
            *record.headers,
            (h.DLQ_REASON, reason.encode()),
            (h.DLQ_ATTEMPTS, str(attempts).encode()),
            (h.DLQ_SERVICE, self._service.name.encode()),
            (h.DLQ_TOPIC, record.topic.encode()),
            (h.DLQ_PARTITION, str(record.partition).encode()),
            (h.DLQ_OFFSET, str(record.offset).encode()),
        )
        try:
            return await self._produce(
                [_Outgoing(self._dead_letter_topic, self._codec.encode(letter), record.key, headers)]
            )
        except BusError as exc:
            raise DeadLetterUnavailableError(f"cannot write to {self._dead_letter_topic}: {exc}") from exc

    async def _pause(self, delay_s: float) -> bool:
        """Sleep, unless stopping: False if stopping (now or during the sleep)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay_s)
        return not self._stopping.is_set()


def _decode(route: Route[Any], value: bytes | None, codec: AvroCodec) -> Any:
    if route.payload is bytes:
        if value is None:
            raise DecodeError("a tombstone where a raw record was expected")
        return value
    return codec.decode(value, route.payload)
