"""With tracing on, one trace from the sender's HTTP POST through the services to the receiver's fetch, each span
the child of the one before it (linked through the records' traceparent headers); the requests counted by route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from edi.auth.dev import DevIssuer
from edi.kapabilitetsregister.settings import RegistrySettings
from edi.kapabilitetsregister.store import RegistryStore
from edi.observability import metrics, tracing
from edi.services.gateway.access import RegistryDirectory
from edi.services.gateway.app import create_app
from tests.client.test_client import dpop_client
from tests.gateway.conftest import dev_settings
from tests.gateway.documents import SAMPLE_RECEIVER, SAMPLE_SENDER, dialogmelding
from tests.services.conftest import APPRECS, eventually, party, running_backbone, seed_registry
from tests.services.documents import DIALOG_SPEC

SENDER, RECEIVER = int(SAMPLE_SENDER), int(SAMPLE_RECEIVER)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    yield exporter
    tracing.disable()


@pytest.mark.parametrize("bus_kind", ["embedded"])
async def test_one_trace_from_the_post_through_every_service_to_the_fetch(
    installation: dict[str, str], spans: InMemorySpanExporter, tmp_path: Path,
) -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC), party(SENDER, *APPRECS)])
    posts_before = posts()
    settings = dev_settings(tmp_path / "gateway")
    issuer = DevIssuer.load_or_create(settings.data_dir)
    registry = await RegistryStore.open(RegistrySettings().database_url)
    try:
        async with running_backbone() as (backbone, _):
            transport = httpx.ASGITransport(app=create_app(backbone, settings, directory=RegistryDirectory(registry)))
            async with (
                dpop_client(issuer, settings, SENDER, transport) as sender,
                dpop_client(issuer, settings, RECEIVER, transport) as receiver,
            ):
                document = dialogmelding(SENDER, RECEIVER)
                message_id = await sender.post_message(document)

                async def listed() -> bool:
                    return any(m.id == message_id for m in await receiver.messages([RECEIVER]))

                await eventually(listed, what="the message in the receiver's mailbox")
                assert await receiver.business_document(message_id) == document
    finally:
        await registry.close()

    finished = spans.get_finished_spans()
    post = one(finished, "POST /Messages")
    router = one(finished, "router edi.accepted")
    mailbox = one(finished, "mailbox edi.deliveries")
    status = one(finished, "status edi.status")
    fetch = one(finished, "GET /Messages/{id}/business-document")
    trace_id = post.context.trace_id
    assert {s.context.trace_id for s in (router, mailbox, status, fetch)} == {trace_id}
    assert parent(router) == post.context.span_id
    assert parent(mailbox) == router.context.span_id
    assert parent(status) == mailbox.context.span_id
    assert parent(fetch) == mailbox.context.span_id
    assert router.attributes is not None and router.attributes["edi.message_id"] == str(message_id)
    assert fetch.attributes is not None and fetch.attributes["http.response.status_code"] == 200
    # The same requests in the HTTP metrics, by route template.
    assert posts() - posts_before == 1


def posts() -> float:
    labels = {"method": "POST", "route": "/Messages", "status": "201"}
    return metrics.REGISTRY.get_sample_value("edi_http_requests_total", labels) or 0.0


def one(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, sorted({s.name for s in spans}))
    return found[0]


def parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None
