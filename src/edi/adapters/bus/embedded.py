"""The embedded bus: a durable, partitioned log with consumer groups in one SQLite file.

It gives one machine the semantics the services rely on from Kafka, with zero setup: topics with partitions
(a key picks its partition with Kafka's own murmur2 partitioner), consumer groups whose members share the
partitions, offsets committed explicitly per group, records and offsets that survive a restart. A produced
record is durable when `produce` returns (WAL with synchronous=FULL); concurrent produces share one
transaction, so they also share one fsync.

Consumers in the process that produced a record are woken at once; consumers in other processes sharing the
file notice it within `poll_interval_s`. Group membership is a lease renewed by a heartbeat task; a member
that stops renewing it for `session_timeout_s` loses its partitions to the others. Unlike Kafka there is no
rebalance barrier: for a moment after a member joins, the partitions it takes may still be read by their
previous owner, so a record can be processed twice (at-least-once, as promised) but never lost, and a commit
never moves a group's offset backwards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import structlog

from edi.adapters.bus.partitioner import partition_for_key
from edi.adapters.bus.port import (
    Ack,
    BusError,
    BusUnavailableError,
    Headers,
    Record,
    RevokeHook,
    TopicPartition,
    UnknownTopicError,
)
from edi.schemas.topics import TopicSpec

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Bumped when the tables below change shape; a file of another version is refused rather than misread.
FILE_FORMAT_VERSION = 1
_TABLES = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, retention_ms INTEGER, compacted INTEGER NOT NULL
);
-- The log end offset lives apart from the log, so offsets keep growing after retention empties a partition.
CREATE TABLE IF NOT EXISTS partitions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS log (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    key BLOB, value BLOB, headers TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, offset)
);
CREATE INDEX IF NOT EXISTS log_by_key ON log (topic, partition, key, offset);
CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
CREATE TABLE IF NOT EXISTS group_members (
    group_id TEXT NOT NULL, member_id TEXT NOT NULL, topics TEXT NOT NULL, expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
"""
_MAX_WRITE_BATCH = 500


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so two processes appending to one partition cannot both read
    # the same next offset.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _encode_headers(headers: Headers) -> str:
    return json.dumps([[name, base64.b64encode(value).decode("ascii")] for name, value in headers])


def _decode_headers(text: str) -> Headers:
    return tuple((name, base64.b64decode(value)) for name, value in json.loads(text))


