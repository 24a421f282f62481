"""OpenTelemetry tracing: optional (the `tracing` extra), and off unless EDI_TRACING=true.

One trace follows a message from the HTTP POST (or the record on edi.inbound) through every service to the
receiver's fetch. Between services the trace travels in the W3C `traceparent` header the records already carry
(`edi.events.headers.Correlation`): each service's handling of a record is a span whose parent is the header's,
and the records it produces name that span as theirs. Without OpenTelemetry installed, or with tracing off, every
function here does nothing and the headers keep working as before (a fresh span id per hop, no spans recorded).

This module is the only one that imports OpenTelemetry.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import structlog
from pydantic_settings import BaseSettings, SettingsConfigDict

from edi.adapters.bus import Record
from edi.events.headers import TRACEPARENT, Correlation

try:
    from opentelemetry import trace
    from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _INSTALLED = True
except ImportError:  # without the `tracing` extra
    _INSTALLED = False

log = structlog.get_logger(__name__)

# How many delivered messages' trace context a process keeps, so that a fetch joins the message's trace.
TRACE_INDEX_SIZE = 10_000


class TracingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    tracing: bool = False
    # Where spans go when nothing else (e.g. `opentelemetry-instrument`) has set up a tracer provider: OTLP over
    # HTTP (needs opentelemetry-exporter-otlp-proto-http; OTEL_EXPORTER_OTLP_ENDPOINT says where), or stdout.
    tracing_exporter: Literal["otlp", "console"] = "otlp"


_tracer: Tracer | None = None
_delivered: OrderedDict[str, str] = OrderedDict()  # message id: traceparent of its delivery to the mailbox


def configure_tracing(settings: TracingSettings | None = None) -> bool:
    """Turn tracing on if the settings say so and OpenTelemetry is installed; True when it is on."""
    settings = settings or TracingSettings()
    if not settings.tracing:
        return False
    if not _INSTALLED:
        log.warning("EDI_TRACING is on but OpenTelemetry is not installed (the 'tracing' extra): no traces")
        return False
    provider = trace.get_tracer_provider()
    if not hasattr(provider, "add_span_processor"):  # the API's no-op default: set up the SDK's own
        sdk_provider = _sdk_provider(settings.tracing_exporter)
        if sdk_provider is None:
            return False
        trace.set_tracer_provider(sdk_provider)
        provider = sdk_provider
    enable(provider)
    return True


def _sdk_provider(exporter: str) -> TracerProvider | None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            log.error("EDI_TRACING_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http: no traces")
            return None
        span_exporter = OTLPSpanExporter()
    provider = SdkTracerProvider(resource=Resource.create({"service.name": "edi-backbone"}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return provider


def enable(provider: TracerProvider) -> None:
    """Trace with this provider (tests give one with an in-memory exporter)."""
    global _tracer
    _tracer = provider.get_tracer("edi")


def disable() -> None:
    global _tracer
    _tracer = None
    _delivered.clear()


@dataclasses.dataclass(frozen=True, slots=True)
class _SpanCorrelation(Correlation):
    """A correlation whose traceparent names a recorded span: the records produced while handling a record name
    that span as their parent, instead of a fresh span id that no exporter would ever see."""

    def child(self, **changes: str | None) -> Correlation:
        return dataclasses.replace(self, **changes)


def _traceparent(span: Span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _parent(traceparent: str | None) -> Any:
    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent} if traceparent else {})


@contextmanager
def handling(service: str, record: Record, correlation: Correlation) -> Iterator[Correlation]:
    """A span for a service handling a record, in the trace of the record's traceparent; yields the correlation
    to hand the handler (its children are in this span)."""
    if _tracer is None:
        yield correlation
        return
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka", "messaging.destination.name": record.topic,
        "messaging.kafka.destination.partition": record.partition, "messaging.kafka.message.offset": record.offset,
        "messaging.consumer.group.name": service, **_ids(correlation),
    }
    with _tracer.start_as_current_span(f"{service} {record.topic}", context=_parent(correlation.traceparent),
                                       kind=SpanKind.CONSUMER, attributes=attributes) as span:
        fields = {f.name: getattr(correlation, f.name) for f in dataclasses.fields(correlation)}
        yield _SpanCorrelation(**{**fields, "traceparent": _traceparent(span)})


@contextmanager
def serving(method: str, route: str, headers: Mapping[str, str], message_id: str | None) -> Iterator[Any]:
    """A span for an HTTP request: in the trace of the message it is about when this process delivered it
    (the receiver's fetch, mark-read and AppRec), else in the caller's trace (its traceparent) or a new one.
    Yields the span, or None when tracing is off."""
    if _tracer is None:
        yield None
        return
    parent = _delivered.get(message_id) if message_id else None
    context = _parent(parent or headers.get(TRACEPARENT))
    with _tracer.start_as_current_span(f"{method} {route}", context=context, kind=SpanKind.SERVER, attributes={
        "http.request.method": method, "http.route": route, **({"edi.message_id": message_id} if message_id else {}),
    }) as span:
        yield span


def current_traceparent() -> str | None:
    """The traceparent of the span in progress, for a record produced outside the runtime (the gateway's
    submit); None when tracing is off or no span is in progress."""
    if _tracer is None:
        return None
    span = trace.get_current_span()
    return _traceparent(span) if span.get_span_context().is_valid else None


def remember_delivery(message_id: str, correlation: Correlation) -> None:
    """Note the trace a message was delivered in, so that its receiver's fetch joins it (in this process)."""
    if _tracer is None or correlation.traceparent is None:
        return
    _delivered[message_id] = correlation.traceparent
    _delivered.move_to_end(message_id)
    while len(_delivered) > TRACE_INDEX_SIZE:
        _delivered.popitem(last=False)


def _ids(correlation: Correlation) -> dict[str, str]:
    return {f"edi.{name}": value for name, value in correlation.log_context().items() if name != "traceparent"}
