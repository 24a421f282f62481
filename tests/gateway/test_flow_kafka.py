"""The whole flow over HTTP on real Kafka: the gateway around the Backbone with every service running, a sender
and a receiver using the client with DPoP-bound tokens, and both following the notification stream.

A sender posts a dialogmelding; the receiver lists, fetches and marks it read; the sender sees Acknowledged; the
receiver posts an AppRec; the sender sees the AppRec status and finds the AppRec among its unread messages; the
stream delivered each step.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from edi.auth.dev import DevIssuer
from edi.client import EdiClient
from edi.client.models import AppRecStatus, DeliveryState, Notification, NotificationType
from edi.kapabilitetsregister.settings import RegistrySettings
from edi.kapabilitetsregister.store import RegistryStore
from edi.services.gateway.access import RegistryDirectory
from edi.services.gateway.app import create_app
from tests.client.test_client import dpop_client
from tests.gateway.conftest import dev_settings
from tests.gateway.documents import SAMPLE_RECEIVER, SAMPLE_SENDER, dialogmelding
from tests.gateway.live import serve
from tests.services.conftest import APPRECS, party, running_backbone, seed_registry
from tests.services.documents import DIALOG_SPEC
from tests.shared_samples import STANDARDS

pytestmark = pytest.mark.kafka
SENDER, RECEIVER = int(SAMPLE_SENDER), int(SAMPLE_RECEIVER)
STEP_TIMEOUT_S = 60.0
T = TypeVar("T")


@pytest.fixture
def on_kafka(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A backbone installation of its own on the session's broker (its own topic namespace); yields its data
    directory."""
    data_dir = tmp_path / "data"
    for name, value in {
        "EDI_DATA_DIR": str(data_dir), "EDI_SCHEMA_DIRS": str(STANDARDS), "EDI_BUS": "kafka",
        "EDI_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "EDI_KAFKA_REPLICATION_FACTOR": "1",
        "EDI_BUS_NAMESPACE": f"gateway-{uuid.uuid4().hex[:10]}", "EDI_SESSION_TIMEOUT_S": "6",
        "EDI_POLL_TIMEOUT_S": "0.2", "EDI_RETRY_INITIAL_DELAY_S": "0.05", "EDI_RELAY_POLL_INTERVAL_S": "0.1",
        "EDI_FOLLOW_INTERVAL_S": "0.05",
    }.items():
        monkeypatch.setenv(name, value)
    yield data_dir


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    deadline = asyncio.get_running_loop().time() + STEP_TIMEOUT_S
    while not done(result := await probe()):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {STEP_TIMEOUT_S:.0f}s: {what} (last: {result!r})")
        await asyncio.sleep(0.1)
    return result


class Feed:
    """Every notification a stream delivered, in order, whatever order the test asks about them in."""

    def __init__(self) -> None:
        self.seen: list[Notification] = []
        self._arrived = asyncio.Event()

    async def follow(self, stream: AsyncIterator[Notification]) -> None:
        async for notification in stream:
            self.seen.append(notification)
            self._arrived.set()

    async def wait_for(self, kind: NotificationType, message_id: uuid.UUID) -> Notification:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            while True:
                for notification in self.seen:
                    if notification.type is kind and notification.related_message_id == message_id:
                        return notification
                self._arrived.clear()
                await self._arrived.wait()


async def test_a_dialogmelding_and_its_apprec_over_http_on_kafka(on_kafka: Path) -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC), party(SENDER, *APPRECS)])
    settings = dev_settings(on_kafka / "gateway")
    issuer = DevIssuer.load_or_create(settings.data_dir)
    registry = await RegistryStore.open(RegistrySettings().database_url)
    try:
        async with running_backbone() as (backbone, _):
            app = create_app(backbone, settings, directory=RegistryDirectory(registry))
            async with (
                serve(app) as base_url,
                dpop_client(issuer, settings, SENDER, None, base_url) as sender,
                dpop_client(issuer, settings, RECEIVER, None, base_url) as receiver,
            ):
                to_sender, to_receiver = Feed(), Feed()
                following = [
                    asyncio.create_task(to_sender.follow(sender.stream([SENDER]))),
                    asyncio.create_task(to_receiver.follow(receiver.stream([RECEIVER]))),
                ]
                try:
                    await _flow(sender, receiver, to_sender, to_receiver)
                finally:
                    for task in following:
                        task.cancel()
                    await asyncio.gather(*following, return_exceptions=True)
    finally:
        await registry.close()


async def _flow(
    sender: EdiClient, receiver: EdiClient, to_sender: Feed, to_receiver: Feed,
) -> None:
    document = dialogmelding(SENDER, RECEIVER)
    message_id = await sender.post_message(document)

    new = await to_receiver.wait_for(NotificationType.NEW_MESSAGE, message_id)
    assert new.notification_triggered_by_her_id == SENDER
    unread = await eventually(lambda: receiver.messages([RECEIVER], include_metadata=True),
                              lambda found: any(m.id == message_id for m in found), "the message in the mailbox")
    [listed] = [m for m in unread if m.id == message_id]
    assert (listed.sender_her_id, listed.is_app_rec) == (SENDER, False)
    assert await receiver.business_document(message_id) == document
    await receiver.mark_read(message_id, RECEIVER)
    assert all(m.id != message_id for m in await receiver.messages([RECEIVER]))

    await to_sender.wait_for(NotificationType.MESSAGE_SENT_STATE_UPDATED, message_id)
    [status] = await eventually(lambda: sender.status(message_id),
                                lambda s: bool(s) and s[0].transport_delivery_state is DeliveryState.ACKNOWLEDGED,
                                "Acknowledged")
    assert status.receiver_her_id == RECEIVER

    apprec_id = await receiver.post_apprec(message_id, RECEIVER, AppRecStatus.OK)
    await to_sender.wait_for(NotificationType.MESSAGE_APPREC_INFO_UPDATED, message_id)
    [info] = await eventually(lambda: sender.apprec_info(message_id),
                              lambda i: bool(i) and i[0].app_rec_status is AppRecStatus.OK, "the AppRec status")
    assert (info.receiver_her_id, info.app_rec_error_list) == (RECEIVER, [])
    assert (await sender.status(message_id))[0].app_rec_status is AppRecStatus.OK

    await to_sender.wait_for(NotificationType.NEW_MESSAGE, apprec_id)
    inbox = await eventually(lambda: sender.messages([SENDER], include_metadata=True),
                             lambda found: any(m.id == apprec_id for m in found), "the AppRec in the sender's inbox")
    [apprec] = [m for m in inbox if m.id == apprec_id]
    assert (apprec.is_app_rec, apprec.sender_her_id, apprec.receiver_her_id) == (True, RECEIVER, SENDER)