class _Sqlite:
    """One connection used from one worker thread: SQLite calls block, and the event loop must not."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edi-bus-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._conn = await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # Durable on power loss once produce returns, like acks=all.
            conn.execute("PRAGMA synchronous=FULL")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version not in (0, FILE_FORMAT_VERSION):
                raise BusError(f"{self.path}: embedded bus file of format {version}, not {FILE_FORMAT_VERSION}")
            conn.executescript(_TABLES)
            conn.execute(f"PRAGMA user_version={FILE_FORMAT_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise BusError(f"embedded bus {self.path} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)
        except sqlite3.OperationalError as exc:  # e.g. "database is locked" past the busy timeout
            raise BusUnavailableError(f"embedded bus {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise BusError(f"embedded bus {self.path}: {exc}") from exc

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)


class _Wakeups:
    """The consumers of this process, per bus file, so that a produce can wake them without polling."""

    def __init__(self) -> None:
        self._consumers: dict[Path, set[EmbeddedConsumer]] = {}

    def add(self, path: Path, consumer: EmbeddedConsumer) -> None:
        self._consumers.setdefault(path, set()).add(consumer)

    def discard(self, path: Path, consumer: EmbeddedConsumer) -> None:
        self._consumers.get(path, set()).discard(consumer)

    def notify(self, path: Path, topics: set[str]) -> None:
        for consumer in tuple(self._consumers.get(path, ())):
            if not topics.isdisjoint(consumer.topics):
                consumer.wake()


_WAKEUPS = _Wakeups()


@dataclass(slots=True)
class _Pending:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    done: asyncio.Future[Ack] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class EmbeddedBus:
    def __init__(
        self,
        path: Path,
        *,
        session_timeout_s: float = 10.0,
        poll_interval_s: float = 0.25,
        housekeeping_interval_s: float = 600.0,
    ) -> None:
        self.path = path.resolve()
        self.session_timeout_s = session_timeout_s
        self.poll_interval_s = poll_interval_s
        self._housekeeping_interval_s = housekeeping_interval_s
        self._db = _Sqlite(self.path)
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._consumers: set[EmbeddedConsumer] = set()
        # Records without a key are spread round-robin (Kafka picks a partition at random).
        self._round_robin = itertools.count()

    async def start(self) -> None:
        await self._db.open()
        await self.housekeeping()
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="edi-bus-writer"),
            asyncio.create_task(self._housekeeping_loop(), name="edi-bus-housekeeping"),
        ]

    async def close(self) -> None:
        for consumer in tuple(self._consumers):
            await consumer.close()
        if self._tasks:
            (writer, housekeeper), self._tasks = self._tasks, []  # from here on, produce refuses
            await self._queue.put(None)  # the writer finishes what is queued before it sees this
            await writer
            housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeper
        await self._db.close()

    async def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        specs = tuple(specs)

        def create(conn: sqlite3.Connection) -> list[tuple[TopicSpec, int]]:
            mismatched = []
            with _write_transaction(conn):
                for spec in specs:
                    row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (spec.name,)).fetchone()
                    if row is not None:
                        if row[0] != spec.partitions:
                            mismatched.append((spec, row[0]))
                        continue
                    conn.execute(
                        "INSERT INTO topics VALUES (?, ?, ?, ?)",
                        (spec.name, spec.partitions, spec.retention_ms, spec.compacted),
                    )
                    conn.executemany(
                        "INSERT INTO partitions VALUES (?, ?, 0)",
                        [(spec.name, partition) for partition in range(spec.partitions)],
                    )
            return mismatched

        for spec, actual in await self._db.run(create):
            log.warning("topic has other partition count", topic=spec.name, wanted=spec.partitions, actual=actual)

    async def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = ()) -> Ack:
        if not self._tasks:
            raise BusError(f"embedded bus {self.path} is not started")
        pending = _Pending(topic, key, value, tuple(headers))
        await self._queue.put(pending)
        return await pending.done

    async def subscribe(
        self, group_id: str, topics: Sequence[str], *, on_revoked: RevokeHook | None = None
    ) -> EmbeddedConsumer:
        consumer = EmbeddedConsumer(self, self._db, group_id, frozenset(topics), on_revoked)
        await consumer.start()
        self._consumers.add(consumer)
        return consumer

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        wanted = tuple(topics)

        def read(conn: sqlite3.Connection) -> dict[TopicPartition, int]:
            ends: dict[TopicPartition, int] = {}
            for topic in wanted:
                rows = conn.execute(
                    "SELECT partition, next_offset FROM partitions WHERE topic = ?", (topic,)
                ).fetchall()
                if not rows:
                    raise UnknownTopicError(topic)
                ends.update({TopicPartition(topic, partition): offset for partition, offset in rows})
            return ends

        return await self._db.run(read)

    def _forget(self, consumer: EmbeddedConsumer) -> None:
        self._consumers.discard(consumer)

    async def housekeeping(self, now_ms: int | None = None) -> int:
        """Apply retention and compaction, as Kafka's log cleaner does; returns how many records went."""
        now = _now_ms() if now_ms is None else now_ms

        def clean(conn: sqlite3.Connection) -> int:
            removed = 0
            with _write_transaction(conn):
                for name, retention_ms, compacted in conn.execute(
                    "SELECT name, retention_ms, compacted FROM topics"
                ).fetchall():
                    if compacted:
                        # A keyed record with a newer one of the same key in its partition is superseded.
                        cursor = conn.execute(
                            """DELETE FROM log WHERE topic = ? AND key IS NOT NULL AND offset < (
                                   SELECT MAX(newer.offset) FROM log AS newer WHERE newer.topic = log.topic
                                   AND newer.partition = log.partition AND newer.key = log.key)""",
                            (name,),
                        )
                    elif retention_ms is not None:
                        cursor = conn.execute(
                            "DELETE FROM log WHERE topic = ? AND timestamp_ms < ?", (name, now - retention_ms)
                        )
                    else:
                        continue
                    removed += cursor.rowcount
            return removed

        return await self._db.run(clean)

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(self._housekeeping_interval_s)
            try:
                await self.housekeeping()
            except BusError as exc:
                log.warning("embedded bus housekeeping failed", error=str(exc))

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            batch: list[_Pending] = []
            while item is not None:
                batch.append(item)
                if len(batch) >= _MAX_WRITE_BATCH or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            stopping = item is None
            if not batch:
                continue
            results: list[Ack | Exception]
            try:
                results = await self._db.run(partial(self._append, batch))
            except Exception as exc:  # the batch failed as a whole; the writer must live on for the next one
                results = [exc] * len(batch)
            for pending, result in zip(batch, results, strict=True):
                if pending.done.done():  # the producer was cancelled
                    continue
                if isinstance(result, Ack):
                    pending.done.set_result(result)
                else:
                    pending.done.set_exception(result)
            _WAKEUPS.notify(self.path, {pending.topic for pending in batch})

    def _append(self, batch: list[_Pending], conn: sqlite3.Connection) -> list[Ack | Exception]:
        results: list[Ack | Exception] = []
        now = _now_ms()
        with _write_transaction(conn):
            for pending in batch:
                row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (pending.topic,)).fetchone()
                if row is None:
                    results.append(UnknownTopicError(pending.topic))
                    continue
                if pending.key is None:
                    partition = next(self._round_robin) % row[0]
                else:
                    partition = partition_for_key(pending.key, row[0])
                (offset,) = conn.execute(
                    """UPDATE partitions SET next_offset = next_offset + 1 WHERE topic = ? AND partition = ?
                       RETURNING next_offset - 1""",
                    (pending.topic, partition),
                ).fetchone()
                conn.execute(
                    "INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        pending.topic,
                        partition,
                        offset,
                        pending.key,
                        pending.value,
                        _encode_headers(pending.headers),
                        now,
                    ),
                )
                results.append(Ack(pending.topic, partition, offset))
        return results


