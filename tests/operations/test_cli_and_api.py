"""`edi ops` and the gateway's /ops API as an operator uses them, on one installation: a record the router cannot
read is dead-lettered and parked (and then never offered for re-drive), a refused message is found and its
negative AppRec resent to its sender, a receiver's backlog shows its unread message and its last fetch, and the
audit trail names who did what and why. The API serves operators only."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from edi.adapters.bus import Bus
from edi.auth.dev import DevIssuer
from edi.cli.main import app as edi
from edi.schemas.topics import ACCEPTED
from edi.services.backbone import Backbone
from edi.services.gateway.app import create_app
from edi.services.gateway.settings import Environment, GatewaySettings
from edi.services.operations.models import MessageStatus
from edi.services.operations.service import Operations
from tests.services.conftest import APPRECS, eventually, party, running_backbone, seed_registry
from tests.services.documents import DIALOG_SPEC, RECEIVER, SENDER, dialog

pytestmark = pytest.mark.parametrize("bus_kind", ["embedded"])
UNKNOWN_RECEIVER = "8143099"


async def ops(*args: str) -> Result:
    """`edi ops ...` as a separate command would run (its own event loop, bus and store)."""
    return await asyncio.to_thread(CliRunner().invoke, edi, ["ops", *args], catch_exceptions=False)


@asynccontextmanager
async def running() -> AsyncIterator[tuple[Backbone, Operations, Bus]]:
    """The backbone, and operator tools sharing its bus and store (as the gateway of `edi up` has them)."""
    await seed_registry([party(RECEIVER, DIALOG_SPEC), party(SENDER, *APPRECS)])
    async with running_backbone() as (backbone, parts):
        bus = await parts.bus()
        yield backbone, Operations(bus, await parts.store()), bus


async def test_edi_ops_parks_a_poison_record_resends_a_receipt_and_shows_backlog_and_audit(
    installation: dict[str, str],
) -> None:
    async with running() as (messaging, operations, bus):
        await parks_resends_and_audits(messaging, operations, bus)


async def parks_resends_and_audits(messaging: Backbone, operations: Operations, bus: Bus) -> None:
    poison = await bus.produce(ACCEPTED, b"\x00\x00\x00\x00\x01 not an AcceptedMessage")
    refused_msg_id, waiting_msg_id = f"refused-{uuid.uuid4()}", f"waiting-{uuid.uuid4()}"
    refused = (await messaging.submit(dialog(refused_msg_id, receiver=UNKNOWN_RECEIVER),
                                      allowed_sender_her_ids=None)).message_id
    await messaging.submit(dialog(waiting_msg_id), allowed_sender_her_ids=None)
    receipt = (await eventually(lambda: messaging.unread([SENDER]), what="the negative AppRec"))[0]
    assert await messaging.mark_read(receipt.message_id, SENDER)
    await eventually(lambda: messaging.unread([RECEIVER]), what="the waiting message")

    listed = await eventually(lambda: operations.dead_letters("router"), what="the dead letter")
    offset = listed[0].offset
    result = await ops("dlq", "list", "--json")
    letters = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["service"], d["offset"], d["original_offset"], d["state"]) for d in letters] == [
        ("router", offset, poison.offset, "open")]
    assert letters[0]["reason"].startswith("cannot decode")
    shown = await ops("dlq", "show", "router", str(offset))
    assert f"router@{offset}  open" in shown.stdout and "no message id" in shown.stdout

    parked = await ops("dlq", "park", "router", str(offset), "--reason", "not a message: a test record",
                       "--operator", "kari")
    assert parked.exit_code == 0, parked.output
    assert (await ops("dlq", "list")).stdout.strip() == "no dead letters waiting"
    assert "parked by kari" in (await ops("dlq", "list", "--all")).stdout
    again = await ops("dlq", "redrive", "router", str(offset), "--reason", "try it", "--operator", "ola")
    assert again.exit_code == 1 and "was parked by kari" in again.stderr
    missing = await ops("dlq", "redrive", "router", "999", "--reason", "no such", "--operator", "ola")
    assert missing.exit_code == 1 and "no dead letter at offset 999" in missing.stderr
    unknown = await ops("dlq", "list", "--service", "nosuch")
    assert unknown.exit_code == 2 and "unknown service" in unknown.stderr
    no_reason = await ops("dlq", "park", "router", str(offset), "--reason", " ", "--operator", "ola")
    assert no_reason.exit_code == 2 and "reason is required" in no_reason.stderr

    found = await ops("find", "--msg-id", refused_msg_id, "--json")
    assert [json.loads(line)["message_id"] for line in found.stdout.splitlines()] == [str(refused)]
    history = (await ops("history", str(refused))).stdout
    assert "[refused]" in history and "refused [router]  AppRec E21" in history and "receipt-read" in history
    resent = await ops("resend-receipt", str(refused), "--reason", "the sender lost it", "--operator", "kari")
    assert resent.stdout.strip() == f"resent negative-apprec {receipt.message_id} to {SENDER}"
    assert [e.message_id for e in await messaging.unread([SENDER])] == [receipt.message_id]
    delivered = await ops("resend-receipt", str(uuid.uuid4()), "--reason", "which?", "--operator", "kari")
    assert delivered.exit_code == 1 and "knows no message" in delivered.stderr

    backlog = {row["her_id"]: row for row in map(json.loads, (await ops("backlog", "--json")).stdout.splitlines())}
    assert backlog[RECEIVER]["unread"] == 1 and backlog[RECEIVER]["oldest_unread_age_s"] >= 0
    assert backlog[RECEIVER]["last_fetch_at"] is not None  # the test's own fetches, as a receiver's

    audit = [json.loads(line) for line in (await ops("audit", "--json")).stdout.splitlines()]
    assert [(a["operator"], a["action"], a["target"], a["outcome"].split(":")[0]) for a in audit[1:]] == [
        ("kari", "receipt.resend", str(refused), f"resent negative-apprec {receipt.message_id} to {SENDER}"),
        ("ola", "dlq.redrive", "router@999", "refused"),
        ("ola", "dlq.redrive", f"router@{offset}", "refused"),
        ("kari", "dlq.park", f"router@{offset}", "parked"),
    ]
    assert (audit[0]["action"], audit[0]["outcome"]) == ("receipt.resend", "refused: no such message")
    assert audit[-1]["reason"] == "not a message: a test record"


async def test_the_ops_api_serves_operators_only_and_audits_them_by_their_client(
    installation: dict[str, str], tmp_path: Path,
) -> None:
    async with running() as (messaging, operations, bus):
        await serves_operators_only(messaging, operations, bus, tmp_path)


async def serves_operators_only(messaging: Backbone, operations: Operations, bus: Bus, tmp_path: Path) -> None:
    settings = GatewaySettings(environment=Environment.DEVELOPMENT, data_dir=tmp_path)
    app = create_app(messaging, settings, operations=operations)
    issuer = DevIssuer.load_or_create(tmp_path)
    user = issuer.issue([SENDER], audience=settings.auth_audience, scope=settings.auth_scope)
    operator = issuer.issue([SENDER], audience=settings.auth_audience, scope="edi:ops", subject="ops-console")
    msg_id = f"api-{uuid.uuid4()}"
    refused = (await messaging.submit(dialog(msg_id, receiver=UNKNOWN_RECEIVER),
                                      allowed_sender_her_ids=None)).message_id
    await bus.produce(ACCEPTED, b"\x00\x00\x00\x00\x01 not an AcceptedMessage")
    await eventually(lambda: operations.dead_letters("router"), what="the dead letter")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        assert (await client.get("/ops/dead-letters")).status_code == 401
        forbidden = await client.get("/ops/dead-letters", headers={"Authorization": f"Bearer {user}"})
        assert forbidden.status_code == 403
        as_operator = {"Authorization": f"Bearer {operator}"}
        letters = (await client.get("/ops/dead-letters", headers=as_operator)).json()
        assert [(d["service"], d["state"]) for d in letters] == [("router", "open")]
        path = f"/ops/dead-letters/router/{letters[0]['offset']}"
        assert (await client.get(path, headers=as_operator)).json()["original_topic"] == ACCEPTED
        assert (await client.post(f"{path}/park", json={"reason": ""}, headers=as_operator)).status_code == 400
        parked = await client.post(f"{path}/park", json={"reason": "test record"}, headers=as_operator)
        assert parked.status_code == 200 and parked.json()["state"] == "parked"
        refused_again = await client.post(f"{path}/redrive", json={"reason": "retry"}, headers=as_operator)
        assert refused_again.status_code == 409 and "parked by ops-console" in refused_again.json()["error"]
        assert (await client.get("/ops/dead-letters/router/999", headers=as_operator)).status_code == 404

        await eventually(lambda: operations.find(msg_id=msg_id, status=MessageStatus.REFUSED), what="the refusal")
        found = (await client.get("/ops/find", params={"msgId": msg_id}, headers=as_operator)).json()
        assert [m["message_id"] for m in found] == [str(refused)]
        history = (await client.get(f"/ops/history/{refused}", headers=as_operator)).json()
        assert "refused" in [e["event"] for e in history["events"]]
        assert (await client.get("/ops/backlog", headers=as_operator)).status_code == 200
        audit = (await client.get("/ops/audit", headers=as_operator)).json()
        assert [(a["operator"], a["action"]) for a in audit] == [("ops-console", "dlq.redrive"),
                                                                  ("ops-console", "dlq.park")]
