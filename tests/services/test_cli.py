"""`edi up`, `edi send` and `edi inbox` as a newcomer uses them: the backbone started on a fresh data directory
with demo parties, a sample pushed through it and seen arriving, another refused with the reason, `kapreg` on
the same directory, the HTTP API answering, and Ctrl-C (SIGINT) stopping it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from edi.auth.dev import DevIssuer
from edi.client import EdiClient
from edi.services.gateway.settings import TokenSettings
from tests.cli.test_edi_schemas import partial_standards, unwrapped
from tests.services.conftest import APPRECS, party, seed_registry
from tests.services.documents import DIALOG, DIALOG_SPEC, RECEIVER, SENDER
from tests.services.processes import ServiceProcess
from tests.shared_samples import SAMPLES

BIN = Path(sys.executable).parent
INVALID = SAMPLES / "dialogmelding/navikt-padm2/dialogmelding_dialog_notat.xml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def command(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, output.decode()


@pytest.mark.parametrize("bus_kind", ["embedded"])
async def test_edi_up_then_send_and_inbox_show_a_sample_arriving_and_another_refused(
    installation: dict[str, str], tmp_path: Path,
) -> None:
    data_dir = tmp_path / "fresh"
    env = {k: v for k, v in os.environ.items() if k != "EDI_DATA_DIR"}  # as a newcomer: --data-dir only
    port = free_port()
    async with edi_up("--data-dir", str(data_dir), "--port", str(port), env=env) as banner:
        assert f"data directory  {data_dir.resolve()}" in banner
        assert "demo parties imported" in banner and f"http://127.0.0.1:{port}" in banner

        code, sent = await command(str(BIN / "edi"), "send", "--data-dir", str(data_dir), str(DIALOG), env=env)
        assert code == 0, sent
        assert "✓ accepted" in sent
        assert f"receiver {RECEIVER}: Unconfirmed (in its mailbox; Dialogmelding 1.0, DIALOG_NOTAT)" in sent

        code, listed = await command(str(BIN / "edi"), "inbox", "--data-dir", str(data_dir), "--her-id", RECEIVER,
                                     "--json", env=env)
        assert code == 0, listed
        [entry] = [json.loads(line) for line in listed.splitlines() if line.startswith("{")]
        assert entry["what"] == "Dialogmelding 1.0, DIALOG_NOTAT"

        code, refused = await command(str(BIN / "edi"), "send", "--data-dir", str(data_dir), "--json", str(INVALID),
                                      env=env)
        assert code == 1
        [result] = [json.loads(line) for line in refused.splitlines() if line.startswith("{")]
        assert result["refused"]["kind"] == "invalid_document"
        assert {e["apprec_code"] for e in result["refused"]["errors"]} == {"T02"}

        code, parties = await command(str(BIN / "kapreg"), "parties", "show", RECEIVER, "--json",
                                      env={**env, "EDI_DATA_DIR": str(data_dir)})
        assert code == 0 and json.loads(parties)["party"]["herId"] == int(RECEIVER), parties

        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/Messages", params={"receiverHerIds": RECEIVER})
        assert answer.status_code == 401  # the API is up and wants a token


@contextlib.asynccontextmanager
async def edi_up(*args: str, env: dict[str, str]) -> AsyncIterator[str]:
    """`edi up` with these arguments, running until the block ends: its banner, up to "Try it"; then Ctrl-C
    (SIGINT) stops it."""
    up = await asyncio.create_subprocess_exec(
        str(BIN / "edi"), "up", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert up.stdout is not None
        banner = ""
        while "Try it" not in banner:
            line = await asyncio.wait_for(up.stdout.readline(), 60)
            assert line, f"edi up ended early:\n{banner}"
            banner += line.decode()
        yield banner
    finally:
        up.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(up.wait(), 30)
    assert code in (0, -signal.SIGINT, 130)


@pytest.mark.parametrize("bus_kind", ["embedded"])
async def test_edi_up_says_what_each_schema_set_validates_and_what_is_not_validated(
    installation: dict[str, str], tmp_path: Path,
) -> None:
    partial = partial_standards(tmp_path)  # the published set without PLO, MsgHead, AppRec and Dialogmelding
    env = {k: v for k, v in os.environ.items() if k not in ("EDI_DATA_DIR", "EDI_SCHEMA_DIRS")}
    port = free_port()
    args = ("--data-dir", str(tmp_path / "data"), "--port", str(port), "--schemas", str(partial))
    async with edi_up(*args, env=env) as banner, httpx.AsyncClient() as client:
        for _ in range(150):  # the banner comes just before the HTTP API listens
            with contextlib.suppress(httpx.TransportError):
                ready = (await client.get(f"http://127.0.0.1:{port}/readyz")).json()
                break
            await asyncio.sleep(0.2)
    schemas = unwrapped(banner[banner.index("Schemas:"):banner.index("Try it")].splitlines())
    assert "  validated by built-in schemas: MsgHead 1.2, AppRec 1.0/1.1" in schemas
    assert f"  validated by {partial}: Svarrapport 1.2/1.3/1.4, Epikrise 1.0/1.1/1.2, Henvisning 1.0/1.1/2.0" in (
        schemas)
    not_validated = schemas[schemas.index("  not validated (no schema installed): PLO "):]
    assert "PLO Pasientlogistikk 1.5/1.6" in not_validated and "Henvisning" not in not_validated
    assert "accepted with a warning (EDI-SCH-002)" in not_validated and "--schemas DIR or EDI_SCHEMA_DIRS" in (
        not_validated)
    # The same, as the structured log line at start, and in /readyz's details (still ready).
    assert "standards not validated: no schema installed" in banner and "PLO Pasientlogistikk 1.6" in banner
    assert "PLO Pasientlogistikk 1.5/1.6" in ready["details"]["schemas"]


@pytest.mark.parametrize("bus_kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def test_the_gateway_runs_as_a_process_of_its_own_beside_the_services(
    installation: dict[str, str], bus_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As a deployment runs it: `edi run gateway` in one process, the services in another; a message sent
    through the gateway reaches its receiver's mailbox."""
    await seed_registry([party(RECEIVER, DIALOG_SPEC), party(SENDER, *APPRECS)])
    port = free_port()
    monkeypatch.setenv("EDI_ENVIRONMENT", "development")
    monkeypatch.setenv("EDI_HTTP_PORT", str(port))
    monkeypatch.setenv("EDI_HTTP_HOST", "127.0.0.1")
    monkeypatch.setenv("EDI_PUBLIC_URL", f"http://127.0.0.1:{port}")
    services = ServiceProcess(["registry-relay", "validator", "router", "mailbox", "status", "receipts"], tmp_path)
    gateway = ServiceProcess(["gateway"], tmp_path)
    try:
        await services.start()
        await gateway.start()
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                assert gateway.alive(), gateway.tail()
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        issuer = DevIssuer.load_or_create(Path(installation["EDI_DATA_DIR"]))
        settings = TokenSettings()
        base_url = f"http://127.0.0.1:{port}"
        async with EdiClient(base_url, issuer.issue([SENDER], audience=settings.auth_audience,
                                                    scope=settings.auth_scope)) as sender:
            message_id = await sender.post_message(DIALOG.read_bytes())
        async with EdiClient(base_url, issuer.issue([RECEIVER], audience=settings.auth_audience,
                                                    scope=settings.auth_scope)) as receiver:
            for _ in range(150):
                if [m.id for m in await receiver.messages([int(RECEIVER)])] == [message_id]:
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail(f"message {message_id} did not reach {RECEIVER}:\n{gateway.tail()}\n{services.tail()}")
    finally:
        await gateway.stop()
        await services.stop()
