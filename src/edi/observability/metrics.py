"""Every Prometheus series the backbone exposes, defined once, in one registry per process.

The services of one process (`edi up`, or `edi run router mailbox`) share the registry; series that a service
counts carry its name in the `service` label. Counters are counted where the fact is decided: the runtime
(handler latency, dead letters), the services' handlers and the backbone's ingress (domain counts), the gateway
(HTTP). Gauges that describe state (consumer lag, unread backlog, the oldest unread message) are not kept up to
date on every write: a `Sampler` computes them when /metrics is scraped (`render`).

Names and labels here are what dashboards and the alert rules in deploy/ use; change them together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from edi.core.kinds import UNKNOWN_KIND

log = structlog.get_logger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# --- what happens to messages (counted by the services) -------------------------------------------------------

MESSAGES_RECEIVED = Counter(
    "edi_messages_received", "Documents offered to the backbone, by ingress (source: api, kafka).",
    ["service", "source"], registry=REGISTRY)
MESSAGES_ACCEPTED = Counter(
    "edi_messages_accepted", "Documents accepted: valid, admitted, and new (a resubmitted duplicate is not counted).",
    ["service", "source"], registry=REGISTRY)
MESSAGES_REFUSED = Counter(
    "edi_messages_refused",
    "Refusals by AppRec code (code list 8221): documents refused at ingress (gateway, validator), and receivers "
    "refused by the router's capability check.",
    ["service", "apprec_code"], registry=REGISTRY)
MESSAGES_DELIVERED = Counter(
    "edi_messages_delivered", "Messages put in a receiver's mailbox (once per message and receiver).",
    ["service"], registry=REGISTRY)
MESSAGES_READ = Counter(
    "edi_messages_read", "Messages marked read by their receiver.", ["service"], registry=REGISTRY)
APPRECS = Counter(
    "edi_apprecs", "AppRecs delivered to a mailbox, by status (code system 8220: 1 OK, 2 rejected, 3 OK with "
    "errors in a part); the backbone's own negative AppRecs included.",
    ["service", "status"], registry=REGISTRY)
DELIVERIES_UNCHECKED = Counter(
    "edi_deliveries_unchecked",
    "Messages put in a receiver's mailbox without a capability check (once per message and receiver), by why "
    "(not_governed: the kind is none of the registry's specifications; no_capabilities: the receiver has "
    "registered none; by_policy: EDI_CAPABILITY_POLICY=address-only) and the message's kind (a name from the "
    "project's code lists, or 'unknown').",
    ["reason", "kind"], registry=REGISTRY)
BLOB_BYTES = Counter(
    "edi_blob_bytes_stored", "Bytes of attachments stored in the blob store.", ["service"], registry=REGISTRY)

# --- the runtime --------------------------------------------------------------------------------------------------

HANDLER_SECONDS = Histogram(
    "edi_handler_seconds", "Time one handler attempt took, by service and route (its input topic).",
    ["service", "route"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
DEAD_LETTERS = Counter(
    "edi_dead_letters", "Records moved to a service's dead-letter topic, by service and the record's topic.",
    ["service", "topic"], registry=REGISTRY)

# --- the HTTP API -------------------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "edi_http_requests", "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"], registry=REGISTRY)
HTTP_SECONDS = Histogram(
    "edi_http_request_seconds", "Time to answer an HTTP request (to the end of the response), by method and route.",
    ["method", "route"], registry=REGISTRY)

# --- computed at scrape time (names and labels of the Samplers' series) ------------------------------------------

CONSUMER_LAG = "edi_consumer_lag"  # {service, topic, partition}: records after the last one taken for handling
UNREAD_MESSAGES = "edi_unread_messages"  # {receiver_her_id}: messages waiting in a receiver's mailbox
OLDEST_UNREAD_AGE = "edi_oldest_unread_age_seconds"  # {receiver_her_id}: how long the oldest of them has waited

def refused(service: str, apprec_codes: Iterable[str]) -> None:
    for code in apprec_codes:
        MESSAGES_REFUSED.labels(service, code).inc()


def delivered(
    service: str, first: bool, apprec_status: str | None, unchecked_reason: str | None = None, kind: str | None = None,
) -> None:
    """A delivery to a mailbox: counted the first time only (redeliveries find it there), with its AppRec and,
    when the receiver got it unchecked, why."""
    if first:
        MESSAGES_DELIVERED.labels(service).inc()
        if apprec_status is not None:
            APPRECS.labels(service, apprec_status).inc()
        if unchecked_reason is not None:
            DELIVERIES_UNCHECKED.labels(unchecked_reason.removeprefix("unchecked_"), kind or UNKNOWN_KIND).inc()


# A scrape waits this long for the samplers; one that is slower (a broker or database away) is left out.
SAMPLE_TIMEOUT_S = 5.0


class Sampler(Collector):
    """Series computed when /metrics is scraped: `render` awaits `sample` for fresh families, then the registry
    collects them. A sample that fails or times out leaves the series out of that scrape (a stale value would
    look like a healthy one)."""

    def __init__(self, name: str, sample: Callable[[], Awaitable[Sequence[Metric]]]) -> None:
        self.name = name
        self._sample = sample
        self._families: Sequence[Metric] = ()

    async def refresh(self) -> None:
        try:
            self._families = await asyncio.wait_for(self._sample(), SAMPLE_TIMEOUT_S)
        except Exception as exc:  # the scrape still answers, without this sampler's series
            self._families = ()
            log.warning("metrics sample failed", sampler=self.name, error=repr(exc))

    def collect(self) -> Iterator[Metric]:
        yield from self._families

    def describe(self) -> Iterator[Metric]:
        return iter(())  # unknown until sampled: nothing to check for clashes at registration


_samplers: list[Sampler] = []


def add_sampler(sampler: Sampler) -> Callable[[], None]:
    """Register a sampler; returns the function that takes it away again (when its process part closes)."""
    REGISTRY.register(sampler)
    _samplers.append(sampler)

    def remove() -> None:
        _samplers.remove(sampler)
        REGISTRY.unregister(sampler)

    return remove


async def render() -> bytes:
    """The exposition text of every series, the sampled ones fresh."""
    await asyncio.gather(*(sampler.refresh() for sampler in list(_samplers)))
    return generate_latest(REGISTRY)
