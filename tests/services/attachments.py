"""Helpers for the large-attachment tests: a referral with an attachment of any size (or a FileReference), the
HTTP API with the object API mounted, and what a receiver fetches."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from lxml import etree

from edi.auth.dev import DevIssuer
from edi.core.standards import BASE64_NS, MSGHEAD_NS
from edi.services.backbone import Backbone
from edi.services.gateway.app import create_app
from edi.services.gateway.settings import Environment, GatewaySettings
from edi.services.objects.settings import ObjectSettings
from tests.services.conftest import eventually, party
from tests.shared_samples import SAMPLES

# A valid Viderehenvisning 2.0 in MsgHead, from HER-id 999999 to 999997, with a PDF attachment.
SAMPLE = (SAMPLES / "henvisning/sarepta-eksempel/Henvisning/Henvisning_v2-0"
          / "Viderehenvisning_v2-0_Uten_rettighetsvurdering_Ny.xml")
SPEC = "ConsumeViderehenvisning2.0"
SENDER, BY_REFERENCE, INLINE = "999999", "8150001", "8150002"
# The registry: the sender takes AppRecs, one receiver reads FileReference and the other does not.
PARTIES = [
    party(SENDER, "ConsumeApplikasjonskvittering1.0"),
    party(BY_REFERENCE, SPEC, acceptsFileReference=True),
    party(INLINE, SPEC),
]
BASE_URL = "http://edi.test"  # EDI_PUBLIC_URL in these tests: FileReferences are <it>/objects/<key>
API_HEADERS = {"api-version": "2", "nhn-source-system": "edi tests, v1"}
B64 = "{" + BASE64_NS + "}Base64Container"
FILE_REFERENCE = "{" + MSGHEAD_NS + "}FileReference"


def referral(receiver: str, attachment: bytes | None = None, *, file_reference: str | None = None) -> bytes:
    """The sample to `receiver` with a new MsgId, and as its attachment `attachment` inline or a FileReference."""
    sample = (SAMPLE.read_bytes().replace(b"<Id>999997</Id>", f"<Id>{receiver}</Id>".encode())
              .replace(b"fbb215f0-1f14-11e9-b56e-0800200c9a66", str(uuid.uuid4()).encode()))
    root = etree.fromstring(sample)
    container = next(root.iter(B64))
    if file_reference is not None:
        content = container.getparent()
        reference = etree.Element(FILE_REFERENCE)
        reference.text = file_reference
        content.getparent().replace(content, reference)
    elif attachment is not None:
        container.text = base64.b64encode(attachment).decode()
    document: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    return document


def post_body(document: bytes) -> bytes:
    """POST /Messages's JSON, written directly: no JSON encoder needs to walk tens of MB of base64."""
    return (b'{"contentType": "application/xml", "contentTransferEncoding": "base64", "businessDocument": "'
            + base64.b64encode(document) + b'"}')


async def post(client: httpx.AsyncClient, document: bytes) -> httpx.Response:
    return await client.post("/Messages", content=post_body(document), headers={"Content-Type": "application/json"})


@asynccontextmanager
async def gateway(backbone: Backbone, data_dir: Path) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The HTTP API with the object API mounted (as `edi up` serves it), and a client for each party."""
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
    """The text of every `tag` element of the document."""
    root = etree.fromstring(document, etree.XMLParser(huge_tree=True))
    return [element.text or "" for element in root.iter(tag)]