class EmbeddedConsumer:
    def __init__(
        self,
        bus: EmbeddedBus,
        db: _Sqlite,
        group_id: str,
        topics: frozenset[str],
        on_revoked: RevokeHook | None,
    ) -> None:
        self.topics = topics
        self._bus = bus
        self._db = db
        self._group_id = group_id
        self._member_id = uuid.uuid4().hex
        self._on_revoked = on_revoked
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._fetch_rotation = itertools.count()

    def wake(self) -> None:
        # Thread-safe: a bus on another event loop of this process may have produced the record.
        with contextlib.suppress(RuntimeError):  # this consumer's loop is already closed
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def start(self) -> None:
        await self._heartbeat()
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name=f"edi-bus-heartbeat-{self._group_id}")
        _WAKEUPS.add(self._bus.path, self)

    def assignment(self) -> frozenset[TopicPartition]:
        return self._assignment

    async def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        deadline = self._loop.time() + timeout_s
        while True:
            self._wakeup.clear()  # before reading, so a record produced meanwhile still wakes the wait below
            await self._rebalance()
            records = await self._db.run(partial(self._fetch, sorted(self._positions.items()), max_records))
            if records:
                for record in records:
                    self._positions[record.topic_partition] = record.offset + 1
                return records
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), min(remaining, self._bus.poll_interval_s))

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> frozenset[TopicPartition]:
        owned = {tp: offset for tp, offset in offsets.items() if tp in self._assignment}
        if not owned:
            return frozenset()
        lease_until = _now_ms() + int(self._bus.session_timeout_s * 1000)

        def store(conn: sqlite3.Connection) -> bool:
            with _write_transaction(conn):
                # Committing renews the lease, and is refused when the lease has already run out: the
                # partitions may belong to another member by now.
                alive = conn.execute(
                    """UPDATE group_members SET expires_at_ms = ?
                       WHERE group_id = ? AND member_id = ? AND expires_at_ms >= ?""",
                    (lease_until, self._group_id, self._member_id, _now_ms()),
                ).rowcount
                if not alive:
                    return False
                conn.executemany(
                    """INSERT INTO group_offsets VALUES (?, ?, ?, ?)
                       ON CONFLICT DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)""",
                    [(self._group_id, tp.topic, tp.partition, offset) for tp, offset in owned.items()],
                )
                return True

        return frozenset(owned) if await self._db.run(store) else frozenset()

    async def close(self) -> None:
        if self._heartbeat_task is None:
            return
        _WAKEUPS.discard(self._bus.path, self)
        self._bus._forget(self)
        self._heartbeat_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._heartbeat_task
        self._heartbeat_task = None
        await self._db.run(
            lambda conn: conn.execute(
                "DELETE FROM group_members WHERE group_id = ? AND member_id = ?",
                (self._group_id, self._member_id),
            )
        )
        self._assignment = frozenset()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._bus.session_timeout_s / 3)
            try:
                await self._heartbeat()
            except BusError as exc:
                log.warning("embedded bus heartbeat failed", group=self._group_id, error=str(exc))

    async def _heartbeat(self) -> None:
        now = _now_ms()
        row = (
            self._group_id,
            self._member_id,
            json.dumps(sorted(self.topics)),
            now + int(self._bus.session_timeout_s * 1000),
        )

        def renew(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.execute("DELETE FROM group_members WHERE expires_at_ms < ?", (now,))
                conn.execute("INSERT OR REPLACE INTO group_members VALUES (?, ?, ?, ?)", row)

        await self._db.run(renew)

    async def _rebalance(self) -> None:
        assignment, committed = await self._db.run(self._read_assignment)
        revoked = self._assignment - assignment
        if revoked and self._on_revoked is not None:
            await self._on_revoked(revoked)
        for tp in revoked:
            del self._positions[tp]
        for tp in assignment - self._assignment:
            self._positions[tp] = committed.get(tp, 0)  # no committed offset: from the beginning
        self._assignment = assignment

    def _read_assignment(self, conn: sqlite3.Connection) -> tuple[frozenset[TopicPartition], dict[TopicPartition, int]]:
        members = conn.execute(
            """SELECT member_id, topics FROM group_members WHERE group_id = ? AND expires_at_ms >= ?
               ORDER BY member_id""",
            (self._group_id, _now_ms()),
        ).fetchall()
        partitions = dict(conn.execute("SELECT name, partitions FROM topics").fetchall())
        subscriptions = {member: set(json.loads(topics)) for member, topics in members}
        if self._member_id not in subscriptions:
            return frozenset(), {}  # the lease ran out; the next heartbeat joins again
        owned: set[TopicPartition] = set()
        for topic in self.topics:
            # Round-robin over the members subscribed to the topic, in member-id order: every member computes
            # the same split without talking to the others.
            subscribers = [member for member, topics in subscriptions.items() if topic in topics]
            index = subscribers.index(self._member_id)
            owned.update(
                TopicPartition(topic, partition)
                for partition in range(partitions.get(topic, 0))
                if partition % len(subscribers) == index
            )
        committed = {
            TopicPartition(topic, partition): offset
            for topic, partition, offset in conn.execute(
                "SELECT topic, partition, next_offset FROM group_offsets WHERE group_id = ?",
                (self._group_id,),
            )
        }
        return frozenset(owned), committed

    def _fetch(self, positions: list[tuple[TopicPartition, int]], limit: int, conn: sqlite3.Connection) -> list[Record]:
        records: list[Record] = []
        if not positions:
            return records
        # Start at another partition each time, so a busy partition cannot starve the others.
        start = next(self._fetch_rotation) % len(positions)
        for tp, position in positions[start:] + positions[:start]:
            rows = conn.execute(
                """SELECT offset, key, value, headers, timestamp_ms FROM log
                   WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?""",
                (tp.topic, tp.partition, position, limit - len(records)),
            )
            records.extend(
                Record(tp.topic, tp.partition, offset, key, value, _decode_headers(headers), timestamp_ms)
                for offset, key, value, headers, timestamp_ms in rows
            )
            if len(records) >= limit:
                break
        return records
