"""The client end to end against the gateway: DPoP-bound tokens, the nonce retry, every operation, errors as
ApiError, and the notification stream over a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from edi.auth.dev import DevIssuer
from edi.auth.dpop import generate_key, thumbprint
from edi.client import ApiError, EdiClient
from edi.client.models import AppRecError, AppRecStatus, DeliveryState, Notification, NotificationType, OrderBy
from edi.services.gateway.app import create_app
from edi.services.gateway.settings import GatewaySettings
from tests.gateway.conftest import dev_settings
from tests.gateway.documents import dialogmelding
from tests.gateway.live import serve
from tests.gateway.memory import InMemoryMessaging

SENDER, RECEIVER = 111, 222
BASE_URL = "http://gateway.test"


class CountingTransport(httpx.AsyncBaseTransport):
    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.statuses.append(response.status_code)
        return response


def dpop_client(
    issuer: DevIssuer, settings: GatewaySettings, her_id: int, transport: httpx.AsyncBaseTransport | None,
    base_url: str = BASE_URL,
) -> EdiClient:
    key = generate_key()
    token = issuer.issue(
        [her_id], audience=settings.auth_audience, scope=settings.auth_scope, jkt=thumbprint(key),
    )
    return EdiClient(base_url, token, dpop_key=key, transport=transport)


async def test_sender_and_receiver_with_dpop(app: FastAPI, issuer: DevIssuer, settings: GatewaySettings) -> None:
    transport = httpx.ASGITransport(app=app)
    async with (
        dpop_client(issuer, settings, SENDER, transport) as sender,
        dpop_client(issuer, settings, RECEIVER, transport) as receiver,
    ):
        document = dialogmelding(SENDER, RECEIVER)
        message_id = await sender.post_message(document)
        assert await sender.post_message(document) == message_id  # idempotent

        unread = await receiver.messages([RECEIVER], include_metadata=True, order=OrderBy.DESCENDING)
        assert [(m.id, m.sender_her_id, m.is_app_rec) for m in unread] == [(message_id, SENDER, False)]
        assert (await receiver.message(message_id)).receiver_her_id == RECEIVER
        assert await receiver.business_document(message_id) == document
        await receiver.mark_read(message_id, RECEIVER)
        [status] = await sender.status(message_id)
        assert (status.receiver_her_id, status.transport_delivery_state) == (RECEIVER, DeliveryState.ACKNOWLEDGED)

        apprec_id = await receiver.post_apprec(
            message_id, RECEIVER, AppRecStatus.OK_ERROR_IN_MESSAGE_PART,
            [AppRecError(error_code="E31", details="Pasientens fødselsnummer er feil")],
        )
        [info] = await sender.apprec_info(message_id)
        assert info.app_rec_status is AppRecStatus.OK_ERROR_IN_MESSAGE_PART
        assert [(e.error_code, e.details) for e in info.app_rec_error_list or ()] == [
            ("E31", "Pasientens fødselsnummer er feil"),
        ]
        [apprec] = await sender.messages([SENDER], include_metadata=True)
        assert (apprec.id, apprec.is_app_rec) == (apprec_id, True)
        notifications = await sender.notifications([SENDER])
        assert [n.type for n in notifications] == [
            NotificationType.MESSAGE_SENT_STATE_UPDATED, NotificationType.NEW_MESSAGE,
            NotificationType.MESSAGE_APPREC_INFO_UPDATED,
        ]
        later = await sender.notifications([SENDER], offset=notifications[0].offset)
        assert later == notifications[1:]


async def test_refusals_arrive_as_api_errors_with_nhn_codes(
    app: FastAPI, issuer: DevIssuer, settings: GatewaySettings,
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with dpop_client(issuer, settings, SENDER, transport) as sender:
        with pytest.raises(ApiError) as refused:
            await sender.post_message(dialogmelding(999, RECEIVER))
        assert (refused.value.status, refused.value.code) == (403, 1201)
        with pytest.raises(ApiError) as refused:
            await sender.messages([RECEIVER])
        assert (refused.value.status, refused.value.code) == (403, 1202)
        with pytest.raises(ApiError) as refused:
            await sender.post_message(b'<?xml version="1.0" encoding="UTF-8"?><MsgHead>')
        assert (refused.value.status, refused.value.code) == (400, 1000)
        assert refused.value.error and any(
            e.startswith("T01 ") for e in refused.value.error.validation_errors or ()
        )


async def test_the_client_retries_once_with_the_servers_nonce(tmp_path: Path, messaging: InMemoryMessaging) -> None:
    settings = dev_settings(tmp_path, dpop_require_nonce=True)
    issuer = DevIssuer.load_or_create(tmp_path)
    transport = CountingTransport(create_app(messaging, settings))
    async with dpop_client(issuer, settings, SENDER, transport) as sender:
        await sender.post_message(dialogmelding(SENDER, RECEIVER))
        assert transport.statuses == [401, 201]
        await sender.messages([SENDER])
        assert transport.statuses == [401, 201, 200]  # the nonce is reused while it is valid


async def test_the_stream_delivers_each_step_as_it_happens(
    app: FastAPI, issuer: DevIssuer, settings: GatewaySettings,
) -> None:
    async with (
        serve(app) as base_url, dpop_client(issuer, settings, SENDER, None, base_url) as sender,
        dpop_client(issuer, settings, RECEIVER, None, base_url) as receiver,
    ):
        to_receiver: asyncio.Queue[Notification] = asyncio.Queue()
        to_sender: asyncio.Queue[Notification] = asyncio.Queue()
        tasks = [
            asyncio.create_task(_collect(receiver.stream([RECEIVER]), to_receiver)),
            asyncio.create_task(_collect(sender.stream([SENDER]), to_sender)),
        ]
        try:
            message_id = await sender.post_message(dialogmelding(SENDER, RECEIVER))
            new = await asyncio.wait_for(to_receiver.get(), 10)
            assert (new.type, new.related_message_id, new.notification_triggered_by_her_id) == (
                NotificationType.NEW_MESSAGE, message_id, SENDER,
            )
            await receiver.mark_read(message_id, RECEIVER)
            read = await asyncio.wait_for(to_sender.get(), 10)
            assert (read.type, read.notification_triggered_by_her_id) == (
                NotificationType.MESSAGE_SENT_STATE_UPDATED, RECEIVER,
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _collect(stream: AsyncIterator[Notification], into: asyncio.Queue[Notification]) -> None:
    async for notification in stream:
        await into.put(notification)
