"""The registry API, and `kapreg --url` against it over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from edi.kapabilitetsregister.api import create_app
from edi.kapabilitetsregister.changes import ChangeRecord
from edi.kapabilitetsregister.settings import RegistrySettings
from edi.kapabilitetsregister.specifications import default_catalogue
from edi.kapabilitetsregister.view import CapabilityPolicy, RegistryView
from tests.kapabilitetsregister.conftest import EXAMPLE_HER_ID, EXAMPLE_PARTY, Kapreg
from tests.shared_samples import SAMPLES

HELSEFAGLIG_DIALOG = SAMPLES / "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml"
# Helsenorge's citizen dialogs: a kind of message none of the registry's specifications is.
CITIZEN_DIALOGS = ("dialogmelding/sarepta-eksempel/DigitalDialogImplementasjonsguideStandarder/"
                   "SystemdokumentasjonKommunikasjonsprosesser-verifiserbare/DIALOG_INNBYGGER_EKONTAKT/1.2")
TOKEN = "s3cret-operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Operator": "alice"}


def _settings(database_url: str, token: str | None = TOKEN, *, check_sender: bool = False) -> RegistrySettings:
    return RegistrySettings(registry_database_url=database_url, registry_check_sender_produce=check_sender,
                            registry_operator_token=None if token is None else SecretStr(token))


@contextmanager
def served(settings: RegistrySettings) -> Iterator[str]:
    """The registry API served by uvicorn on a free 127.0.0.1 port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the registry API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def api(database_url: str) -> Iterator[httpx.Client]:
    with served(_settings(database_url)) as url, httpx.Client(base_url=url) as client:
        yield client


def test_capability_lookup_after_an_authenticated_import(api: httpx.Client) -> None:
    imported = api.post("/import", content=EXAMPLE_PARTY.read_bytes(), headers=AUTH)
    assert imported.status_code == 200 and len(imported.json()["changes"]) == 30
    answer = api.get(f"/capabilities/{EXAMPLE_HER_ID}").json()
    assert sorted(answer["supported"]) == sorted(json.loads(EXAMPLE_PARTY.read_text())["supported"])
    assert answer["party"]["sourceSystem"] == "Samsvarstest, Dev" and answer["inheritedFrom"] is None
    assert api.post("/import?dryRun=true", content=EXAMPLE_PARTY.read_bytes(), headers=AUTH).json()["changes"] == []


