"""Large attachments in routing: offload to the object service, back inline for receivers that need it, and the
ingress check of FileReferences a sender wrote itself."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import pytest
from lxml import etree

from edi.adapters.blobs import DirectoryBlobStore, IntegrityError
from edi.core.catalog import SchemaCatalog
from edi.core.extract import find_headers, read_header
from edi.core.header import RoutingHeader
from edi.core.standards import BASE64_NS, MSGHEAD_NS
from edi.core.validation import Validator
from edi.services.objects.offload import (
    AttachmentsTooLarge,
    check_file_references,
    offload_attachments,
    reinline_attachments,
)
from edi.services.objects.service import ObjectGone, ObjectService
from tests.objects.conftest import chunks
from tests.shared_samples import SAMPLES, STANDARDS

# A valid Henvisning 2.0 in MsgHead with a 40 KB PDF attachment.
SAMPLE = (SAMPLES / "henvisning/sarepta-eksempel/Henvisning/Henvisning_v2-0"
          / "Viderehenvisning_v2-0_Uten_rettighetsvurdering_Ny.xml")
M = "{" + MSGHEAD_NS + "}"
B64 = "{" + BASE64_NS + "}Base64Container"


def attachments(document: bytes) -> list[bytes]:
    """The decoded bytes of every inline Base64Container."""
    root = etree.fromstring(document, etree.XMLParser(huge_tree=True))
    return [base64.b64decode("".join((e.text or "").split())) for e in root.iter(B64)]


def file_references(document: bytes) -> list[str]:
    return [e.text for e in etree.fromstring(document).iter(M + "FileReference")]


def header_of(document: bytes) -> RoutingHeader:
    return read_header(find_headers(etree.fromstring(document, etree.XMLParser(huge_tree=True)))[0])


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def with_attachment(content: bytes) -> bytes:
    """The sample with its PDF replaced by `content`."""
    root = etree.fromstring(SAMPLE.read_bytes())
    next(root.iter(B64)).text = base64.b64encode(content).decode()
    serialised: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    return serialised


def with_file_reference(url: str) -> bytes:
    """The sample with its PDF replaced by a FileReference, as a DEFT sender writes it."""
    root = etree.fromstring(SAMPLE.read_bytes())
    content = next(root.iter(B64)).getparent()
    reference = etree.Element(M + "FileReference")
    reference.text = url
    content.getparent().replace(content, reference)
    serialised: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    return serialised


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator(SchemaCatalog([STANDARDS]))


async def test_an_attachment_over_the_threshold_travels_by_reference_and_comes_back_the_same(
    service: ObjectService, validator: Validator,
) -> None:
    original = SAMPLE.read_bytes()
    [pdf] = attachments(original)
    header = header_of(original)

    offloaded = await offload_attachments(original, service, threshold=1024)
    [moved] = offloaded.objects
    assert (moved.size, moved.sha256) == (len(pdf), sha256(pdf))
    assert file_references(offloaded.document) == [moved.uri]
    assert attachments(offloaded.document) == []
    assert len(offloaded.document) < len(original) - 40_000
    key = service.key_for(moved.uri)
    assert key is not None
    record = await service.record(key)
    assert (record.sender_her_id, record.receiver_her_ids) == (header.sender_her_id, header.receiver_her_ids)
    assert (record.content_type, record.file_name) == ("application/pdf", "Opprinnelig henvisning")
    assert validator.validate(offloaded.document).valid  # a FileReference is a valid RefDoc
    assert await check_file_references(header_of(offloaded.document), service) == []

    reinlined = await reinline_attachments(offloaded.document, service)
    assert attachments(reinlined.document) == [pdf]
    assert file_references(reinlined.document) == []
    assert reinlined.objects == [moved]
    assert validator.validate(reinlined.document).valid


async def test_small_attachments_and_foreign_references_stay_as_they_are(service: ObjectService) -> None:
    original = SAMPLE.read_bytes()
    unchanged = await offload_attachments(original, service, threshold=256 * 1024)
    assert (unchanged.document, unchanged.objects) == (original, [])
    elsewhere = with_file_reference("https://deft.nhn.no/objects/1234")
    assert (await reinline_attachments(elsewhere, service)).document == elsewhere
    assert await check_file_references(header_of(elsewhere), service) == []


async def test_a_50_mb_attachment_round_trips_byte_for_byte(service: ObjectService) -> None:
    scan = os.urandom(50 * 1024 * 1024)
    document = with_attachment(scan)

    offloaded = await offload_attachments(document, service, threshold=256 * 1024)
    [moved] = offloaded.objects
    assert (moved.size, moved.sha256) == (len(scan), sha256(scan))
    assert len(offloaded.document) < 100_000
    del document

    with pytest.raises(AttachmentsTooLarge, match="over the limit of 36700160 bytes"):
        await reinline_attachments(offloaded.document, service)  # 35 MB by default
    reinlined = await reinline_attachments(offloaded.document, service, max_bytes=80 * 1024 * 1024)
    [back] = attachments(reinlined.document)
    assert sha256(back) == sha256(scan)


async def test_putting_back_fails_clearly_when_the_object_is_gone_or_tampered(service: ObjectService) -> None:
    offloaded = await offload_attachments(SAMPLE.read_bytes(), service, threshold=1024)
    key = service.key_for(offloaded.objects[0].uri)
    assert key is not None
    assert isinstance(service.blobs, DirectoryBlobStore)
    data = service.blobs.root / "objects" / key / "data"
    data.write_bytes(bytes([data.read_bytes()[0] ^ 1]) + data.read_bytes()[1:])
    with pytest.raises(IntegrityError, match="sha256"):
        await reinline_attachments(offloaded.document, service)
    await service.delete(key)
    with pytest.raises(ObjectGone):
        await reinline_attachments(offloaded.document, service)


async def test_ingress_checks_file_references_to_this_service(service: ObjectService) -> None:
    header = header_of(SAMPLE.read_bytes())
    sender, receivers = header.sender_her_id, header.receiver_her_ids
    assert sender is not None

    async def uploaded(by: str, to: list[str]) -> str:
        record = await service.put(sender=by, receivers=to, data=chunks(b"%PDF"), content_type="application/pdf")
        return service.url_for(record.key)

    async def codes(url: str) -> list[tuple[str, Any]]:
        problems = await check_file_references(header_of(with_file_reference(url)), service)
        return [(p.code, p.path) for p in problems]

    where = "Document[2]/RefDoc/FileReference"
    assert await codes(await uploaded(sender, receivers)) == []
    assert await codes(service.url_for("0" * 32)) == [("EDI-OBJ-001", where)]
    assert await codes(await uploaded("1111", receivers)) == [("EDI-OBJ-003", where)]
    assert await codes(await uploaded(sender, ["2222"])) == [("EDI-OBJ-004", where)]
    gone = await uploaded(sender, receivers)
    key = service.key_for(gone)
    assert key is not None
    await service.delete(key)
    [problem] = await check_file_references(header_of(with_file_reference(gone)), service)
    assert (problem.code, problem.apprec_code, problem.severity) == ("EDI-OBJ-002", "X99", "error")
    assert "its sender deleted it" in problem.message


async def test_an_attachment_no_object_could_be_addressed_for_stays_inline(service: ObjectService) -> None:
    document = with_attachment(os.urandom(300 * 1024)).replace(b"<Id>999997</Id>", b"<Id>ABC</Id>").replace(
        b"<Id>90240</Id>", b"<Id>DEF</Id>")
    assert all(not her_id.isdigit() for her_id in header_of(document).receiver_her_ids)
    unchanged = await offload_attachments(document, service, threshold=1024)
    assert (unchanged.document, unchanged.objects) == (document, [])
