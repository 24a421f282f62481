"""No access across HER-ids: several callers, each holding other HER-ids, against every endpoint.

The message under test goes from SENDER (111) to RECEIVER (222). OUTSIDER (333) holds neither; a caller may name
only HER-ids it holds (else 403, 1202) and touch only messages it sent or that are addressed to it (else 1201).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edi.auth.dev import DevIssuer
from edi.kapabilitetsregister.model import Party
from edi.services.gateway.access import RegistryDirectory
from edi.services.gateway.app import create_app
from tests.gateway.conftest import API_HEADERS, Caller, dev_settings
from tests.gateway.documents import dialogmelding
from tests.gateway.memory import InMemoryMessaging
from tests.gateway.test_contract import post_body
from tests.gateway.test_errors import assert_error

SENDER, RECEIVER, OUTSIDER = 111, 222, 333
CALLERS = {"sender": (SENDER,), "receiver": (RECEIVER,), "outsider": (OUTSIDER,)}
OK = (200, None)
NAMES_HER_ID_NOT_HELD = (403, 1202)
NOT_ITS_MESSAGE = (403, 1201)


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    path: str  # {id}: the message; {other}: a message OUTSIDER sent to itself
    expected: dict[str, tuple[int, int | None]]
    json: Any = None


ROWS = [
    Row("list the receiver's messages", "GET", "/Messages?ReceiverHerIds=222",
        {"sender": NAMES_HER_ID_NOT_HELD, "receiver": OK, "outsider": NAMES_HER_ID_NOT_HELD}),
    Row("list across HER-ids", "GET", "/Messages?ReceiverHerIds=333&ReceiverHerIds=222",
        {"sender": NAMES_HER_ID_NOT_HELD, "receiver": NAMES_HER_ID_NOT_HELD, "outsider": NAMES_HER_ID_NOT_HELD}),
    Row("get the message", "GET", "/Messages/{id}",
        {"sender": OK, "receiver": OK, "outsider": NOT_ITS_MESSAGE}),
    Row("get another's message", "GET", "/Messages/{other}",
        {"sender": NOT_ITS_MESSAGE, "receiver": NOT_ITS_MESSAGE, "outsider": OK}),
    Row("get the business document", "GET", "/Messages/{id}/business-document",
        {"sender": OK, "receiver": OK, "outsider": NOT_ITS_MESSAGE}),
    Row("get the status", "GET", "/Messages/{id}/status",
        {"sender": OK, "receiver": NOT_ITS_MESSAGE, "outsider": NOT_ITS_MESSAGE}),
    Row("get the AppRec info", "GET", "/Messages/{id}/apprec",
        {"sender": OK, "receiver": NOT_ITS_MESSAGE, "outsider": NOT_ITS_MESSAGE}),
    Row("mark read as the receiver", "PUT", "/Messages/{id}/read/222",
        {"sender": NAMES_HER_ID_NOT_HELD, "receiver": (204, None), "outsider": NAMES_HER_ID_NOT_HELD}),
    Row("mark read as oneself", "PUT", "/Messages/{id}/read/{self}",
        {"sender": NOT_ITS_MESSAGE, "receiver": (204, None), "outsider": NOT_ITS_MESSAGE}),
    Row("answer as the receiver", "POST", "/Messages/{id}/apprec/222",
        {"sender": NAMES_HER_ID_NOT_HELD, "receiver": (201, None), "outsider": NAMES_HER_ID_NOT_HELD},
        {"appRecStatus": "Ok"}),
    Row("answer as oneself", "POST", "/Messages/{id}/apprec/{self}",
        {"sender": (403, 1102), "receiver": (201, None), "outsider": (403, 1102)}, {"appRecStatus": "Ok"}),
    Row("send as the sender", "POST", "/Messages",
        {"sender": (201, None), "receiver": NOT_ITS_MESSAGE, "outsider": NOT_ITS_MESSAGE}, "document"),
    Row("notifications of the receiver", "GET", "/notifications?HerIds=222",
        {"sender": NAMES_HER_ID_NOT_HELD, "receiver": OK, "outsider": NAMES_HER_ID_NOT_HELD}),
    # The receiver's own stream stays open: test_notifications opens it on a real socket.
    Row("notification stream of the receiver", "GET", "/notifications/stream?HerIds=222",
        {"sender": NAMES_HER_ID_NOT_HELD, "outsider": NAMES_HER_ID_NOT_HELD}),
]
CASES = [(row, who) for row in ROWS for who in sorted(row.expected)]


@pytest.mark.parametrize(("row", "who"), CASES, ids=[f"{row.name}-{who}" for row, who in CASES])
async def test_matrix(caller: Caller, row: Row, who: str) -> None:
    expected = row.expected[who]
    message_id = (await caller(SENDER).post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER)))).json()
    other_id = (await caller(OUTSIDER).post("/Messages", json=post_body(dialogmelding(OUTSIDER, OUTSIDER)))).json()
    client = caller(*CALLERS[who])
    path = row.path.format(id=message_id, other=other_id, self=CALLERS[who][0])
    json = post_body(dialogmelding(SENDER, RECEIVER)) if row.json == "document" else row.json
    response = await client.request(row.method, path, json=json)
    status, code = expected
    if code is None:
        assert response.status_code == status, response.text
    else:
        assert_error(response, status, code)


async def test_lists_never_show_messages_of_other_her_ids(caller: Caller) -> None:
    await caller(SENDER).post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER)))
    outsider = caller(OUTSIDER)
    assert (await outsider.get("/Messages", params={"ReceiverHerIds": OUTSIDER})).json() == []
    assert (await outsider.get("/notifications", params={"HerIds": OUTSIDER})).json() == {"notifications": []}


async def test_a_caller_holding_several_her_ids_acts_for_each(caller: Caller) -> None:
    message_id = (await caller(SENDER).post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER)))).json()
    both = caller(RECEIVER, OUTSIDER)
    listed = await both.get("/Messages", params={"ReceiverHerIds": [OUTSIDER, RECEIVER]})
    assert [m["id"] for m in listed.json()] == [message_id]
    assert (await both.put(f"/Messages/{message_id}/read/{RECEIVER}")).status_code == 204


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/Messages?ReceiverHerIds=222"), ("POST", "/Messages"), ("GET", "/Messages/{id}"),
    ("GET", "/Messages/{id}/business-document"), ("GET", "/Messages/{id}/status"), ("GET", "/Messages/{id}/apprec"),
    ("PUT", "/Messages/{id}/read/222"), ("POST", "/Messages/{id}/apprec/222"), ("GET", "/notifications?HerIds=222"),
    ("GET", "/notifications/stream?HerIds=222"),
])
async def test_every_endpoint_needs_a_token(caller: Caller, method: str, path: str) -> None:
    message_id = (await caller(SENDER).post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER)))).json()
    response = await caller().request(method, path.format(id=message_id), json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("DPoP ")
    assert response.json()["requestId"] == response.headers["x-request-id"]


class Parties:
    """The registry's parties: organisation 999888777 (HER-id 500) with a service (501) and a person under it
    (502); another organisation's party 222."""

    def __init__(self) -> None:
        self.reads = 0

    async def list_parties(self) -> list[Party]:
        self.reads += 1
        made = {"updated_by": "test", "updated_at": "2025-01-01T00:00:00Z"}
        return [
            Party.model_validate({"her_id": 500, "organisation_number": "999888777", **made}),
            Party.model_validate({"her_id": 501, "parent_her_id": 500, "kind": "service", **made}),
            Party.model_validate({"her_id": 502, "parent_her_id": 501, "kind": "person", **made}),
            Party.model_validate({"her_id": 222, "organisation_number": "111222333", **made}),
        ]


