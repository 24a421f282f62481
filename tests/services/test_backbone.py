"""The backbone as the gateway and `edi send`/`edi inbox` use it (the Messaging seam), with every service running:
delivery once per receiver, duplicates, refusals with their AppRec, read marks, receivers' AppRecs, abandonment,
notifications, and a registry change reaching a running router."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edi.core.apprec import AppRecError, AppRecStatus
from edi.events import TransportState
from edi.kapabilitetsregister.model import Direction
from edi.kapabilitetsregister.specifications import default_catalogue
from edi.services.messaging import NotificationKind, RefusalKind, Refused
from edi.services.receipts.service import receipt_id
from edi.services.store import BackboneSettings
from edi.settings import ValidationSettings
from tests.services.conftest import APPRECS, eventually, party, running_backbone, seed_registry
from tests.services.documents import (
    DIALOG_SPEC,
    EPIKRISE_COPY,
    EPIKRISE_RECEIVER,
    EPIKRISE_SENDER,
    EPIKRISE_SPEC,
    RECEIVER,
    SENDER,
    dialog,
    epikrise,
)
from tests.support.postgres import PostgresServer

KAPREG = Path(sys.executable).parent / "kapreg"


async def test_a_message_reaches_its_receiver_once_and_a_resubmission_is_the_same_message(
    installation: dict[str, str],
) -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC), party(SENDER, *APPRECS)])
    document = dialog()
    async with running_backbone() as (backbone, _):
        first = await backbone.submit(document, allowed_sender_her_ids=frozenset({SENDER}))
        again = await backbone.submit(document, allowed_sender_her_ids=frozenset({SENDER}))
        assert not first.duplicate
        assert again.duplicate and again.message_id == first.message_id

        unread = await eventually(lambda: backbone.unread([RECEIVER]), what="the message in the mailbox")
        assert [(e.message_id, e.sender_her_id, e.is_apprec) for e in unread] == [(first.message_id, SENDER, False)]
        assert await backbone.business_document(first.message_id, RECEIVER) == document
        await eventually(lambda: backbone.status(first.message_id), what="the status")
        assert [(s.receiver_her_id, s.transport_state) for s in await backbone.status(first.message_id)] == [
            (RECEIVER, TransportState.UNCONFIRMED)]
        notifications = await backbone.notifications([RECEIVER])
        assert [(n.kind, n.message_id, n.counterpart_her_id) for n in notifications] == [
            (NotificationKind.NEW_MESSAGE, first.message_id, SENDER)]
        await asyncio.sleep(0.5)  # nothing more comes
        assert len(await backbone.unread([RECEIVER])) == 1


async def test_the_same_msgid_with_other_content_is_refused_with_e10(installation: dict[str, str]) -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC)])
    msg_id = str(uuid.uuid4())
    async with running_backbone() as (backbone, _):
        await backbone.submit(dialog(msg_id), allowed_sender_her_ids=None)
        with pytest.raises(Refused) as refused:
            await backbone.submit(dialog(msg_id, note=" Endret."), allowed_sender_her_ids=None)
    assert refused.value.kind is RefusalKind.DUPLICATE_MSGID
    assert [p.apprec_code.value for p in refused.value.problems] == ["E10"]
    assert f"MsgId {msg_id} was already used by sender {SENDER} for a different document" in refused.value.message


async def test_a_sender_the_caller_may_not_send_as_and_receivers_outside_the_document_are_refused(
    installation: dict[str, str],
) -> None:
    async with running_backbone() as (backbone, _):
        with pytest.raises(Refused) as not_theirs:
            await backbone.submit(dialog(), allowed_sender_her_ids=frozenset({"123"}))
        with pytest.raises(Refused) as stranger:
            await backbone.submit(dialog(), allowed_sender_her_ids=None, receiver_subset=["999"])
        with pytest.raises(Refused) as invalid:
            await backbone.submit(b"<MsgHead>", allowed_sender_her_ids=None)
    assert not_theirs.value.kind is RefusalKind.SENDER_NOT_AUTHORISED
    assert stranger.value.kind is RefusalKind.NO_RECEIVERS
    assert invalid.value.kind is RefusalKind.INVALID_DOCUMENT
    assert [p.apprec_code.value for p in invalid.value.problems] == ["T01"]


async def test_an_unknown_copy_receiver_gets_e21_the_others_the_message_and_the_sender_a_negative_apprec(
    installation: dict[str, str],
) -> None:
    # The sender can consume AppRec 1.0 only: its receipt must be 1.0.
    await seed_registry([
        party(EPIKRISE_RECEIVER, EPIKRISE_SPEC), party(EPIKRISE_SENDER, "ConsumeApplikasjonskvittering1.0"),
    ])
    async with running_backbone() as (backbone, _):
        submitted = await backbone.submit(epikrise(), allowed_sender_her_ids=None)
        message_id = submitted.message_id
        receipts = await eventually(lambda: backbone.unread([EPIKRISE_SENDER]), what="the negative AppRec")
        assert await eventually(lambda: backbone.unread([EPIKRISE_RECEIVER]), what="the delivery")

        assert [r.message_id for r in receipts] == [receipt_id(message_id)] and receipts[0].is_apprec
        apprec = await backbone.business_document(receipts[0].message_id, EPIKRISE_SENDER)
        assert apprec is not None
        report = ValidationSettings().validator().validate(apprec)
        assert report.valid is True, report.problems
        assert report.header is not None and report.header.version == "1.0"
        assert report.header.apprec_status is not None and report.header.apprec_status.code == "2"
        assert f"Mottaker {EPIKRISE_COPY} finnes ikke".encode() in apprec and b'V="E21"' in apprec

        async def statuses() -> dict[str, TransportState] | None:
            found = {s.receiver_her_id: s.transport_state for s in await backbone.status(message_id)}
            return found if len(found) == 2 else None

        assert await eventually(statuses) == {
            EPIKRISE_RECEIVER: TransportState.UNCONFIRMED, EPIKRISE_COPY: TransportState.REJECTED}
        kinds = {(n.kind, n.counterpart_her_id) for n in await backbone.notifications([EPIKRISE_SENDER])}
        assert (NotificationKind.REFUSED_MESSAGE, None) in kinds
        assert (NotificationKind.MESSAGE_SENT_STATE_UPDATED, EPIKRISE_COPY) in kinds
        # The backbone's receipt is not the copy receiver's answer: the AppRec status stays unset.
        assert all(info.apprec_status is None for info in await backbone.apprec_info(message_id))
        assert [e.code for e in await backbone.refusal(message_id)] == ["E21"]


async def test_a_receiver_without_the_capability_gets_t10_naming_the_specification_and_what_it_can_receive(
    installation: dict[str, str],
) -> None:
    await seed_registry([party(RECEIVER, "ConsumeEpikrise1.2", "ConsumeHenvisningNyTilstand2.0"),
                         party(SENDER, *APPRECS)])
    async with running_backbone() as (backbone, _):
        submitted = await backbone.submit(dialog(), allowed_sender_her_ids=None)
        reasons = await eventually(lambda: backbone.refusal(submitted.message_id), what="the negative AppRec")
    assert [r.code for r in reasons] == ["T10"]
    text = reasons[0].details or ""
    assert "Dialogmelding 1.0, Forespørsel og svar på forespørsel (ConsumeDialogmeldingForesporselSvar1.0)" in text
    assert text.endswith("it can receive: ConsumeEpikrise1.2, ConsumeHenvisningNyTilstand2.0."), text


async def test_reading_acknowledges_and_the_receivers_apprec_reaches_the_sender(installation: dict[str, str]) -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC, *APPRECS), party(SENDER, *APPRECS)])
    async with running_backbone() as (backbone, _):
        message_id = (await backbone.submit(dialog(), allowed_sender_her_ids=None)).message_id
        await eventually(lambda: backbone.unread([RECEIVER]))
        await eventually(lambda: backbone.status(message_id))
        with pytest.raises(Refused) as outsider:
            await backbone.send_apprec(message_id, "999", AppRecStatus.OK, [])

        assert await backbone.mark_read(message_id, RECEIVER)
        assert not await backbone.mark_read(uuid.uuid4(), RECEIVER)
        assert await backbone.unread([RECEIVER]) == []

        async def acknowledged() -> bool:
            return [s.transport_state for s in await backbone.status(message_id)] == [TransportState.ACKNOWLEDGED]

        await eventually(acknowledged, what="Acknowledged")
        error = AppRecError(code="E31", description="Pasientens fødselsnummer er feil")
        answer = await backbone.send_apprec(message_id, RECEIVER, AppRecStatus.OK_FEIL_I_DELMELDING, [error])

        async def apprec_arrived() -> bool:
            info = await backbone.apprec_info(message_id)
            return bool(info) and info[0].apprec_status is AppRecStatus.OK_FEIL_I_DELMELDING

        await eventually(apprec_arrived, what="the AppRec status")
        [info] = await backbone.apprec_info(message_id)
        assert [(e.code, e.details) for e in info.errors] == [("E31", "Pasientens fødselsnummer er feil")]
        receipts = await eventually(lambda: backbone.unread([SENDER]), what="the AppRec in the sender's mailbox")
        assert [r.message_id for r in receipts] == [answer.message_id]
        with pytest.raises(Refused) as apprec_to_apprec:
            await backbone.send_apprec(answer.message_id, SENDER, AppRecStatus.OK, [])

        kinds = [n.kind for n in await backbone.notifications([SENDER])]
        assert NotificationKind.MESSAGE_SENT_STATE_UPDATED in kinds
        assert NotificationKind.MESSAGE_APPREC_INFO_UPDATED in kinds
        followed = backbone.follow([SENDER])
        assert (await asyncio.wait_for(anext(followed), 5)).offset == min(
            n.offset for n in await backbone.notifications([SENDER]))
    assert outsider.value.kind is RefusalKind.APPREC_FROM_NON_RECEIVER
    assert apprec_to_apprec.value.kind is RefusalKind.APPREC_TO_APPREC


async def test_an_unread_message_is_abandoned_when_its_time_to_live_runs_out(
    installation: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDI_MESSAGE_TTL_S", "1")
    monkeypatch.setenv("EDI_ABANDON_INTERVAL_S", "0.2")
    await seed_registry([party(RECEIVER, DIALOG_SPEC)])
    async with running_backbone() as (backbone, _):
        message_id = (await backbone.submit(dialog(), allowed_sender_her_ids=None)).message_id

        async def abandoned() -> bool:
            return [s.transport_state for s in await backbone.status(message_id)] == [TransportState.ABANDONED]

        await eventually(abandoned, what="Abandoned")
        assert await backbone.unread([RECEIVER]) == []
        assert not await backbone.mark_read(message_id, RECEIVER) or True  # read after abandonment changes nothing
        assert [s.transport_state for s in await backbone.status(message_id)] == [TransportState.ABANDONED]


async def test_a_receiver_with_its_own_kafka_topic_also_gets_its_deliveries_there(installation: dict[str, str]) -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC, deliveryChannel="kafka", kafkaTopic="ks.innboks")])
    async with running_backbone() as (backbone, _):
        document = dialog()
        message_id = (await backbone.submit(document, allowed_sender_her_ids=None)).message_id
        await eventually(lambda: backbone.unread([RECEIVER]))
        bus = BackboneSettings().open_bus()  # the installation's bus, in its namespace
        await bus.start()
        try:
            consumer = await bus.subscribe(f"receiver-{uuid.uuid4().hex[:8]}", ["ks.innboks"])
            records = await eventually(lambda: consumer.poll(max_records=10, timeout_s=0.5), what="the record")
            await consumer.close()
        finally:
            await bus.close()
    assert [r.value for r in records] == [document]
    assert dict(records[0].headers)["edi-message-id"] == str(message_id).encode()


async def test_a_registry_change_made_with_kapreg_reaches_a_running_router_within_a_second(
    installation: dict[str, str],
) -> None:
    """Timed from the registry's commit of the grant to the router's view allowing the delivery; then a message
    proves it."""
    await seed_registry([party(RECEIVER), party(SENDER, *APPRECS)])
    spec = default_catalogue().parse_capability(DIALOG_SPEC)[1]
    async with running_backbone(["router", "registry-relay", "mailbox", "status", "receipts"]) as (backbone, parts):
        view = (await parts.feed()).view
        await eventually(lambda: asyncio.sleep(0, view.party(int(RECEIVER))), what="the router's view")
        command = [str(KAPREG), "grant", RECEIVER, "DialogmeldingForesporselSvar1.0", "--consume"]
        granted = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
        assert granted.returncode == 0, granted.stderr
        returned = time.monotonic()
        while not view.check(int(RECEIVER), spec, Direction.CONSUME, datetime.now(UTC)).allowed:
            assert time.monotonic() - returned < 5, "the grant did not reach the router within 5 s"
            await asyncio.sleep(0.005)
        seen = datetime.now(UTC)
        [capability] = [c for c in view.own_capabilities(int(RECEIVER)) if c.specification_id == spec.id]
        # From the registry's commit of the grant (its registered_at) to the router's view holding it.
        latency = (seen - capability.registered_at).total_seconds()
        print(f"\nregistry change reached the router {latency * 1000:.0f} ms after kapreg committed it "
              f"({(time.monotonic() - returned) * 1000:.0f} ms after kapreg exited; "
              f"{os.environ.get('EDI_BUS', 'embedded')} bus)")
        assert latency < 1.0
        submitted = await backbone.submit(dialog(), allowed_sender_her_ids=None)
        unread = await eventually(lambda: backbone.unread([RECEIVER]))
    assert [e.message_id for e in unread] == [submitted.message_id]


@pytest.mark.postgres
@pytest.mark.parametrize("bus_kind", ["embedded"])
async def test_the_backbone_and_the_registry_run_on_postgresql(
    installation: dict[str, str], postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDI_DATABASE_URL", postgres_server.create_database())
    monkeypatch.setenv("EDI_REGISTRY_DATABASE_URL", postgres_server.create_database())
    await seed_registry([party(EPIKRISE_RECEIVER, EPIKRISE_SPEC), party(EPIKRISE_SENDER, *APPRECS)])
    async with running_backbone() as (backbone, _):
        message_id = (await backbone.submit(epikrise(), allowed_sender_her_ids=None)).message_id
        assert await eventually(lambda: backbone.unread([EPIKRISE_RECEIVER]))
        receipts = await eventually(lambda: backbone.unread([EPIKRISE_SENDER]), what="the negative AppRec")
        assert [r.message_id for r in receipts] == [receipt_id(message_id)]
        assert await backbone.mark_read(message_id, EPIKRISE_RECEIVER)
