"""Large attachments end to end on real Kafka: a referral with a 50 MB scan posted to the HTTP API reaches a
receiver that reads FileReference as a URL to the object API, and one that does not with the scan inline, and both
lead to the same bytes.

Kafka takes records of at most 1 MB (its default, which the session's broker keeps): the scan can only travel
because ingress moves it to the object service before the message goes on to edi.accepted. A MsgHead names one
receiver, so the scan goes to each receiver in a message of its own. The deployment's document limit is raised
(EDI_MAX_MESSAGE_BYTES, EDI_OBJECT_INLINE_MAX_BYTES) for a 67 MB document with the scan inline; the API's default
is 35 MB.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from lxml import etree

from edi.auth.dev import DevIssuer
from edi.core.standards import BASE64_NS, MSGHEAD_NS
from edi.services.backbone import Backbone
from edi.services.gateway.app import create_app
from edi.services.gateway.settings import Environment, GatewaySettings
from edi.services.objects.settings import ObjectSettings
from tests.services.conftest import eventually, party, running_backbone, seed_registry
from tests.shared_samples import SAMPLES

pytestmark = pytest.mark.kafka

# A valid Viderehenvisning 2.0 in MsgHead, from HER-id 999999 to 999997, with a PDF attachment.
SAMPLE = (SAMPLES / "henvisning/sarepta-eksempel/Henvisning/Henvisning_v2-0"
          / "Viderehenvisning_v2-0_Uten_rettighetsvurdering_Ny.xml")
SPEC = "ConsumeViderehenvisning2.0"
SENDER, BY_REFERENCE, INLINE = "999999", "8150001", "8150002"
BASE_URL = "http://edi.test"
API_HEADERS = {"api-version": "2", "nhn-source-system": "edi tests, v1"}
SCAN_BYTES = 50 * 1024 * 1024
DOCUMENT_LIMIT = 80 * 1024 * 1024
B64 = "{" + BASE64_NS + "}Base64Container"
FILE_REFERENCE = "{" + MSGHEAD_NS + "}FileReference"


@pytest.fixture
def bus_kind() -> str:
    return "kafka"


@pytest.fixture
def large_documents(installation: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"EDI_MAX_MESSAGE_BYTES": str(DOCUMENT_LIMIT),
                        "EDI_OBJECT_INLINE_MAX_BYTES": str(DOCUMENT_LIMIT), "EDI_PUBLIC_URL": BASE_URL}.items():
        monkeypatch.setenv(name, value)
    yield


def referral(receiver: str, scan: bytes) -> bytes:
    """The sample to `receiver`, with a new MsgId and `scan` as its attachment."""
    sample = (SAMPLE.read_bytes().replace(b"<Id>999997</Id>", f"<Id>{receiver}</Id>".encode())
              .replace(b"fbb215f0-1f14-11e9-b56e-0800200c9a66", str(uuid.uuid4()).encode()))
    root = etree.fromstring(sample)
    next(root.iter(B64)).text = base64.b64encode(scan).decode()
    document: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    return document


def post_body(document: bytes) -> bytes:
    """POST /Messages's JSON, written directly: no JSON encoder needs to walk 90 MB of base64."""
    return (b'{"contentType": "application/xml", "contentTransferEncoding": "base64", "businessDocument": "'
            + base64.b64encode(document) + b'"}')


@asynccontextmanager
async def gateway(backbone: Backbone, data_dir: Path) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The HTTP API with the object API mounted, and a client for each party."""
    settings = GatewaySettings(environment=Environment.DEVELOPMENT, data_dir=data_dir)
    attachments = await ObjectSettings().open_attachments()
    app = create_app(backbone, settings, objects=attachments.objects)
    issuer = DevIssuer.load_or_create(data_dir)
    clients = {}
    for her_id in (SENDER, BY_REFERENCE, INLINE):
        token = issuer.issue([her_id], audience=settings.auth_audience, scope=settings.auth_scope)
        clients[her_id] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=120,
            headers={**API_HEADERS, "Authorization": f"Bearer {token}"})
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()
        await attachments.objects.close()


async def fetched_document(client: httpx.AsyncClient, receiver: str) -> bytes:
    """The receiver's one unread message's business document, once it has arrived."""

    async def arrived() -> list[dict[str, str]] | None:
        listed = await client.get("/Messages", params={"ReceiverHerIds": receiver})
        assert listed.status_code == 200, listed.text
        return listed.json() or None

    [message] = await eventually(arrived, timeout_s=120, what=f"a message for {receiver}")
    response = await client.get(f"/Messages/{message['id']}/business-document")
    assert response.status_code == 200, response.text[:500]
    return base64.b64decode(response.json()["businessDocument"])


def elements(document: bytes, tag: str) -> list[str]:
    root = etree.fromstring(document, etree.XMLParser(huge_tree=True))
    return [element.text or "" for element in root.iter(tag)]


@pytest.mark.usefixtures("large_documents")
async def test_a_50_mb_attachment_reaches_one_receiver_by_url_and_the_other_inline(tmp_path: Path) -> None:
    await seed_registry([
        party(SENDER, "ConsumeApplikasjonskvittering1.0"),
        party(BY_REFERENCE, SPEC, acceptsFileReference=True),
        party(INLINE, SPEC),
    ])
    scan = os.urandom(SCAN_BYTES)
    scan_sha256 = hashlib.sha256(scan).hexdigest()
    async with running_backbone() as (backbone, _), gateway(backbone, tmp_path / "gateway") as clients:
        for receiver in (BY_REFERENCE, INLINE):
            posted = await clients[SENDER].post("/Messages", content=post_body(referral(receiver, scan)),
                                                headers={"Content-Type": "application/json"})
            assert posted.status_code == 201, posted.text[:500]
        del scan

        by_reference = await fetched_document(clients[BY_REFERENCE], BY_REFERENCE)
        assert elements(by_reference, B64) == []
        [url] = elements(by_reference, FILE_REFERENCE)
        assert url.startswith(f"{BASE_URL}/objects/")
        assert len(by_reference) < 100_000
        digest = hashlib.sha256()
        async with clients[BY_REFERENCE].stream("GET", url) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_bytes():
                digest.update(chunk)
        assert digest.hexdigest() == scan_sha256
        # Nobody else may fetch it: the object is the sender's, for this receiver.
        assert (await clients[INLINE].get(url)).status_code == 403

        inline = await fetched_document(clients[INLINE], INLINE)
        assert elements(inline, FILE_REFERENCE) == []
        [content] = elements(inline, B64)
        assert hashlib.sha256(base64.b64decode(content)).hexdigest() == scan_sha256
