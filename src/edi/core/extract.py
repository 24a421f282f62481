"""Finding and reading the routing header in a parsed document (pure functions over lxml elements).

This runs for every message, so each element is visited once: a pass over its children dispatching on the tag,
building plain data that pydantic validates in one call at the end. (lxml's `find` re-parses its path on every
call, which cost more than parsing the message itself.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, TypeAlias

from lxml import etree

from edi.core.header import LevelKind, RoutingHeader
from edi.core.standards import (
    APPREC_10_NS,
    APPREC_11_NS,
    MSGHEAD_NS,
    STANDALONE_NAMESPACES,
    Role,
    standard_for,
)

Element: TypeAlias = etree._Element  # lxml is untyped here (see pyproject), so this is Any
Data = dict[str, Any]

_M = "{" + MSGHEAD_NS + "}"
MSGHEAD_TAG = _M + "MsgHead"
_HEADER_TAGS = [MSGHEAD_TAG] + [
    f"{{{ns}}}{standard.root}" for ns in sorted(STANDALONE_NAMESPACES) if (standard := standard_for(ns)) is not None
]
_HEADER_SET = frozenset(_HEADER_TAGS)


def namespace_of(element: Element) -> str:
    tag = element.tag
    return tag[1 : tag.index("}")] if isinstance(tag, str) and tag[0] == "{" else ""


def local_name(element: Element) -> str:
    tag = element.tag
    return tag[tag.index("}") + 1 :] if isinstance(tag, str) and tag[0] == "{" else str(tag)


def find_headers(root: Element) -> list[Element]:
    """Every outermost element that carries a routing header: the root itself, or those inside a wrapper
    (NAV's EI_fellesformat, a Conversation export), in document order."""
    if root.tag in _HEADER_SET:
        return [root]
    return [
        element for element in root.iter(*_HEADER_TAGS)
        if not any(ancestor.tag in _HEADER_SET for ancestor in element.iterancestors())
    ]


def content_parts(msghead: Element) -> list[tuple[int, Element]]:
    """The elements inside MsgHead's Document/RefDoc/Content, with their Document's position (1-based)."""
    parts: list[tuple[int, Element]] = []
    index = 0
    for document in msghead:
        if document.tag != _M + "Document":
            continue
        index += 1
        for refdoc in document:
            if refdoc.tag == _M + "RefDoc":
                for content in refdoc:
                    if content.tag == _M + "Content":
                        parts.extend((index, child) for child in content if isinstance(child.tag, str))
    return parts


def read_header(element: Element) -> RoutingHeader:
    namespace = namespace_of(element)
    data = _read_msghead(element) if namespace == MSGHEAD_NS else _read_standalone(element, namespace)
    return RoutingHeader.model_validate(data)


# --- small readers -------------------------------------------------------------------------------------------


def _text(element: Element) -> str | None:
    text = element.text
    if text is None:
        return None
    return text.strip() or None


def _value(element: Element) -> str | None:
    value = element.get("V")
    return value.strip() or None if value is not None else None


def _coded(element: Element) -> Data:
    return {"code": _value(element), "display_name": element.get("DN"), "system": element.get("S")}


def _person_name(given: str | None, family: str | None) -> str | None:
    return " ".join(p for p in (given, family) if p) or None


# --- MsgHead -------------------------------------------------------------------------------------------------

_MSGINFO, _DOCUMENT, _REFDOC, _CONTENT = (_M + n for n in ("MsgInfo", "Document", "RefDoc", "Content"))
_ORGANISATION, _ORGANISATION_NAME, _PROFESSIONAL = (
    _M + n for n in ("Organisation", "OrganisationName", "HealthcareProfessional"))
_IDENT, _ID, _TYPE_ID, _FAMILY, _GIVEN = (_M + n for n in ("Ident", "Id", "TypeId", "FamilyName", "GivenName"))
_TYPE, _ACK, _CONVERSATION, _SENDER, _RECEIVER, _PATIENT = (
    _M + n for n in ("Type", "Ack", "ConversationRef", "Sender", "Receiver", "Patient"))
_PARENT, _CONVERSATION_ID = _M + "RefToParent", _M + "RefToConversation"
_MSGINFO_TEXT = {_M + "MIGversion": "mig_version", _M + "GenDate": "gen_date", _M + "MsgId": "msg_id"}
_REFDOC_TEXT = {_M + "MimeType": "mime_type", _M + "Description": "description", _M + "FileReference": "file_reference"}
_REFDOC_VALUE = {_M + "MsgType": "msg_type", _M + "IssueDate": "issue_date"}
# Enum members looked up once: an Enum class attribute costs a descriptor call on every access.
_ORGANISATION_LEVEL, _DEPARTMENT_LEVEL, _PROFESSIONAL_LEVEL = (
    LevelKind.ORGANISATION, LevelKind.DEPARTMENT, LevelKind.HEALTHCARE_PROFESSIONAL)


def _read_msghead(msghead: Element) -> Data:
    data: Data = {"standard": "MsgHead", "version": "1.2", "namespace": MSGHEAD_NS}
    documents: list[Data] = []
    for child in msghead:
        if child.tag == _MSGINFO:
            _read_msginfo(child, data)
        elif child.tag == _DOCUMENT:
            documents.extend(_refdoc(refdoc, len(documents) + 1) for refdoc in child if refdoc.tag == _REFDOC)
    data["documents"] = documents
    return data


def _read_msginfo(info: Element, data: Data) -> None:
    for child in info:
        tag = child.tag
        key = _MSGINFO_TEXT.get(tag)
        if key is not None:
            data.setdefault(key, _text(child))
        elif tag == _TYPE:
            data.setdefault("message_type", _coded(child))
        elif tag in (_SENDER, _RECEIVER):
            key = "sender" if tag == _SENDER else "receiver"
            if key not in data:
                for organisation in child:
                    if organisation.tag == _ORGANISATION:
                        data[key] = {"levels": _msghead_levels(organisation)}
                        break
        elif tag == _PATIENT:
            given, family, idents = _msghead_person(child)
            data.setdefault("patient", {"name": _person_name(given, family), "idents": idents})
        elif tag == _ACK:
            data.setdefault("ack", _value(child))
        elif tag == _CONVERSATION:
            reference: Data = {}
            for ref in child:
                if ref.tag == _PARENT:
                    reference.setdefault("ref_to_parent", _text(ref))
                elif ref.tag == _CONVERSATION_ID:
                    reference.setdefault("ref_to_conversation", _text(ref))
            data.setdefault("conversation_ref", reference)


def _msghead_ident(ident: Element, idents: list[Data]) -> None:
    identifier = kind = None
    for child in ident:
        tag = child.tag
        if tag == _ID:
            identifier = identifier or _text(child)
        elif tag == _TYPE_ID:
            kind = kind or _value(child)
    if identifier:
        idents.append({"id": identifier, "type": kind})


def _msghead_person(element: Element) -> tuple[str | None, str | None, list[Data]]:
    given = family = None
    idents: list[Data] = []
    for child in element:
        tag = child.tag
        if tag == _IDENT:
            _msghead_ident(child, idents)
        elif tag == _GIVEN:
            given = given or _text(child)
        elif tag == _FAMILY:
            family = family or _text(child)
    return given, family, idents


def _msghead_levels(organisation: Element) -> list[Data]:
    """Organisation, its sub-organisations and the professional at each level, outermost first."""
    levels: list[Data] = []
    kind = _ORGANISATION_LEVEL
    current: Element | None = organisation
    while current is not None:
        name = sub = professional = None
        idents: list[Data] = []
        for child in current:
            tag = child.tag
            if tag == _IDENT:
                _msghead_ident(child, idents)
            elif tag == _ORGANISATION_NAME:
                name = name or _text(child)
            elif tag == _ORGANISATION:
                sub = child if sub is None else sub
            elif tag == _PROFESSIONAL:
                professional = child if professional is None else professional
        levels.append({"kind": kind, "name": name, "idents": idents})
        if professional is not None:
            given, family, person_idents = _msghead_person(professional)
            levels.append({"kind": _PROFESSIONAL_LEVEL, "name": _person_name(given, family), "idents": person_idents})
        current, kind = sub, _DEPARTMENT_LEVEL
    return levels


def _refdoc(refdoc: Element, index: int) -> Data:
    data: Data = {"index": index}
    for child in refdoc:
        tag = child.tag
        key = _REFDOC_TEXT.get(tag)
        if key is not None:
            data.setdefault(key, _text(child))
        elif (key := _REFDOC_VALUE.get(tag)) is not None:
            data.setdefault(key, _value(child))
        elif tag == _CONTENT and "content_namespace" not in data:
            inline = next((c for c in child if isinstance(c.tag, str)), None)
            if inline is not None:
                data["content_namespace"] = namespace_of(inline)
                data["size"] = _base64_size(inline)
    return data


def _base64_size(element: Element) -> int | None:
    """Decoded size of a Base64Container, from its text length, without decoding it."""
    standard = standard_for(namespace_of(element))
    if standard is None or standard.role is not Role.ATTACHMENT:
        return None
    stripped = "".join("".join(element.itertext()).split())
    return len(stripped) * 3 // 4 - stripped[-2:].count("=")


# --- standalone KITH documents ---------------------------------------------------------------------------------

# The header fields a standalone document carries directly under its root, by local name.
_HEADER_FIELDS = {"Type": "message_type", "MsgType": "message_type", "MIGversion": "mig_version",
                  "GenDate": "gen_date", "MsgId": "msg_id", "Id": "msg_id", "Status": "apprec_status"}
# A report (Svarrapport, Epikrise) goes from the service provider to the requester; a request (Henvisning 1.x,
# Rekvisisjon) from the requester to the service provider. Copy receivers are CopyDest in both.
_REPORT_BODIES = ("ServReport", "ServRprt")
_REQUEST_BODIES = ("ServReq",)
_BODY_PARTS = ("CopyDest", "ServProvider", "Requester", "MsgDescr", "Patient")
_PATIENT_PARTS = ("Name", "OffId", "TypeOffId")
_APPREC_PARTS = ("Sender", "Receiver", "OriginalMsgId")


@dataclass(frozen=True, slots=True)
class _Kith:
    """The tags of one KITH standalone namespace, computed once: each reader compares whole tags, which costs
    less than taking every child's local name."""

    HCP: str
    Inst: str
    HCProf: str
    Name: str
    Id: str
    TypeId: str
    Type: str
    AdditionalId: str
    Dept: str
    HCPerson: str
    root_names: dict[str, str]  # tag -> local name, of the root's children the reader looks at
    body_names: dict[str, str]  # likewise under ServReport/ServRprt/ServReq
    patient_names: dict[str, str]


@cache
def _kith(namespace: str) -> _Kith:
    def tags(*names: str) -> dict[str, str]:
        return {"{" + namespace + "}" + name: name for name in names}

    is_apprec = namespace in (APPREC_10_NS, APPREC_11_NS)
    root_fields = [n for n, key in _HEADER_FIELDS.items() if key != "apprec_status" or is_apprec]
    return _Kith(
        **{name: "{" + namespace + "}" + name for name in _Kith.__slots__ if not name.endswith("_names")},
        root_names=tags(*root_fields, *(_APPREC_PARTS if is_apprec else ()), *_REPORT_BODIES, *_REQUEST_BODIES),
        body_names=tags(*_BODY_PARTS), patient_names=tags(*_PATIENT_PARTS),
    )


def _read_standalone(root: Element, namespace: str) -> Data:
    standard = standard_for(namespace)
    assert standard is not None, namespace  # find_headers only yields known standalone roots
    tags = _kith(namespace)
    names = tags.root_names
    data: Data = {"standard": standard.name, "version": standard.version, "namespace": namespace}
    body: Data = {}
    for child in root:
        name = names.get(child.tag)
        if name is None:
            continue
        key = _HEADER_FIELDS.get(name)
        if key in ("message_type", "apprec_status"):
            data.setdefault(key, _coded(child))
        elif key == "gen_date":
            data.setdefault(key, _text(child) or _value(child))  # text in AppRec, V attribute in older standards
        elif key is not None:
            data.setdefault(key, _text(child))
        elif name in ("Sender", "Receiver"):  # AppRec only (see _kith)
            data.setdefault(name.lower(), _kith_party(child, tags))
        elif name == "OriginalMsgId":
            data.setdefault("original_msg_id", next((_text(c) for c in child if c.tag == tags.Id), None))
        elif not body:
            body = _standalone_body(child, tags)
            body["is_report"] = name in _REPORT_BODIES
    if body:
        provider, requester = body.get("ServProvider"), body.get("Requester")
        data["sender"] = provider if body["is_report"] else requester
        data["receiver"] = requester if body["is_report"] else provider
        data["copy_receivers"] = [c for c in body["CopyDest"] if c is not None]
        data["service_description"] = body.get("MsgDescr")
        data["patient"] = body.get("Patient")
    return data


def _standalone_body(body: Element, tags: _Kith) -> Data:
    names = tags.body_names
    found: Data = {"CopyDest": []}
    for child in body:
        name = names.get(child.tag)
        if name == "CopyDest":
            found["CopyDest"].append(_kith_party(child, tags))
        elif name is None or name in found:
            continue
        elif name == "MsgDescr":
            found[name] = _coded(child)
        elif name == "Patient":
            patient: Data = {}
            for part in child:
                part_name = tags.patient_names.get(part.tag)
                if part_name is None or part_name in patient:
                    continue
                patient[part_name] = _value(part) if part_name == "TypeOffId" else _text(part)
            off_id = patient.get("OffId")
            found[name] = {"name": patient.get("Name"),
                           "idents": [{"id": off_id, "type": patient.get("TypeOffId")}] if off_id else []}
        else:
            found[name] = _kith_party(child, tags)
    return found


def _kith_party(holder: Element, tags: _Kith) -> Data | None:
    """A KITH party: HCP holding an institution (with departments and persons) or a lone professional."""
    hcp = next((child for child in holder if child.tag == tags.HCP), None)
    if hcp is None:
        return None
    levels: list[Data] = []
    for child in hcp:
        if child.tag == tags.Inst:
            _kith_levels(child, tags, LevelKind.ORGANISATION, levels)
        elif child.tag == tags.HCProf:
            _kith_levels(child, tags, LevelKind.HEALTHCARE_PROFESSIONAL, levels)
    return {"levels": levels} if levels else None


def _kith_levels(element: Element, tags: _Kith, kind: LevelKind, levels: list[Data]) -> None:
    """Adds the element as one level, followed by its departments and then its persons."""
    name = identifier = id_type = None
    additional: list[Data] = []
    departments: list[Element] = []
    persons: list[Element] = []
    for child in element:
        tag = child.tag
        if tag == tags.Name:
            name = name or _text(child)
        elif tag == tags.Id:
            identifier = identifier or _text(child)
        elif tag == tags.TypeId:
            id_type = id_type or _value(child)
        elif tag == tags.AdditionalId:
            extra_id = extra_type = None
            for part in child:
                if part.tag == tags.Id:
                    extra_id = extra_id or _text(part)
                elif part.tag == tags.Type:
                    extra_type = extra_type or _value(part)
            if extra_id:
                additional.append({"id": extra_id, "type": extra_type})
        elif tag == tags.Dept:
            departments.append(child)
        elif tag == tags.HCPerson:
            persons.append(child)
    idents = [{"id": identifier, "type": id_type}, *additional] if identifier else additional
    levels.append({"kind": kind, "name": name, "idents": idents})
    for department in departments:
        _kith_levels(department, tags, LevelKind.DEPARTMENT, levels)
    for person in persons:
        _kith_levels(person, tags, LevelKind.HEALTHCARE_PROFESSIONAL, levels)
