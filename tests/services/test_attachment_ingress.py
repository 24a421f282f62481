"""Large attachments at ingress and routing, on the embedded bus and on real Kafka: FileReferences a sender wrote
to the object API are checked before a message is accepted; a document written to edi.inbound has its large
attachment moved out by the validator; a receiver that cannot read FileReference is refused, with a negative AppRec
to the sender, when the document with its attachments inline would be more than it may take."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from edi.events import TransportState
from edi.schemas.topics import INBOUND
from edi.services.backbone import Backbone
from edi.services.validator.admission import content_message_id
from tests.services.attachments import (
    BASE_URL,
    BY_REFERENCE,
    FILE_REFERENCE,
    INLINE,
    PARTIES,
    SENDER,
    elements,
    fetched_document,
    gateway,
    post,
    referral,
)
from tests.services.conftest import eventually, running_backbone, seed_registry

pytestmark = pytest.mark.usefixtures("installation")

MESSAGE_LIMIT = 256 * 1024


async def test_file_references_a_sender_wrote_are_checked_before_the_message_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDI_PUBLIC_URL", BASE_URL)
    monkeypatch.setenv("EDI_MAX_MESSAGE_BYTES", str(MESSAGE_LIMIT))  # the message API's limit, not the objects'
    await seed_registry(PARTIES)
    scan = os.urandom(4 * MESSAGE_LIMIT)
    async with running_backbone() as (backbone, _), gateway(backbone, tmp_path / "gateway") as clients:
        sender = clients[SENDER]
        fields = {"SenderHerId": SENDER, "ReceiverHerIds": [BY_REFERENCE]}
        files = {"File": ("scan.pdf", scan, "application/pdf")}
        anonymous = await sender.post("/objects", headers={"Authorization": ""}, data=fields, files=files)
        assert anonymous.status_code == 401
        uploaded = await sender.post("/objects", data=fields, files=files)
        assert uploaded.status_code == 201, uploaded.text
        url = uploaded.json()["url"]
        assert url.startswith(f"{BASE_URL}/objects/")

        not_listed = await post(sender, referral(INLINE, file_reference=url))
        assert not_listed.status_code == 400
        assert f"receiver(s) {INLINE} of the message may not fetch" in not_listed.text
        unknown = await post(sender, referral(BY_REFERENCE, file_reference=f"{BASE_URL}/objects/{'0' * 32}"))
        assert unknown.status_code == 400
        assert "not an object of this service" in unknown.text
        accepted = await post(sender, referral(BY_REFERENCE, file_reference=url))
        assert accepted.status_code == 201, accepted.text

        assert elements(await fetched_document(clients[BY_REFERENCE], BY_REFERENCE), FILE_REFERENCE) == [url]
        fetched = await clients[BY_REFERENCE].get(url)
        assert hashlib.sha256(fetched.content).digest() == hashlib.sha256(scan).digest()


async def test_inbound_documents_are_offloaded_and_an_inline_receiver_too_small_for_them_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDI_PUBLIC_URL", BASE_URL)
    # The attachment (300 KB) is over the offload threshold (256 KB), and inline it is over this limit.
    monkeypatch.setenv("EDI_OBJECT_INLINE_MAX_BYTES", "400000")
    await seed_registry(PARTIES)
    scan = os.urandom(300 * 1024)
    to_url, to_inline = referral(BY_REFERENCE, scan), referral(INLINE, scan)
    async with running_backbone() as (backbone, parts), gateway(backbone, tmp_path / "gateway") as clients:
        bus = await parts.bus()
        for document in (to_url, to_inline):
            await bus.produce(INBOUND, document, key=SENDER.encode())

        [url] = elements(await fetched_document(clients[BY_REFERENCE], BY_REFERENCE), FILE_REFERENCE)
        assert (await clients[BY_REFERENCE].get(url)).content == scan

        refused = content_message_id(to_inline)

        async def rejected() -> bool:
            states = [s.transport_state for s in await backbone.status(refused)]
            return states == [TransportState.REJECTED] and bool(await backbone.refusal(refused))

        await eventually(rejected, what="the inline receiver refused, and the sender told")
        [error] = await backbone.refusal(refused)
        assert error.code == "T99"
        assert await backbone.unread([INLINE]) == []


async def test_the_router_offloads_what_an_accepted_record_still_carries_inline(tmp_path: Path) -> None:
    await seed_registry(PARTIES)
    scan = os.urandom(300 * 1024)
    async with running_backbone() as (backbone, parts):
        # An ingress without an object service writes the attachment inline to edi.accepted.
        plain = Backbone(bus=await parts.bus(), store=await parts.store(), validator=parts.validator())
        submitted = await plain.submit(referral(BY_REFERENCE, scan), allowed_sender_her_ids=frozenset({SENDER}))

        async def delivered() -> bytes | None:
            return await plain.business_document(submitted.message_id, BY_REFERENCE)

        routed = await eventually(delivered, what="the delivery")
        [url] = elements(routed, FILE_REFERENCE)
        # A receiver that reads FileReference gets the document as routed.
        assert await backbone.business_document(submitted.message_id, BY_REFERENCE) == routed
        key = (await parts.attachments()).objects.key_for(url)
        assert key is not None
        assert b"".join([chunk async for chunk in (await parts.attachments()).objects.read(key)]) == scan


async def test_an_object_a_receiver_got_inline_is_confirmed_when_it_marks_the_message_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As DEFT deletes an object once every receiver confirmed its download: a receiver that cannot read
    FileReference never downloads it itself, so marking the message read confirms it on its behalf."""
    monkeypatch.setenv("EDI_PUBLIC_URL", BASE_URL)
    await seed_registry(PARTIES)
    scan = os.urandom(64 * 1024)
    async with running_backbone() as (backbone, _), gateway(backbone, tmp_path / "gateway") as clients:
        sender, inline = clients[SENDER], clients[INLINE]
        uploaded = await sender.post("/objects", data={"SenderHerId": SENDER, "ReceiverHerIds": [INLINE]},
                                     files={"File": ("scan.pdf", scan, "application/pdf")})
        assert uploaded.status_code == 201, uploaded.text
        url = uploaded.json()["url"]
        accepted = await post(sender, referral(INLINE, file_reference=url))
        assert accepted.status_code == 201, accepted.text

        document = await fetched_document(inline, INLINE)
        assert elements(document, FILE_REFERENCE) == []  # it got the scan inline
        assert (await sender.get(f"{url}/download-status")).json()["receivers"][0]["downloadConfirmed"] is False
        [message] = (await inline.get("/Messages", params={"ReceiverHerIds": INLINE})).json()
        marked = await inline.put(f"/Messages/{message['id']}/read/{INLINE}")
        assert marked.status_code == 204, marked.text

        status = (await sender.get(f"{url}/download-status")).json()
        assert status["receivers"][0]["downloadConfirmed"] is True
        assert (status["state"], status["deletedReason"]) == ("deleted", "confirmed")  # every receiver has it
        # Fetched again after that, the document cannot have its attachment inline: a clear 404, not a 500.
        again = await inline.get(f"/Messages/{message['id']}/business-document")
        assert again.status_code == 404, again.text
        assert "cannot be put back inline" in again.json()["error"]
        assert "every receiver has confirmed its download" in again.json()["error"]
