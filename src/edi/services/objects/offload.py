"""Large attachments in routing: out of the message into the object service, and back for those who need them.

- `offload_attachments` (router): every inline attachment (RefDoc/Content/Base64Container) larger than a
  threshold is stored as an object from the message's sender for its receivers, and its RefDoc/Content is
  replaced by a RefDoc/FileReference to the object's URL, as a DEFT sender would have written it. The rewritten
  document is small enough for a Kafka record; the references (URL, size, sha256) go with it.
- `reinline_attachments` (mailbox, for a receiver whose registry entry does not accept FileReference): every
  FileReference to this object service is replaced by the object's bytes inline again, verified against their
  sha256, provided the result stays within the document size limit (35 MB by default).
- `check_file_references` (ingress): a FileReference the sender wrote itself to this object service must name an
  object that exists, that the sender uploaded, and that lists every receiver of the message.

`Attachments` is how the services use these. Where the offload happens: at ingress (the gateway's submit and the
validator), before edi.accepted, because the accepted record carries the document and Kafka refuses records over
1 MB by default; a 50 MB attachment cannot wait for the router. The router offloads whatever an accepted record
still carries inline (one written by an ingress without an object service), checks that each receiver that cannot
read FileReference can take the document with its attachments inline, and lists the objects on each Delivery.
The fetch path (`Backbone.business_document`) puts them back inline for such receivers.

Memory: a document is parsed once into a tree (attachments larger than libxml2's 10 MB text-node limit are
allowed here: the document was accepted by ingress, and no DTD is let through). An attachment is decoded and
stored in slices; putting one back encodes it in slices into the output, so the peak is about the output
document twice over, never a decoded copy of everything.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree

from edi.core.errors import Code
from edi.core.extract import find_headers, read_header
from edi.core.header import RoutingHeader
from edi.core.parsing import DEFAULT_MAX_BYTES, parse_xml
from edi.core.problems import Problem, problem
from edi.core.standards import BASE64_NS, MSGHEAD_NS
from edi.events import BlobRef
from edi.kapabilitetsregister.model import InvalidHerIdError, parse_her_id
from edi.kapabilitetsregister.view import RegistryView
from edi.services.objects.service import ObjectError, ObjectNotFound, ObjectService, is_her_id, unavailable

_M = "{" + MSGHEAD_NS + "}"
_DOCUMENT, _REFDOC, _CONTENT, _FILE_REFERENCE, _MIME_TYPE, _DESCRIPTION = (
    _M + name for name in ("Document", "RefDoc", "Content", "FileReference", "MimeType", "Description"))
_BASE64 = "{" + BASE64_NS + "}Base64Container"
_DECODE_SLICE = 4 * 1024 * 1024  # base64 characters decoded at a time
_ENCODE_CHUNK = 3 * 1024 * 1024  # bytes encoded at a time (a multiple of 3: no padding inside)


class AttachmentsTooLarge(Exception):
    """Putting the attachments back inline would make the document larger than a receiver can take."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"with its attachments inline the document would be {size} bytes, over the limit of "
                         f"{limit} bytes")
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Rewritten:
    document: bytes
    objects: list[BlobRef]  # what was moved out (offload) or put back (re-inline)


async def offload_attachments(document: bytes, objects: ObjectService, *, threshold: int) -> Rewritten:
    """Move inline attachments larger than `threshold` bytes (decoded) into objects; unchanged when there are
    none. Each object is from the MsgHead's sender to its receivers (receiver and copy receivers)."""
    root = _parse(document)
    moved: list[BlobRef] = []
    for msghead in _msgheads(root):
        header = read_header(msghead)
        # Receivers that are no HER-id cannot be named by an object; the router refuses them anyway (E21).
        receivers = [her_id for her_id in header.receiver_her_ids if is_her_id(her_id)]
        if header.sender_her_id is None or not is_her_id(header.sender_her_id) or not receivers:
            continue  # nobody could be authorised for the object: the attachment stays inline
        for refdoc, described in zip(_refdocs(msghead), header.documents, strict=True):
            if described.size is None or described.size <= threshold:
                continue
            content = refdoc.find(_CONTENT)
            container = content.find(_BASE64) if content is not None else None
            if container is None:
                continue
            record = await objects.put(
                sender=header.sender_her_id, receivers=receivers,
                data=_decoded(container.text or ""),
                content_type=described.mime_type or "application/octet-stream", file_name=described.description,
            )
            url = objects.url_for(record.key)
            reference = etree.Element(_FILE_REFERENCE)
            reference.text = url
            reference.tail = content.tail
            refdoc.replace(content, reference)  # Content and FileReference share one place in RefDoc
            assert record.size is not None and record.sha256 is not None
            moved.append(BlobRef(uri=url, size=record.size, sha256=record.sha256))
    return Rewritten(_serialise(root) if moved else document, moved)


