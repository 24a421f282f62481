"""What the mailbox reads from a delivered document: its GenDate (mailboxes are ordered by it) and, for an
AppRec, the answer it gives (status, errors, and which message it answers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from edi.core.extract import find_headers, local_name, read_header
from edi.core.header import RoutingHeader
from edi.core.parsing import parse_xml
from edi.core.problems import DocumentRefused
from edi.core.rules import parse_kith_datetime
from edi.events import AppRecErrorDetail
from edi.services.validator.admission import is_apprec


@dataclass(frozen=True, slots=True)
class AppRecAnswer:
    status: str  # code list 8220
    original_msg_id: str
    errors: tuple[AppRecErrorDetail, ...]


@dataclass(frozen=True, slots=True)
class Delivered:
    header: RoutingHeader | None
    gen_date: datetime | None
    answer: AppRecAnswer | None  # set when the document is an AppRec naming its status and original


def read_delivered(document: bytes) -> Delivered:
    try:
        elements = find_headers(parse_xml(document))
    except DocumentRefused:
        return Delivered(None, None, None)  # the router delivered it, so it was readable; stored as it is
    if not elements:
        return Delivered(None, None, None)
    header = read_header(elements[0])
    gen_date = parse_kith_datetime(header.gen_date) if header.gen_date else None
    answer = None
    if is_apprec(header) and header.apprec_status and header.apprec_status.code and header.original_msg_id:
        errors = tuple(
            AppRecErrorDetail(code=child.get("V", ""), description=child.get("OT") or child.get("DN") or "")
            for child in elements[0]
            if local_name(child) == "Error"
        )
        answer = AppRecAnswer(header.apprec_status.code, header.original_msg_id, errors)
    return Delivered(header, gen_date, answer)
