"""Finding and reading the routing header in a parsed document (pure functions over lxml elements)."""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from edi.core.header import (
    CodedValue,
    ConversationRef,
    Ident,
    LevelKind,
    Party,
    PartyLevel,
    Patient,
    RefDoc,
    RoutingHeader,
)
from edi.core.standards import (
    APPREC_10_NS,
    APPREC_11_NS,
    MSGHEAD_NS,
    STANDALONE_NAMESPACES,
    Role,
    standard_for,
)

Element = etree._Element

_HEADER_TAGS = [f"{{{MSGHEAD_NS}}}MsgHead"] + [
    f"{{{ns}}}{standard.root}"
    for ns in sorted(STANDALONE_NAMESPACES)
    if (standard := standard_for(ns)) is not None
]


def namespace_of(element: Element) -> str:
    return etree.QName(element).namespace or ""


def find_headers(root: Element) -> list[Element]:
    """Every outermost element that carries a routing header: the root itself, or those inside a wrapper
    (NAV's EI_fellesformat, a Conversation export), in document order."""
    if _is_header(root):
        return [root]
    found: list[Element] = []
    for element in root.iter(*_HEADER_TAGS):
        if not any(_is_header(ancestor) for ancestor in element.iterancestors()):
            found.append(element)
    return found


def _is_header(element: Element) -> bool:
    tag = element.tag
    return isinstance(tag, str) and tag in _HEADER_SET


_HEADER_SET = frozenset(_HEADER_TAGS)


def content_parts(msghead: Element) -> list[Element]:
    """The business documents and attachments inside MsgHead's Document/RefDoc/Content."""
    return [
        child
        for content in msghead.iterfind(_CONTENT_PATH)
        for child in content
        if isinstance(child.tag, str)
    ]


_CONTENT_PATH = f"{{{MSGHEAD_NS}}}Document/{{{MSGHEAD_NS}}}RefDoc/{{{MSGHEAD_NS}}}Content"


def read_header(element: Element) -> RoutingHeader:
    namespace = namespace_of(element)
    if namespace == MSGHEAD_NS:
        return _read_msghead(element)
    return _read_standalone(element, namespace)


# --- small readers -------------------------------------------------------------------------------------------


class _Reader:
    """Child lookups within one namespace, so every path below reads like the standard's own names."""

    __slots__ = ("ns",)

    def __init__(self, namespace: str) -> None:
        self.ns = "{" + namespace + "}"

    def child(self, element: Element | None, name: str) -> Element | None:
        return None if element is None else element.find(self.ns + name)

    def children(self, element: Element | None, name: str) -> list[Element]:
        return [] if element is None else element.findall(self.ns + name)

    def text(self, element: Element | None, name: str) -> str | None:
        found = self.child(element, name)
        if found is None or found.text is None:
            return None
        return found.text.strip() or None

    def attr(self, element: Element | None, name: str, attribute: str = "V") -> str | None:
        found = self.child(element, name)
        return None if found is None else _clean(found.get(attribute))

    def coded(self, element: Element | None, name: str) -> CodedValue | None:
        found = self.child(element, name)
        if found is None:
            return None
        return CodedValue(code=_clean(found.get("V")), display_name=_clean(found.get("DN")), system=found.get("S"))

    def text_or_value(self, element: Element | None, name: str) -> str | None:
        """GenDate is element text in MsgHead and AppRec but a V attribute in the older KITH standards."""
        return self.text(element, name) or self.attr(element, name)


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


# --- MsgHead -------------------------------------------------------------------------------------------------

_M = _Reader(MSGHEAD_NS)