async def reinline_attachments(
    document: bytes, objects: ObjectService, *, max_bytes: int = DEFAULT_MAX_BYTES,
) -> Rewritten:
    """Replace every FileReference to this object service with the object's content inline (a Base64Container),
    each verified against its sha256 as it is read. Raises AttachmentsTooLarge, before reading any object, when
    the result would exceed `max_bytes`; ObjectNotFound or ObjectGone when an object is no longer there."""
    if b"FileReference" not in document:  # most documents: nothing to put back, no parse
        return Rewritten(document, [])
    root = _parse(document)
    found: list[tuple[Any, str]] = []  # (FileReference element, key)
    for msghead in _msgheads(root):
        for refdoc in _refdocs(msghead):
            reference = refdoc.find(_FILE_REFERENCE)
            key = objects.key_for(reference.text or "") if reference is not None else None
            if key is not None:
                found.append((reference, key))
    if not found:
        return Rewritten(document, [])
    records = await objects.records([key for _, key in found])
    for _, key in found:
        if key not in records:
            raise ObjectNotFound(f"there is no object {key}")
        if (reason := unavailable(records[key])) is not None:
            raise reason
    # Each Base64Container is first written as a placeholder no sender can have foreseen, then the serialised
    # document is cut at the placeholders and the encoded bytes are put in between.
    marker = uuid.uuid4().hex
    placeholders = [f"{marker}{position:05d}" for position in range(len(found))]
    for (reference, _), placeholder in zip(found, placeholders, strict=True):
        content = etree.Element(_CONTENT)
        container = etree.SubElement(content, _BASE64, nsmap={None: BASE64_NS})
        container.text = placeholder
        content.tail = reference.tail
        reference.getparent().replace(reference, content)
    skeleton = _serialise(root, ascii_compatible=True)
    encoded = sum(4 * (((records[key].size or 0) + 2) // 3) - len(placeholder)
                  for (_, key), placeholder in zip(found, placeholders, strict=True))
    if len(skeleton) + encoded > max_bytes:
        raise AttachmentsTooLarge(len(skeleton) + encoded, max_bytes)

    pieces: list[bytes] = []
    rest = skeleton
    for (_, key), placeholder in zip(found, placeholders, strict=True):
        before, rest = rest.split(placeholder.encode(), 1)
        pieces.append(before)
        pieces.extend([piece async for piece in _encoded(objects.read(key))])
    pieces.append(rest)
    put_back = [BlobRef(uri=objects.url_for(key), size=records[key].size or 0, sha256=records[key].sha256 or "")
                for _, key in found]
    return Rewritten(b"".join(pieces), put_back)


async def check_file_references(header: RoutingHeader, objects: ObjectService) -> list[Problem]:
    """Problems with the message's FileReferences to this object service (others are not ours to check)."""
    references = [(doc.index, objects.key_for(doc.file_reference)) for doc in header.documents
                  if doc.file_reference]
    keys = [key for _, key in references if key is not None]
    if not keys:
        return []
    records = await objects.records(keys)
    problems: list[Problem] = []
    for index, key in references:
        if key is None:
            continue
        where = f"Document[{index}]/RefDoc/FileReference"
        record = records.get(key)
        if record is None:
            problems.append(problem(Code.OBJECT_UNKNOWN, path=where, index=index, url=objects.url_for(key)))
        elif (reason := unavailable(record)) is not None:
            problems.append(problem(Code.OBJECT_UNAVAILABLE, path=where, index=index, reason=str(reason)))
        elif record.sender_her_id != header.sender_her_id:
            problems.append(problem(Code.OBJECT_NOT_SENDERS, path=where, index=index, owner=record.sender_her_id,
                                     sender=header.sender_her_id or "-"))
        elif missing := [h for h in header.receiver_her_ids if h not in record.receiver_her_ids]:
            problems.append(problem(Code.OBJECT_RECEIVERS_MISSING, path=where, index=index, missing=", ".join(missing)))
    return problems


class Attachments:
    """Large attachments in the message flow: the object service with the deployment's sizes, as ingress, the
    router and the fetch path use it (EDI_OBJECT_OFFLOAD_THRESHOLD, EDI_OBJECT_INLINE_MAX_BYTES)."""

    def __init__(self, objects: ObjectService, *, offload_threshold: int, inline_max_bytes: int) -> None:
        self.objects = objects
        self.offload_threshold = offload_threshold
        self.inline_max_bytes = inline_max_bytes

    async def check(self, header: RoutingHeader) -> list[Problem]:
        """Problems with FileReferences the sender wrote to this object service (ingress refuses on any)."""
        return await check_file_references(header, self.objects)

    async def offload(self, document: bytes, header: RoutingHeader) -> Rewritten:
        """The document with its inline attachments over the threshold moved to objects; without parsing it again
        when its routing header lists none."""
        if not any(d.size is not None and d.size > self.offload_threshold for d in header.documents):
            return Rewritten(document, [])
        return await offload_attachments(document, self.objects, threshold=self.offload_threshold)

    def _keys(self, header: RoutingHeader) -> list[str]:
        """The keys of this service's objects that the header's FileReferences name, in the header's order."""
        return [key for d in header.documents if d.file_reference and (key := self.objects.key_for(d.file_reference))]

    async def referenced(self, header: RoutingHeader) -> list[BlobRef]:
        """The stored objects of this service that the header's FileReferences name, in the header's order."""
        keys = self._keys(header)
        records = await self.objects.records(keys) if keys else {}
        return [BlobRef(uri=self.objects.url_for(key), size=record.size, sha256=record.sha256)
                for key in keys if (record := records.get(key)) is not None
                and record.size is not None and record.sha256 is not None]

    def too_large_inline(self, document: bytes, attachments: list[BlobRef]) -> Problem | None:
        """Why a receiver that cannot read FileReference cannot have this document, if its attachments put back
        inline (base64) would make it larger than the limit; None when it fits."""
        size = len(document) + sum(4 * ((a.size + 2) // 3) for a in attachments)
        if size <= self.inline_max_bytes:
            return None
        return problem(Code.ATTACHMENTS_TOO_LARGE_INLINE, size=size, limit=self.inline_max_bytes)

    async def for_receiver(self, document: bytes, receiver_her_id: str, view: RegistryView | None) -> bytes:
        """The document as a receiver gets it: as it is when the receiver's registry entry accepts FileReference,
        otherwise (also without a registry view to ask) with this service's objects inline again. Raises
        AttachmentsTooLarge over the inline limit, ObjectGone once an object is deleted."""
        if not gets_inline(receiver_her_id, view):
            return document
        return (await reinline_attachments(document, self.objects, max_bytes=self.inline_max_bytes)).document

    async def confirm_inline(self, document: bytes, receiver_her_id: str, view: RegistryView | None) -> None:
        """A receiver that gets this service's objects inline has them once it marks the message read: confirm
        them on its behalf (as a DEFT receiver confirms its download), so an object goes when every receiver has
        it rather than when its retention runs out."""
        if b"FileReference" not in document or not gets_inline(receiver_her_id, view):
            return
        keys = [key for msghead in _msgheads(_parse(document)) for key in self._keys(read_header(msghead))]
        for key in keys:
            with contextlib.suppress(ObjectError):  # gone already, or not listing this receiver: nothing to do
                await self.objects.confirm(key, receiver_her_id)


def gets_inline(receiver_her_id: str, view: RegistryView | None) -> bool:
    """Whether a receiver gets attachments inline: unless its registry entry accepts FileReference (and without a
    registry view to ask)."""
    try:
        return view is None or not view.accepts_file_reference(parse_her_id(receiver_her_id))
    except InvalidHerIdError:
        return True


def _parse(document: bytes) -> Any:
    # The document was accepted at ingress; here only its structure matters, with the core's protections.
    return parse_xml(document, max_bytes=len(document))


def _msgheads(root: Any) -> list[Any]:
    return [header for header in find_headers(root) if header.tag == _M + "MsgHead"]


def _refdocs(msghead: Any) -> Iterator[Any]:
    """Every Document/RefDoc, in the order read_header lists them."""
    for document in msghead.iterchildren(_DOCUMENT):
        yield from document.iterchildren(_REFDOC)


def _serialise(root: Any, *, ascii_compatible: bool = False) -> bytes:
    """The document in its own encoding; `ascii_compatible`: in UTF-8 instead when that is UTF-16 or UTF-32, so
    that base64 text can be spliced in as ASCII bytes."""
    tree = root.getroottree()
    encoding = tree.docinfo.encoding or "UTF-8"
    if ascii_compatible and "a".encode(encoding) != b"a":
        encoding = "UTF-8"
    serialised: bytes = etree.tostring(tree, xml_declaration=True, encoding=encoding)
    return serialised


async def _decoded(text: str) -> AsyncIterator[bytes]:
    """The attachment's bytes, a slice of its base64 text at a time (line breaks and spaces allowed anywhere)."""
    carry = ""
    for start in range(0, len(text), _DECODE_SLICE):
        characters = carry + "".join(text[start : start + _DECODE_SLICE].split())
        whole = len(characters) - len(characters) % 4
        carry = characters[whole:]
        if whole:
            yield base64.b64decode(characters[:whole], validate=True)
    if carry:
        raise binascii.Error("the attachment's base64 text ends in an incomplete group")


async def _encoded(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Base64 of the stream, in pieces that join to one unbroken text."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) >= _ENCODE_CHUNK:
            whole = len(buffer) - len(buffer) % 3
            yield base64.b64encode(memoryview(buffer)[:whole])
            del buffer[:whole]
    yield base64.b64encode(buffer)
