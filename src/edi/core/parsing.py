"""Safe XML parsing: size limit before parsing, no entity expansion, no network, no DTDs.

Health messages never need a DTD, so a DOCTYPE that declares entities or points at an external DTD is refused
outright rather than parsed "safely": that closes billion-laughs and XXE by construction.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from edi.core.errors import Code
from edi.core.problems import DocumentRefused, Problem, problem

DEFAULT_MAX_BYTES = 35 * 1024 * 1024  # the EDI 2.0 API's limit for one business document

_PROLOG_BYTES = 64 * 1024
_WIDE = (b"UTF16", b"UCS2", b"UTF32", b"UCS4")
_EXTERNAL_ID = re.compile(rb"\s(SYSTEM|PUBLIC)[\s\"']")

_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers keep per-parse state, so each thread gets its own.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            # libxml2's default caps a text node at 10 MB, which a legitimate inline attachment under the size limit
            # exceeds; the size limit, checked before parsing, and the refusal of DTDs bound the work instead.
            huge_tree=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse a document from its bytes, honouring the encoding its XML declaration names.

    Raises DocumentRefused with a Problem saying exactly why when the document cannot be accepted.
    """
    if len(data) > max_bytes:
        raise DocumentRefused(problem(Code.TOO_LARGE, size=len(data), limit=max_bytes))
    if not data or data.isspace():
        raise DocumentRefused(problem(Code.EMPTY_DOCUMENT))
    may_have_doctype = _check_prolog(data)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise DocumentRefused(_syntax_problem(exc)) from None
    if may_have_doctype or len(data) > _PROLOG_BYTES:
        _refuse_dtd(root)  # belt and braces where the prolog scan could not see the whole prolog
    return root


def _check_prolog(data: bytes) -> bool:
    """Refuse entity declarations, external DTDs and a declaration that contradicts the bytes, before parsing.
    Returns whether the document has a DOCTYPE at all. Looks only at the first bytes, without copying them."""
    head = data
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:2]:
        head = data[:_PROLOG_BYTES].decode("utf-16", errors="replace").encode("ascii", errors="replace")
    elif (declared := _declared_encoding(data)) and declared.upper().replace(b"-", b"").startswith(_WIDE):
        name = declared.decode(errors="replace")
        detail = f"it declares {name} but is written in a single-byte or UTF-8 encoding"
        raise DocumentRefused(problem(Code.BAD_ENCODING, line=1, detail=detail))
    start = _doctype_start(head)
    if start is None:
        return True  # the prolog does not end within the bytes looked at: checked again after parsing
    if start < 0:
        return False
    close = head.find(b">", start, _PROLOG_BYTES)
    end = head.find(b"]>", start, _PROLOG_BYTES) if head.find(b"[", start, close) >= 0 else close
    doctype = head[start : end if end > 0 else _PROLOG_BYTES]
    if b"<!ENTITY" in doctype:
        raise DocumentRefused(problem(Code.DTD_FORBIDDEN, what="declares entities", what_nb="deklarerer entiteter"))
    if _EXTERNAL_ID.search(doctype.split(b"[", 1)[0]):
        raise DocumentRefused(
            problem(Code.DTD_FORBIDDEN, what="refers to an external DTD", what_nb="viser til en ekstern DTD")
        )
    return True


def _doctype_start(head: bytes) -> int | None:
    """Where the DOCTYPE starts; -1 without one, None when the prolog goes on past _PROLOG_BYTES. Only the prolog
    (declaration, comments, processing instructions) can hold it, so the scan stops at the root element's tag."""
    at = 0
    while (at := head.find(b"<", at, _PROLOG_BYTES)) >= 0:
        if head.startswith(b"<!DOCTYPE", at):
            return at
        if head.startswith(b"<?", at):
            at = head.find(b"?>", at + 2, _PROLOG_BYTES)
        elif head.startswith(b"<!--", at):
            at = head.find(b"-->", at + 4, _PROLOG_BYTES)
        else:
            return -1  # the root element
        if at < 0:
            return None
    return None


def _declared_encoding(data: bytes) -> bytes | None:
    """The encoding named in an ASCII-compatible XML declaration, if any."""
    if data[:5] != b"<?xml":  # a declaration, when present, opens the document
        return None
    end = data.find(b"?>", 0, 512)
    at = data.find(b"encoding", 0, end)
    if at < 0:
        return None
    rest = data[at + 8 : end].lstrip().lstrip(b"=").lstrip()
    quote = rest[:1]
    return rest[1 : rest.find(quote, 1)] if quote in (b'"', b"'") else None


def _syntax_problem(exc: etree.XMLSyntaxError) -> Problem:
    line = exc.position[0] if exc.position else None
    detail = exc.msg.strip().rstrip(".")
    code = Code.BAD_ENCODING if _is_encoding_error(exc.msg) else Code.NOT_WELL_FORMED
    return problem(code, line=line, detail=detail)


def _is_encoding_error(message: str) -> bool:
    lowered = message.lower()
    return "encoding" in lowered or "not proper utf-8" in lowered or "invalid character in" in lowered


def _refuse_dtd(root: etree._Element) -> None:
    info = root.getroottree().docinfo
    if info.public_id or info.system_url:
        raise DocumentRefused(
            problem(Code.DTD_FORBIDDEN, what="refers to an external DTD", what_nb="viser til en ekstern DTD")
        )
    dtd = info.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise DocumentRefused(
            problem(Code.DTD_FORBIDDEN, what="declares entities", what_nb="deklarerer entiteter")
        )