def _read_msghead(msghead: Element) -> RoutingHeader:
    info = _M.child(msghead, "MsgInfo")
    conversation = _M.child(info, "ConversationRef")
    receiver = _M.child(info, "Receiver")
    patient = _M.child(info, "Patient")
    return RoutingHeader(
        standard="MsgHead",
        version="1.2",
        namespace=MSGHEAD_NS,
        message_type=_M.coded(info, "Type"),
        mig_version=_M.text(info, "MIGversion"),
        gen_date=_M.text(info, "GenDate"),
        msg_id=_M.text(info, "MsgId"),
        ack=_M.attr(info, "Ack"),
        conversation_ref=None if conversation is None else ConversationRef(
            ref_to_parent=_M.text(conversation, "RefToParent"),
            ref_to_conversation=_M.text(conversation, "RefToConversation"),
        ),
        sender=_msghead_party(_M.child(_M.child(info, "Sender"), "Organisation")),
        receiver=_msghead_party(_M.child(receiver, "Organisation")),
        patient=None if patient is None else Patient(
            name=" ".join(p for p in (_M.text(patient, "GivenName"), _M.text(patient, "FamilyName")) if p) or None,
            idents=_msghead_idents(patient),
        ),
        documents=tuple(
            _refdoc(index, refdoc)
            for index, refdoc in enumerate(msghead.iterfind(f"{_M.ns}Document/{_M.ns}RefDoc"), start=1)
        ),
    )


def _msghead_idents(element: Element) -> tuple[Ident, ...]:
    return tuple(
        Ident(id=identifier, type=_M.attr(ident, "TypeId"))
        for ident in _M.children(element, "Ident")
        if (identifier := _M.text(ident, "Id"))
    )


def _msghead_party(organisation: Element | None) -> Party | None:
    if organisation is None:
        return None
    levels: list[PartyLevel] = []
    kind = LevelKind.ORGANISATION
    current: Element | None = organisation
    while current is not None:
        levels.append(PartyLevel(kind=kind, name=_M.text(current, "OrganisationName"), idents=_msghead_idents(current)))
        professional = _M.child(current, "HealthcareProfessional")
        if professional is not None:
            name = " ".join(p for p in (_M.text(professional, "GivenName"), _M.text(professional, "FamilyName")) if p)
            levels.append(PartyLevel(
                kind=LevelKind.HEALTHCARE_PROFESSIONAL, name=name or None, idents=_msghead_idents(professional),
            ))
        current = _M.child(current, "Organisation")
        kind = LevelKind.DEPARTMENT
    return Party(levels=tuple(levels))


def _refdoc(index: int, refdoc: Element) -> RefDoc:
    content = _M.child(refdoc, "Content")
    inline = None if content is None else next((c for c in content if isinstance(c.tag, str)), None)
    return RefDoc(
        index=index,
        msg_type=_M.attr(refdoc, "MsgType"),
        mime_type=_M.text(refdoc, "MimeType"),
        description=_M.text(refdoc, "Description"),
        issue_date=_M.attr(refdoc, "IssueDate"),
        content_namespace=None if inline is None else namespace_of(inline),
        file_reference=_M.text(refdoc, "FileReference"),
        size=None if inline is None else _base64_size(inline),
    )


def _base64_size(element: Element) -> int | None:
    """Decoded size of a Base64Container, from its text length, without decoding it."""
    standard = standard_for(namespace_of(element))
    if standard is None or standard.role is not Role.ATTACHMENT:
        return None
    text = "".join(element.itertext())
    stripped = "".join(text.split())
    return len(stripped) * 3 // 4 - stripped[-2:].count("=")


# --- standalone KITH documents ---------------------------------------------------------------------------------

# Which side of a service request or report is the sender: a report goes from the service provider to the
# requester; a request (henvisning, rekvisisjon) goes from the requester to the service provider.
_REPORT_BODIES = ("ServReport", "ServRprt")
_REQUEST_BODIES = ("ServReq",)