async def test_herid_0_means_every_her_id_of_the_organisation(tmp_path: Path, messaging: InMemoryMessaging) -> None:
    settings = dev_settings(tmp_path)
    parties = Parties()
    app = create_app(messaging, settings, directory=RegistryDirectory(parties))
    issuer = DevIssuer.load_or_create(tmp_path)
    token = issuer.issue(["0"], audience="nhn:msh", scope="nhn:msh/api", organisation="999888777")
    headers = {**API_HEADERS, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g", headers=headers) as org:
        for her_id in (500, 501, 502):
            assert (await org.get("/Messages", params={"ReceiverHerIds": her_id})).status_code == 200
        assert_error(await org.get("/Messages", params={"ReceiverHerIds": 222}), 403, 1202)
        posted = await org.post("/Messages", json=post_body(dialogmelding(502, 222)))
        assert posted.status_code == 201
    assert parties.reads == 1  # the party list is cached


async def test_herid_0_without_the_registry_is_refused(tmp_path: Path, messaging: InMemoryMessaging) -> None:
    app = create_app(messaging, dev_settings(tmp_path))
    token = DevIssuer.load_or_create(tmp_path).issue(
        ["0"], audience="nhn:msh", scope="nhn:msh/api", organisation="999888777",
    )
    headers = {**API_HEADERS, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g", headers=headers) as org:
        assert_error(await org.get("/Messages", params={"ReceiverHerIds": 500}), 403, 1202, "registry")
