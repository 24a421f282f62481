"""What a process knows about its own health: liveness, readiness, and the series sampled at scrape time.

`Ops` is made once per process (`host.Parts`) and told about the parts as they are opened: the bus, the store,
the registry (its database, or the view fed from edi.registry), and every service's consumer. `ready()` checks
them all, which is what /readyz answers; Kubernetes keeps an unready pod out of its Service and does not restart
it, so a broker outage makes the pods unready, never restarts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.ext.asyncio import AsyncEngine

from edi.adapters.bus import Bus, Consumer, Record, RevokeHook, TopicPartition
from edi.adapters.bus.port import DelegatingBus
from edi.observability import metrics
from edi.schemas.topics import REGISTRY
from edi.services.store import BackboneStore

# A readiness check that takes longer than this fails: probes must answer within their own timeout.
CHECK_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, str]  # check name: "ok", or why not
    details: dict[str, str] = field(default_factory=dict)  # what an operator should know; never makes it unready


class Ops:
    def __init__(self, stack: AsyncExitStack | None = None) -> None:
        self._stack = stack  # takes the samplers away when the process's parts close
        self._bus: Bus | None = None
        self._engines: dict[str, AsyncEngine] = {}  # check name: a database that must answer
        self._feeds: list[Callable[[], bool]] = []  # registry views: caught up yet?
        self._details: dict[str, str] = {}
        self.consumers = ConsumerWatch()

    def watch_bus(self, bus: Bus) -> None:
        self._bus = bus
        self._sample(metrics.Sampler("consumer-lag", lambda: self.consumers.lag(bus)))

    def watch_database(self, name: str, engine: AsyncEngine) -> None:
        self._engines[name] = engine

    def watch_registry_view(self, caught_up: Callable[[], bool]) -> None:
        self._feeds.append(caught_up)

    def tell(self, name: str, detail: str) -> None:
        """Report `detail` in /readyz's details (a degraded but working part, such as schemas not installed)."""
        self._details[name] = detail

    def sample_backlog(self, store: BackboneStore) -> None:
        """Per receiver, the unread messages and the age of the oldest: for the process that runs the mailbox."""
        self._sample(metrics.Sampler("mailbox-backlog", lambda: backlog(store)))

    def _sample(self, sampler: metrics.Sampler) -> None:
        remove = metrics.add_sampler(sampler)
        if self._stack is not None:
            self._stack.callback(remove)

    async def ready(self) -> Readiness:
        checks: dict[str, Awaitable[object]] = {}
        if self._bus is not None:
            checks["bus"] = self._bus.end_offsets([REGISTRY])  # answers only with the broker there
        for name, engine in self._engines.items():
            checks[name] = _ping(engine)
        names = list(checks)
        outcomes = await asyncio.gather(
            *(asyncio.wait_for(check, CHECK_TIMEOUT_S) for check in checks.values()), return_exceptions=True)
        results = {
            name: "ok" if not isinstance(outcome, BaseException) else _why(outcome)
            for name, outcome in zip(names, outcomes, strict=True)
        }
        if self._feeds:
            results["registry-view"] = "ok" if all(f() for f in self._feeds) else "not caught up with edi.registry"
        results.update(self.consumers.readiness())
        return Readiness(all(v == "ok" for v in results.values()), results, dict(self._details))


def _why(exc: BaseException) -> str:
    return "no answer in time" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"


async def _ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))


async def backlog(store: BackboneStore) -> Sequence[Metric]:
    """The gauges from the same figures `edi ops backlog` shows."""
    unread = GaugeMetricFamily(metrics.UNREAD_MESSAGES, "Messages waiting unread in a receiver's mailbox.",
                               labels=["receiver_her_id"])
    oldest = GaugeMetricFamily(metrics.OLDEST_UNREAD_AGE, "How long the oldest unread message in a receiver's "
                               "mailbox has waited there.", labels=["receiver_her_id"])
    for row in await store.backlog():
        if row.unread:
            unread.add_metric([row.her_id], row.unread)
        if row.oldest_unread_age_s is not None:
            oldest.add_metric([row.her_id], max(0.0, row.oldest_unread_age_s))
    return [unread, oldest]


@dataclass
class _Member:
    service: str
    consumer: Consumer
    taken: dict[TopicPartition, int] = field(default_factory=dict)  # next offset after the last record taken


class ConsumerWatch:
    """The consumers the services' runtimes use, seen through a bus wrapper: whether they have partitions, and
    how far they have taken each (for the lag)."""

    def __init__(self) -> None:
        self._services: dict[str, list[_Member]] = {}

    def bus(self, bus: Bus, service: str) -> Bus:
        """The bus for `service`'s runtime: its consumers are watched."""
        self._services.setdefault(service, [])
        return _WatchedBus(bus, service, self)

    def _joined(self, member: _Member) -> None:
        self._services[member.service].append(member)

    def _left(self, member: _Member) -> None:
        self._services[member.service].remove(member)

    def readiness(self) -> dict[str, str]:
        results = {}
        for service, members in self._services.items():
            if not members:
                results[f"consumer:{service}"] = "not subscribed"
            elif not all(member.consumer.assignment() for member in members):
                results[f"consumer:{service}"] = "no partitions assigned"
            else:
                results[f"consumer:{service}"] = "ok"
        return results

    async def lag(self, bus: Bus) -> Sequence[Metric]:
        family = GaugeMetricFamily(
            metrics.CONSUMER_LAG, "Records on a partition after the last one its consumer took for handling.",
            labels=["service", "topic", "partition"])
        members = [m for ms in self._services.values() for m in ms]
        topics = sorted({tp.topic for m in members for tp in m.consumer.assignment()})
        ends = await bus.end_offsets(topics) if topics else {}
        for member in members:
            for tp in sorted(member.consumer.assignment()):
                taken = member.taken.get(tp)
                if taken is not None and tp in ends:
                    family.add_metric([member.service, tp.topic, str(tp.partition)], max(0, ends[tp] - taken))
        return [family]


class _WatchedBus(DelegatingBus):
    def __init__(self, bus: Bus, service: str, watch: ConsumerWatch) -> None:
        super().__init__(bus)
        self._service = service
        self._watch = watch

    async def subscribe(
        self, group_id: str, topics: Sequence[str], *, on_revoked: RevokeHook | None = None
    ) -> Consumer:
        member = _Member(self._service, await self._bus.subscribe(group_id, topics, on_revoked=on_revoked))
        self._watch._joined(member)
        return _WatchedConsumer(member, self._watch)


class _WatchedConsumer:
    def __init__(self, member: _Member, watch: ConsumerWatch) -> None:
        self._member = member
        self._watch = watch

    async def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        records = await self._member.consumer.poll(max_records=max_records, timeout_s=timeout_s)
        for record in records:
            self._member.taken[record.topic_partition] = record.offset + 1
        return records

    def assignment(self) -> frozenset[TopicPartition]:
        return self._member.consumer.assignment()

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> frozenset[TopicPartition]:
        return await self._member.consumer.commit(offsets)

    async def close(self) -> None:
        self._watch._left(self._member)
        await self._member.consumer.close()