def _read_standalone(root: Element, namespace: str) -> RoutingHeader:
    standard = standard_for(namespace)
    assert standard is not None, namespace  # find_headers only yields known standalone roots
    r = _Reader(namespace)
    if namespace in (APPREC_10_NS, APPREC_11_NS):
        original = r.child(root, "OriginalMsgId")
        return RoutingHeader(
            standard=standard.name, version=standard.version, namespace=namespace,
            message_type=r.coded(root, "MsgType"),
            mig_version=r.text(root, "MIGversion"),
            gen_date=r.text_or_value(root, "GenDate"),
            msg_id=r.text(root, "Id"),
            sender=_kith_party(r, r.child(root, "Sender")),
            receiver=_kith_party(r, r.child(root, "Receiver")),
            apprec_status=r.coded(root, "Status"),
            original_msg_id=r.text(original, "Id"),
        )
    body, is_report = _standalone_body(r, root)
    provider = _kith_party(r, r.child(body, "ServProvider"))
    requester = _kith_party(r, r.child(body, "Requester"))
    patient = r.child(body, "Patient")
    return RoutingHeader(
        standard=standard.name, version=standard.version, namespace=namespace,
        message_type=r.coded(root, "Type"),
        mig_version=r.text(root, "MIGversion"),
        gen_date=r.text_or_value(root, "GenDate"),
        msg_id=r.text(root, "MsgId"),
        sender=provider if is_report else requester,
        receiver=requester if is_report else provider,
        copy_receivers=tuple(
            party for copy in r.children(body, "CopyDest") if (party := _kith_party(r, copy)) is not None
        ),
        patient=None if patient is None else Patient(
            name=r.text(patient, "Name"),
            idents=tuple(
                Ident(id=off_id, type=r.attr(patient, "TypeOffId")) for off_id in [r.text(patient, "OffId")] if off_id
            ),
        ),
        service_description=r.coded(body, "MsgDescr"),
    )


def _standalone_body(r: _Reader, root: Element) -> tuple[Element | None, bool]:
    for name in _REPORT_BODIES:
        found = r.child(root, name)
        if found is not None:
            return found, True
    for name in _REQUEST_BODIES:
        found = r.child(root, name)
        if found is not None:
            return found, False
    return None, True


def _kith_party(r: _Reader, holder: Element | None) -> Party | None:
    """A KITH party: HCP holding an institution (with departments and persons) or a lone professional."""
    hcp = r.child(holder, "HCP")
    if hcp is None:
        return None
    levels: list[PartyLevel] = []
    institution = r.child(hcp, "Inst")
    if institution is not None:
        levels.append(_kith_level(r, institution, LevelKind.ORGANISATION))
        levels.extend(_kith_level(r, dept, LevelKind.DEPARTMENT) for dept in r.children(institution, "Dept"))
        levels.extend(
            _kith_level(r, person, LevelKind.HEALTHCARE_PROFESSIONAL) for person in r.children(institution, "HCPerson")
        )
    professional = r.child(hcp, "HCProf")
    if professional is not None:
        levels.append(_kith_level(r, professional, LevelKind.HEALTHCARE_PROFESSIONAL))
    return Party(levels=tuple(levels)) if levels else None


def _kith_level(r: _Reader, element: Element, kind: LevelKind) -> PartyLevel:
    idents: list[Ident] = []
    primary = r.text(element, "Id")
    if primary:
        idents.append(Ident(id=primary, type=r.attr(element, "TypeId")))
    idents.extend(
        Ident(id=identifier, type=r.attr(extra, "Type"))
        for extra in r.children(element, "AdditionalId")
        if (identifier := r.text(extra, "Id"))
    )
    return PartyLevel(kind=kind, name=r.text(element, "Name"), idents=tuple(idents))


def iter_base64_containers(msghead: Element) -> Iterator[tuple[int, Element]]:
    """Inline Base64Container attachments with their Document index (1-based), for the base64 rule."""
    for index, refdoc in enumerate(msghead.iterfind(f"{_M.ns}Document/{_M.ns}RefDoc"), start=1):
        content = _M.child(refdoc, "Content")
        if content is None:
            continue
        for child in content:
            if isinstance(child.tag, str):
                standard = standard_for(namespace_of(child))
                if standard is not None and standard.role is Role.ATTACHMENT:
                    yield index, child