def test_writes_need_the_operator_token(api: httpx.Client, database_url: str) -> None:
    api.post("/import", content=EXAMPLE_PARTY.read_bytes(), headers=AUTH)
    path = f"/parties/{EXAMPLE_HER_ID}/capabilities/16/Consume"
    assert api.delete(path).status_code == 401
    assert api.delete(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.get(f"/capabilities/{EXAMPLE_HER_ID}").json()["supported"].count(
        "ConsumeDialogmeldingHelsefagligDialog1.1") == 1

    revoked = api.delete(path, headers=AUTH)
    assert revoked.status_code == 200 and revoked.json()[0]["actor"] == "alice (api)"
    with served(_settings(database_url, token=None)) as url, httpx.Client(base_url=url) as closed:
        refused = closed.put(path, headers=AUTH)
        assert refused.status_code == 403 and "EDI_REGISTRY_OPERATOR_TOKEN" in refused.json()["detail"]


def test_check_overrides_and_errors(api: httpx.Client) -> None:
    api.post("/import", content=EXAMPLE_PARTY.read_bytes(), headers=AUTH)
    allowed = api.get("/check", params={"receiver": EXAMPLE_HER_ID, "spec": "DialogmeldingHelsefagligDialog1.1"})
    assert allowed.json()["allowed"] is True and allowed.json()["receiver"]["outcome"] == "allowed"

    api.put(f"/parties/{EXAMPLE_HER_ID}/overrides/16", json={"effect": "deny", "reason": "fault 42"}, headers=AUTH)
    denied = api.get("/check", params={"receiver": EXAMPLE_HER_ID, "spec": 16, "sender": EXAMPLE_HER_ID}).json()
    assert denied["allowed"] is False and denied["receiver"]["outcome"] == "denied_by_override"
    assert denied["sender"]["reason"].endswith("operator override: fault 42")

    assert api.get("/capabilities/81-38").json() == {
        "code": "invalid_her_id",
        "detail": "malformed HER-id '81-38': a HER-id is a positive whole number (e.g. 8138082)",
    }
    assert api.get("/capabilities/424242").status_code == 404
    unknown = api.get("/check", params={"receiver": 1, "spec": "Epikrise 9.9"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_specification"


def test_check_a_message_for_its_receivers_and_per_deployment_its_sender(database_url: str) -> None:
    message = HELSEFAGLIG_DIALOG.read_bytes()  # from HER-id 258521 to 90998
    parties = json.dumps([
        {"herId": 90998, "supported": ["ConsumeDialogmeldingHelsefagligDialog1.1"]},
        {"herId": 258521, "supported": ["ConsumeDialogmeldingHelsefagligDialog1.1"]},
    ])
    with served(_settings(database_url)) as url, httpx.Client(base_url=url) as api:
        api.post("/import", content=parties, headers=AUTH)
        answer = api.post("/check/message", content=message).json()
        assert answer["allowed"] is True and answer["specificationId"] == 16
        assert [r["receiver"]["herId"] for r in answer["results"]] == [90998]
        assert answer["results"][0]["sender"] is None
        other = api.post("/check/message", params={"receiver": 258521}, content=message).json()
        assert other["results"][0]["receiver"]["herId"] == 258521
        refused = api.post("/check/message", content=b"<not-a-message/>")
        assert refused.status_code == 422 and "has no routing header" in refused.json()["detail"]
    # The sender check follows the policy too: under `registered` a sender that has registered nothing it sends
    # is not checked; under `strict` it must Produce the specification.
    with served(_settings(database_url, check_sender=True)) as url, httpx.Client(base_url=url) as api:
        answer = api.post("/check/message", content=message).json()
        assert answer["allowed"] is True
        assert answer["results"][0]["sender"]["outcome"] == "unchecked_no_capabilities"
    strict = _settings(database_url, check_sender=True).model_copy(
        update={"capability_policy": CapabilityPolicy.STRICT})
    with served(strict) as url, httpx.Client(base_url=url) as api:
        answer = api.post("/check/message", content=message).json()
        assert answer["allowed"] is False
        assert answer["results"][0]["sender"]["reason"] == (
            "HER-id 258521 has no Produce capability for Dialogmelding 1.1, Helsefaglig dialog "
            "(ProduceDialogmeldingHelsefagligDialog1.1)")


def test_the_api_applies_the_deployments_capability_policy(database_url: str) -> None:
    citizen = next((SAMPLES / CITIZEN_DIALOGS).glob("*.xml"))
    parties = json.dumps([{"herId": 90998, "supported": ["ConsumeEpikrise1.2"]}, {"herId": 90999}])
    with served(_settings(database_url)) as url, httpx.Client(base_url=url) as api:
        api.post("/import", content=parties, headers=AUTH)
        # registered (the default): what the registry knows is enforced, the rest delivered and said so.
        lacks = api.get("/check", params={"receiver": 90998, "spec": 16}).json()
        assert lacks["allowed"] is False and lacks["receiver"]["reason"].endswith("it can receive: ConsumeEpikrise1.2")
        nothing = api.get("/check", params={"receiver": 90999, "spec": 16}).json()
        assert nothing["allowed"] is True and nothing["receiver"]["outcome"] == "unchecked_no_capabilities"
        ungoverned = api.get("/check", params={"receiver": 90998, "kind": "Dialogmelding 1.1, X"}).json()
        assert ungoverned["receiver"]["outcome"] == "unchecked_not_governed"
        unknown = api.get("/check", params={"receiver": 424242, "kind": "Dialogmelding 1.1, X"}).json()
        assert unknown["allowed"] is False and unknown["receiver"]["outcome"] == "unknown_party"
        neither = api.get("/check", params={"receiver": 90998, "specification": 16})  # a misspelt parameter
        assert neither.status_code == 422 and "give spec" in neither.json()["detail"]
        answer = api.post("/check/message", params={"receiver": 90998}, content=citizen.read_bytes()).json()
        assert answer["kind"] == "Dialogmelding 1.1, DIALOG_INNBYGGER_EKONTAKT" and answer["governed"] is False
        assert answer["allowed"] is True and answer["specificationId"] is None
    strict = _settings(database_url).model_copy(update={"capability_policy": CapabilityPolicy.STRICT})
    with served(strict) as url, httpx.Client(base_url=url) as api:
        answer = api.post("/check/message", params={"receiver": 90998}, content=citizen.read_bytes()).json()
        assert answer["allowed"] is False
        assert answer["results"][0]["receiver"]["outcome"] == "unrecognised_message"
        assert api.get("/check", params={"receiver": 90999, "spec": 16}).json()["allowed"] is False


def test_specifications_parties_export_and_the_change_stream(api: httpx.Client) -> None:
    assert len(api.get("/specifications").json()) == 27
    assert api.get("/specifications/Epikrise1.2").json()["id"] == 1
    api.post("/import", content=EXAMPLE_PARTY.read_bytes(), headers=AUTH)
    assert [p["herId"] for p in api.get("/parties", params={"search": "samsvarstest"}).json()] == [EXAMPLE_HER_ID]
    assert api.get("/export").json()["parties"][0]["herId"] == EXAMPLE_HER_ID

    stream = [ChangeRecord.model_validate(r) for r in api.get("/changes", params={"after": 10}).json()]
    assert [r.seq for r in stream] == list(range(11, 31))
    view = RegistryView(default_catalogue())
    view.apply_all(ChangeRecord.model_validate(r) for r in api.get("/changes").json())
    assert len(view.own_capabilities(EXAMPLE_HER_ID)) == 29
    assert "/capabilities/{her_id}" in api.get("/openapi.json").json()["paths"]


# --- kapreg --url ------------------------------------------------------------------------------------------------


@pytest.fixture
def remote(kapreg: Kapreg) -> Iterator[Kapreg]:
    """`kapreg --url` against the API over HTTP; the local database setting points nowhere usable."""
    with served(_settings(kapreg.database_url)) as url:
        yield Kapreg(env={**kapreg.env, "EDI_REGISTRY_DATABASE_URL": "sqlite+aiosqlite:////nonexistent/unused.db",
                          "EDI_REGISTRY_URL": url, "EDI_REGISTRY_OPERATOR_TOKEN": TOKEN},
                     database_url=kapreg.database_url)


def test_every_command_against_a_remote_registry(remote: Kapreg, tmp_path: Path) -> None:
    assert len(remote.json("specs", "list")) == 27
    assert remote.json("specs", "show", "16")["capabilityName"] == "DialogmeldingHelsefagligDialog1.1"
    assert "30 change(s) planned" in remote.ok("import", EXAMPLE_PARTY, "--dry-run")
    assert "30 change(s) written" in remote.ok("import", EXAMPLE_PARTY)
    assert "nothing to change" in remote.ok("import", EXAMPLE_PARTY)
    assert [p["herId"] for p in remote.json("parties", "list")] == [EXAMPLE_HER_ID]
    assert [p["herId"] for p in remote.json("parties", "search", "Samsvarstest")] == [EXAMPLE_HER_ID]
    assert len(remote.json("parties", "show", str(EXAMPLE_HER_ID))["supported"]) == 29

    assert remote("check", "--receiver", str(EXAMPLE_HER_ID), "--spec", "16").exit_code == 0
    assert "revoke ConsumeDialogmeldingHelsefagligDialog1.1" in remote.ok(
        "revoke", str(EXAMPLE_HER_ID), "16", "--consume", "--operator", "bob")
    refused = remote("check", "--receiver", str(EXAMPLE_HER_ID), "--spec", "16")
    assert refused.exit_code == 1 and "it supports only" in refused.stdout
    remote.ok("grant", str(EXAMPLE_HER_ID), "16", "--consume", "--operator", "bob")
    remote.ok("override", str(EXAMPLE_HER_ID), "1", "deny", "--reason", "fault 42", "--operator", "bob")
    remote.ok("override", str(EXAMPLE_HER_ID), "1", "clear", "--operator", "bob")
    assert [h["actor"] for h in remote.json("history", str(EXAMPLE_HER_ID))[-4:]] == ["bob (api)"] * 4
    assert json.loads(remote.ok("export"))["parties"][0]["herId"] == EXAMPLE_HER_ID

    unknown = remote("grant", "424242", "1", "--consume")
    assert unknown.exit_code == 2 and "HER-id 424242 is not a registered communication party" in unknown.stderr
    wrong_token = remote("grant", str(EXAMPLE_HER_ID), "1", "--consume", "--token", "wrong")
    assert wrong_token.exit_code == 3 and "a valid operator token is required" in wrong_token.stderr


def test_kapreg_serve_runs_the_api(kapreg: Kapreg) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **{k: v for k, v in kapreg.env.items() if v is not None}}
    program = "from edi.kapabilitetsregister.cli import app; app()"
    command = [sys.executable, "-c", program, "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/specifications", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "kapreg serve did not answer"
                time.sleep(0.2)
        assert answer.status_code == 200 and len(answer.json()) == 27
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_unreachable_remote_registry_exits_4(kapreg: Kapreg) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = kapreg("parties", "list", "--url", f"http://127.0.0.1:{port}")
    assert result.exit_code == 4 and "cannot be reached" in result.stderr
