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
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.attachments import (
    B64,
    BASE_URL,
    BY_REFERENCE,
    FILE_REFERENCE,
    INLINE,
    PARTIES,
    SENDER,
    elements,
    fetched_document,
    gateway,
    post,
    referral,
)
from tests.services.conftest import running_backbone, seed_registry

pytestmark = pytest.mark.kafka

SCAN_BYTES = 50 * 1024 * 1024
DOCUMENT_LIMIT = 80 * 1024 * 1024


@pytest.fixture
def bus_kind() -> str:
    return "kafka"


@pytest.fixture
def large_documents(installation: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"EDI_MAX_MESSAGE_BYTES": str(DOCUMENT_LIMIT),
                        "EDI_OBJECT_INLINE_MAX_BYTES": str(DOCUMENT_LIMIT), "EDI_PUBLIC_URL": BASE_URL}.items():
        monkeypatch.setenv(name, value)
    yield


@pytest.mark.usefixtures("large_documents")
async def test_a_50_mb_attachment_reaches_one_receiver_by_url_and_the_other_inline(tmp_path: Path) -> None:
    await seed_registry(PARTIES)
    scan = os.urandom(SCAN_BYTES)
    scan_sha256 = hashlib.sha256(scan).hexdigest()
    async with running_backbone() as (backbone, _), gateway(backbone, tmp_path / "gateway") as clients:
        for receiver in (BY_REFERENCE, INLINE):
            posted = await post(clients[SENDER], referral(receiver, scan))
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
        # The object is the sender's, for this receiver: the other receiver may not fetch it.
        assert (await clients[INLINE].get(url)).status_code == 403

        inline = await fetched_document(clients[INLINE], INLINE)
        assert elements(inline, FILE_REFERENCE) == []
        [content] = elements(inline, B64)
        assert hashlib.sha256(base64.b64decode(content)).hexdigest() == scan_sha256
