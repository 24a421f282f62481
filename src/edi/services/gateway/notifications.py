"""Notifications, as NHN's API v3 has them: `GET /notifications` (from an offset) and `GET /notifications/stream`
(server-sent events), so that no receiver has to poll /Messages.

Each event of the stream is one notification: `id:` its offset (a reconnecting EventSource sends it back as
Last-Event-ID and resumes after it) and `data:` the notification as JSON, the same object the list returns.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from edi.client.models import Int32, Notification, NotificationsResponse, NotificationType
from edi.kapabilitetsregister.view import unchecked_text
from edi.services.gateway.access import Caller
from edi.services.gateway.errors import ERROR_RESPONSES, invalid, log
from edi.services.messaging import Messaging, NotificationKind
from edi.services.messaging import Notification as Event

API_VERSIONS = frozenset({"2", "2.0", "3", "3.0"})  # v3 clients send 3 here; v2 clients reuse their headers
_NAMESPACE = uuid.UUID("6f1d3c1e-5b0a-4a53-9a53-2f0f4c1a9e21")  # notification ids: uuid5 of the offset
_DESCRIPTIONS = {
    NotificationKind.NEW_MESSAGE: "New message received from HER-id {counterpart}.",
    NotificationKind.MESSAGE_SENT_STATE_UPDATED: "The message's transport state changed for HER-id {counterpart}.",
    NotificationKind.MESSAGE_APPREC_INFO_UPDATED: "HER-id {counterpart} answered the message with an AppRec.",
    NotificationKind.REFUSED_MESSAGE: "The message was refused for HER-id {counterpart}.",
}


async def api_version(  # async: FastAPI runs a plain def on a worker thread, a hop per request
    api_version: Annotated[str, Header(alias="api-version", examples=["3"])],
    nhn_source_system: Annotated[str, Header(alias="nhn-source-system", examples=["MyApplication, v1.337"])],
) -> None:
    if api_version.strip() not in API_VERSIONS:
        raise invalid("header api-version: notifications are served for API versions 2 and 3")
    if not nhn_source_system.strip():
        raise invalid("header nhn-source-system: name and version of the client system are required")


Versioned = Annotated[None, Depends(api_version)]
HerIds = Annotated[list[Int32], Query(
    alias="HerIds", min_length=1, description="One or more HER-ids to fetch notifications for.",
)]


def notifications_router(
    messaging: Messaging, authenticate: Callable[[Request], Awaitable[Caller]], *, heartbeat_seconds: float,
) -> APIRouter:
    router = APIRouter(tags=["Notifications"])
    Who = Annotated[Caller, Depends(authenticate)]  # local: it binds this router's `authenticate`

    @router.get("/notifications", operation_id="GetNotifications", responses=ERROR_RESPONSES)
    async def get_notifications(
        who: Who, _: Versioned, her_ids: HerIds,
        offset: Annotated[int, Query(alias="Offset", ge=0, description="Offset of the last notification seen")] = 0,
        notifications_to_fetch: Annotated[int, Query(alias="NotificationsToFetch", ge=1, le=1000)] = 100,
    ) -> NotificationsResponse:
        """Notifications after `Offset`, oldest first. Offsets are global, so a client sees gaps between them."""
        wanted = [str(h) for h in dict.fromkeys(her_ids)]
        who.require(wanted)
        events = await messaging.notifications(wanted, after=offset, limit=notifications_to_fetch)
        return NotificationsResponse(notifications=[notification(e) for e in events])

    @router.get(
        "/notifications/stream", operation_id="StreamNotifications", response_class=StreamingResponse,
        responses={**ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
    )
    async def stream_notifications(
        who: Who, _: Versioned, her_ids: HerIds,
        offset: Annotated[int, Query(alias="Offset", ge=0)] = 0,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """Notifications as server-sent events, from `Offset` (or Last-Event-ID) on, until the access token expires."""
        wanted = [str(h) for h in dict.fromkeys(her_ids)]
        who.require(wanted)
        after = offset
        if last_event_id is not None:
            if not last_event_id.strip().isdigit():
                raise invalid("header Last-Event-ID: the offset of the last event seen")
            after = max(after, int(last_event_id.strip()))
        events = _events(messaging, wanted, after, heartbeat_seconds, until=who.expires_at)
        return StreamingResponse(
            events, media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


def notification(event: Event) -> Notification:
    counterpart = event.counterpart_her_id
    return Notification(
        id=uuid.uuid5(_NAMESPACE, str(event.offset)), related_message_id=event.message_id,
        type=NotificationType(event.kind.value), notification_receiver_her_id=int(event.her_id),
        notification_triggered_by_her_id=int(counterpart) if counterpart else None,
        description=describe(event),
        created_at=event.at, offset=event.offset,
    )


def describe(event: Event) -> str:
    """What happened, with the message's kind and, when the receiver got it unchecked, why."""
    text = _DESCRIPTIONS[event.kind].format(counterpart=event.counterpart_her_id or "unknown")
    if event.message_kind:
        text += f" Message: {event.message_kind}."
    if event.unchecked_reason:
        text += f" Delivered without a capability check: {unchecked_text(event.unchecked_reason)}."
    return text


async def _events(
    messaging: Messaging, her_ids: list[str], after: int, heartbeat: float, *, until: float,
) -> AsyncIterator[str]:
    # The backbone's feed is pumped into a queue so that heartbeats can be sent while it is quiet, without
    # cancelling the feed's iterator mid-step.
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        async for event in messaging.follow(her_ids, after=after):
            await queue.put(event)

    feed = asyncio.create_task(pump())
    try:
        yield "retry: 3000\n\n"
        while (remaining := until - time.time()) > 0:
            try:
                event = await asyncio.wait_for(queue.get(), min(heartbeat, remaining))
            except TimeoutError:
                if feed.done():
                    return  # the feed ended or failed: the client reconnects with Last-Event-ID
                yield ": keep-alive\n\n"
                continue
            body = notification(event).model_dump_json(by_alias=True)
            yield f"id: {event.offset}\ndata: {body}\n\n"
    finally:
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await feed
            except Exception as exc:  # the stream is over either way; the cause belongs in the log
                log.warning("notification feed failed", error_type=type(exc).__name__)
