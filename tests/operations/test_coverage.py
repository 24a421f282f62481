"""Deliveries the registry did not check, as operators and vendors see them: the coverage report (`edi ops
coverage`, `kapreg coverage`, /ops/coverage), the metric, the message's history and the receiver's notification,
each naming the kind and why it was not checked."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from edi.cli.kapreg import app as kapreg
from edi.cli.main import app as edi
from edi.services.gateway.app import create_app
from edi.services.gateway.notifications import describe
from edi.services.gateway.settings import Environment, GatewaySettings
from edi.services.operations.service import Operations
from tests.services.conftest import APPRECS, eventually, party, running_backbone, seed_registry
from tests.services.documents import DIALOG_SPEC, RECEIVER, SENDER, dialog
from tests.services.test_end_to_end import unchecked_counts

pytestmark = pytest.mark.parametrize("bus_kind", ["embedded"])
NO_CAPABILITIES = "8143061"  # registered, but with nothing it can receive
TIMER = "Dialogmelding 1.0, DIALOG_INNBYGGER_TIMER"


def citizen_dialog(msg_id: str) -> bytes:
    """The dialogmelding as one of Helsenorge's citizen dialogs: a kind none of the registry's specifications is."""
    return dialog(msg_id).replace(b'<Type V="DIALOG_NOTAT" DN="Notat" />', b'<Type V="DIALOG_INNBYGGER_TIMER" />')


async def run(app: typer.Typer, *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), catch_exceptions=False)


async def test_unchecked_deliveries_are_reported_counted_and_explained(
    installation: dict[str, str], tmp_path: Path,
) -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC), party(SENDER, *APPRECS), party(NO_CAPABILITIES)])
    async with running_backbone() as (backbone, parts):
        store = await parts.store()
        checked = await backbone.submit(dialog(), allowed_sender_her_ids=None)
        timer_msg_id = f"timer-{uuid.uuid4()}"
        ungoverned = await backbone.submit(citizen_dialog(timer_msg_id), allowed_sender_her_ids=None)
        unregistered = await backbone.submit(dialog(receiver=NO_CAPABILITIES), allowed_sender_her_ids=None)
        await eventually(lambda: store.entries(unregistered.message_id), what="the last delivery")
        await eventually(lambda: store.entries(ungoverned.message_id), what="the citizen dialog")

        report = [json.loads(line) for line in (await run(edi, "ops", "coverage", "--json")).stdout.splitlines()]
        assert sorted((e["receiver_her_id"], e["kind"], e["reason"], e["count"]) for e in report) == [
            (RECEIVER, TIMER, "unchecked_not_governed", 1),
            (NO_CAPABILITIES, "Dialogmelding 1.0, DIALOG_NOTAT", "unchecked_no_capabilities", 1),
        ]
        text = (await run(edi, "ops", "coverage")).stdout
        assert f"{RECEIVER}  {TIMER}  1 delivered unchecked" in text and "kind not governed by the registry" in text
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert "none delivered unchecked" in (await run(edi, "ops", "coverage", "--since", later)).stdout
        assert (await run(edi, "ops", "coverage", "--since", "yesterday")).exit_code == 2
        same = [json.loads(line) for line in (await run(kapreg, "coverage", "--json")).stdout.splitlines()]
        assert same == report

        found = (await run(edi, "ops", "find", "--msg-id", timer_msg_id)).stdout
        assert TIMER in found and f"{RECEIVER} unread (unchecked: kind not governed by the registry)" in found
        labels = unchecked_counts()
        assert labels[("not_governed", TIMER)] >= 1
        assert labels[("no_capabilities", "Dialogmelding 1.0, DIALOG_NOTAT")] >= 1
        history = (await run(edi, "ops", "history", str(ungoverned.message_id))).stdout
        assert f"in the mailbox of {RECEIVER} ({TIMER}; capability not checked: kind not governed" in history
        checked_history = (await run(edi, "ops", "history", str(checked.message_id))).stdout
        assert "(Dialogmelding 1.0, DIALOG_NOTAT; capability checked)" in checked_history

        new = [n for n in await store.notifications([RECEIVER]) if n.message_id == ungoverned.message_id]
        assert describe(new[0]) == (
            f"New message received from HER-id {SENDER}. Message: {TIMER}. Delivered without a capability check: "
            "kind not governed by the registry.")

        # Over HTTP: /ops/coverage for operators, and `kapreg coverage --url` reading it.
        settings = GatewaySettings(environment=Environment.DEVELOPMENT, data_dir=tmp_path)
        app = create_app(backbone, settings, operations=Operations(await parts.bus(), store))
        token = ("dev", "token", "--her-id", SENDER, "--data-dir", str(tmp_path))
        operator, user = [(await run(edi, *token, *ops)).stdout.strip() for ops in (["--ops"], [])]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            assert (await client.get("/ops/coverage")).status_code == 401
            assert (await client.get("/ops/coverage", headers={"Authorization": f"Bearer {user}"})).status_code == 403
            served = await client.get("/ops/coverage", headers={"Authorization": f"Bearer {operator}"})
            assert served.status_code == 200 and served.json() == report
