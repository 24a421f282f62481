"""/metrics after a known run: a message delivered and read, a document refused at the API, a receiver refused by
the router (whose sender gets a negative AppRec), and a record dead-lettered; and /healthz and /readyz of the same
process."""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edi.observability import metrics
from edi.schemas.topics import ACCEPTED
from edi.services.messaging import Refused
from tests.observability.conftest import ops_endpoints
from tests.services.conftest import APPRECS, eventually, party, running_backbone, seed_registry
from tests.services.documents import DIALOG_SPEC, RECEIVER, SENDER, dialog

UNKNOWN_RECEIVER = "8143099"

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Series:
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@pytest.mark.parametrize("bus_kind", ["embedded"])
async def test_metrics_count_a_known_run_and_the_process_is_ready(installation: dict[str, str]) -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC), party(SENDER, *APPRECS)])
    before = parse((await metrics.render()).decode())
    async with running_backbone() as (backbone, parts), ops_endpoints(parts.ops) as client:
        delivered = await backbone.submit(dialog(), allowed_sender_her_ids=None)
        with pytest.raises(Refused):
            await backbone.submit(b"<MsgHead><unclosed></MsgHead>", allowed_sender_her_ids=None)
        refused = await backbone.submit(dialog(receiver=UNKNOWN_RECEIVER), allowed_sender_her_ids=None)
        await (await parts.bus()).produce(ACCEPTED, b"not an AcceptedMessage")
        await eventually(lambda: backbone.unread([RECEIVER]), what="the delivery")
        await eventually(lambda: backbone.unread([SENDER]), what="the negative AppRec")
        assert await backbone.mark_read(delivered.message_id, RECEIVER)

        async def settled() -> Series | None:
            after = await scrape(client)
            lag = [v for (name, _), v in after.items() if name == metrics.CONSUMER_LAG]
            dead = value(after, "edi_dead_letters_total", service="router", topic=ACCEPTED)
            return after if dead - value(before, "edi_dead_letters_total", service="router", topic=ACCEPTED) >= 1 \
                and lag and not any(lag) else None

        after = await eventually(settled, what="the dead letter counted and no consumer lagging")
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("edi_messages_received_total", service="gateway", source="api") == 3
    assert delta("edi_messages_accepted_total", service="gateway", source="api") == 2
    assert delta("edi_messages_refused_total", service="gateway", apprec_code="T01") == 1
    assert delta("edi_messages_refused_total", service="router", apprec_code="E21") == 1
    # The message to its receiver, and the negative AppRec (status 2, rejected) to the refused message's sender.
    assert delta("edi_messages_delivered_total", service="mailbox") == 2
    assert delta("edi_apprecs_total", service="mailbox", status="2") == 1
    assert delta("edi_messages_read_total", service="gateway") == 1
    assert delta("edi_dead_letters_total", service="router", topic=ACCEPTED) == 1
    # The router handled the two accepted messages and the receipt; the undecodable record never reached it.
    assert delta("edi_handler_seconds_count", service="router", route=ACCEPTED) == 3
    assert delta("edi_handler_seconds_count", service="mailbox", route="edi.deliveries") == 2
    assert delta("edi_handler_seconds_sum", service="router", route=ACCEPTED) > 0
    # The backlog: the sender's unread receipt; the receiver has read its message.
    assert value(after, metrics.UNREAD_MESSAGES, receiver_her_id=SENDER) == 1
    assert (metrics.UNREAD_MESSAGES, frozenset({("receiver_her_id", RECEIVER)})) not in after
    assert 0 <= value(after, metrics.OLDEST_UNREAD_AGE, receiver_her_id=SENDER) < 60
    lagging = {dict(labels)["service"] for (name, labels) in after if name == metrics.CONSUMER_LAG}
    assert {"validator", "router", "mailbox", "status", "receipts"} >= lagging >= {"router", "mailbox", "status"}
    assert refused.message_id != delivered.message_id

    assert alive.status_code == 200 and alive.json() == {"status": "alive"}
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert {"bus", "store", "registry", "registry-view", "consumer:router", "consumer:mailbox"} <= set(checks)
    assert set(checks.values()) == {"ok"}


async def test_every_listed_series_is_described_in_the_exposition() -> None:
    text = (await metrics.render()).decode()
    for name in ("edi_messages_received", "edi_messages_accepted", "edi_messages_refused", "edi_messages_delivered",
                 "edi_messages_read", "edi_apprecs", "edi_handler_seconds", "edi_dead_letters",
                 "edi_blob_bytes_stored", "edi_http_requests", "edi_http_request_seconds"):
        assert re.search(rf"^# TYPE {name}(_total)? (counter|histogram)$", text, re.MULTILINE), name
