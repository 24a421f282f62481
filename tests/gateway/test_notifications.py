"""Notifications as NHN's v3 documents them: the list from an offset, and the server-sent event stream on a real
socket (its framing, resuming after Last-Event-ID, and heartbeats while nothing happens)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from edi.auth.dev import DevIssuer
from edi.services.gateway.app import create_app
from tests.gateway.conftest import API_HEADERS, Caller, dev_settings
from tests.gateway.documents import dialogmelding
from tests.gateway.live import serve
from tests.gateway.memory import InMemoryMessaging
from tests.gateway.test_contract import post_body
from tests.gateway.test_errors import assert_error

SENDER, RECEIVER = 111, 222


async def test_the_list_pages_by_offset_and_checks_its_parameters(caller: Caller) -> None:
    sender, receiver = caller(SENDER), caller(RECEIVER)
    ids = [(await sender.post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER)))).json() for _ in range(3)]
    first = (await receiver.get("/notifications", params={"HerIds": RECEIVER, "NotificationsToFetch": 2})).json()
    assert [n["relatedMessageId"] for n in first["notifications"]] == ids[:2]
    notification = first["notifications"][0]
    assert set(notification) == {
        "id", "relatedMessageId", "type", "notificationReceiverHerId", "notificationTriggeredByHerId", "description",
        "createdAt", "offset",
    }
    assert (notification["type"], notification["notificationReceiverHerId"]) == ("NewMessage", RECEIVER)
    assert notification["notificationTriggeredByHerId"] == SENDER
    rest = (await receiver.get("/notifications", params={
        "HerIds": RECEIVER, "offset": first["notifications"][-1]["offset"],  # any case, as ASP.NET
    })).json()
    assert [n["relatedMessageId"] for n in rest["notifications"]] == ids[2:]
    for params in ({}, {"HerIds": RECEIVER, "NotificationsToFetch": 1001}, {"HerIds": RECEIVER, "Offset": -1},
                   {"HerIds": "x"}):
        assert_error(await receiver.get("/notifications", params=params), 400, 1000)
    v3 = await receiver.get("/notifications", params={"HerIds": RECEIVER}, headers={"api-version": "3"})
    assert v3.status_code == 200


async def test_the_stream_frames_events_and_resumes_after_last_event_id(
    tmp_path: Path, messaging: InMemoryMessaging,
) -> None:
    app = create_app(messaging, dev_settings(tmp_path, sse_heartbeat_seconds=0.2))
    issuer = DevIssuer.load_or_create(tmp_path)
    headers: dict[str, Any] = {**API_HEADERS}
    token = {her_id: issuer.issue([her_id], audience="nhn:msh", scope="nhn:msh/api") for her_id in (SENDER, RECEIVER)}
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, headers=headers) as http:

        async def post() -> str:
            response = await http.post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER)),
                                       headers={"Authorization": f"Bearer {token[SENDER]}"})
            return str(response.json())

        first, second = await post(), await post()
        offsets = [n["offset"] for n in (await http.get(
            "/notifications", params={"HerIds": RECEIVER}, headers={"Authorization": f"Bearer {token[RECEIVER]}"},
        )).json()["notifications"]]
        stream_headers = {"Authorization": f"Bearer {token[RECEIVER]}", "Last-Event-ID": str(offsets[0])}
        lines: list[str] = []
        async with http.stream("GET", "/notifications/stream", params={"HerIds": RECEIVER},
                               headers=stream_headers) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")

            received = stream.aiter_lines()

            async def read_until(predicate: Any) -> None:
                while not predicate():
                    lines.append(await anext(received))

            async with asyncio.timeout(10):
                await read_until(lambda: any(line.startswith("data:") for line in lines))
                third = await post()
                await read_until(lambda: sum(line.startswith("data:") for line in lines) == 2)
                await read_until(lambda: ": keep-alive" in lines)
    assert lines[0] == "retry: 3000"
    events = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    ids = [line.removeprefix("id: ") for line in lines if line.startswith("id: ")]
    assert [httpx.Response(200, content=e).json()["relatedMessageId"] for e in events] == [second, third]
    assert ids[0] == str(offsets[1])
    assert first not in "".join(events)  # resumed after Last-Event-ID
