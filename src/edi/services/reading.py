"""What the backbone reads from a document after ingress, in one place: the routing facts the router and the
mailbox need (`routing_facts`, carried on the events by the writers that parsed the document already) and, for
a document read again, its GenDate (mailboxes are ordered by it) and, for an AppRec, the answer it gives
(status, errors, and which message it answers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from edi.core.extract import Element, find_headers, local_name, read_header
from edi.core.header import RoutingHeader
from edi.core.kinds import MessageKind
from edi.core.parsing import parse_xml
from edi.core.problems import DocumentRefused
from edi.core.rules import parse_kith_datetime
from edi.events import AppRecAnswer, AppRecErrorDetail, RoutingFacts


@dataclass(frozen=True, slots=True)
class Delivered:
    header: RoutingHeader | None
    gen_date: datetime | None
    answer: AppRecAnswer | None  # set when the document is an AppRec naming its status and original


def routing_facts(header: RoutingHeader, apprec_errors: Sequence[AppRecErrorDetail]) -> RoutingFacts:
    """The facts of a document from its routing header and, for an AppRec, the Error elements of the header's
    element (which the routing header does not hold)."""
    kind = MessageKind.of(header)
    answered = _answered(header)
    answer = None if answered is None else AppRecAnswer(
        status=answered[0], original_msg_id=answered[1], errors=list(apprec_errors))
    return RoutingFacts(
        message_function=kind.message_function, service_description=kind.service_description,
        is_apprec=header.is_apprec,
        gen_date=parse_kith_datetime(header.gen_date) if header.gen_date else None,
        apprec_answer=answer,
        # What the router's attachment handling acts on: inline attachments to offload, FileReferences to list.
        has_attachments=any(d.size is not None or d.file_reference for d in header.documents),
    )


def answers(header: RoutingHeader) -> bool:
    """Whether the document is an AppRec that names its status and the message it answers."""
    return _answered(header) is not None


def _answered(header: RoutingHeader) -> tuple[str, str] | None:
    """An AppRec's status and the MsgId it answers, when it names both."""
    status = header.apprec_status.code if header.apprec_status else None
    if header.is_apprec and status and header.original_msg_id:
        return status, header.original_msg_id
    return None


def read_facts(document: bytes) -> tuple[RoutingHeader, RoutingFacts] | None:
    """The routing header and facts of a document, read from it; None when it has no readable routing header."""
    try:
        elements = find_headers(parse_xml(document))
    except DocumentRefused:
        return None
    if not elements:
        return None
    header = read_header(elements[0])
    return header, routing_facts(header, _apprec_errors(elements[0]) if answers(header) else ())


def ingress_facts(header: RoutingHeader, document: bytes) -> RoutingFacts:
    """The facts of a document ingress has validated, from the routing header it holds. Only an answering AppRec
    is read once more, for its Error elements: one parse of a small document here spares the router and the
    mailbox one each."""
    read = read_facts(document) if answers(header) else None
    return routing_facts(header, ()) if read is None else read[1]


def read_delivered(document: bytes) -> Delivered:
    read = read_facts(document)
    if read is None:
        return Delivered(None, None, None)  # the router delivered it, so it was readable; stored as it is
    header, facts = read
    return Delivered(header, facts.gen_date, facts.apprec_answer)


def _apprec_errors(element: Element) -> list[AppRecErrorDetail]:
    return [
        AppRecErrorDetail(code=child.get("V", ""), description=child.get("OT") or child.get("DN") or "")
        for child in element
        if local_name(child) == "Error"
    ]
