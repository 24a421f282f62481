"""Business rules that run after the schemas: what a schema cannot say but a receiver depends on.

Each rule is a small function over the routing header (and, for attachments, the envelope element) returning the
problems it finds, each under its own stable code. Rules whose finding the published schemas accept (a HER-id
that is missing or not a number, a national identity number with wrong check digits) report warnings by default:
the message is still a valid document, routing refuses what it cannot address (E21), and the receiver answers
patient errors itself (E31). An operator can promote any rule's code to an error (ValidatorOptions.error_codes).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from lxml import etree

from edi.core.codelists import message_functions
from edi.core.errors import Code
from edi.core.extract import namespace_of
from edi.core.header import RoutingHeader
from edi.core.national_id import is_valid_national_id
from edi.core.problems import Problem, problem
from edi.core.standards import MSGHEAD_NS, STANDARDS, Role, standard_for

NORWAY = ZoneInfo("Europe/Oslo")
MAX_MSGID_LENGTH = 100


@dataclass(frozen=True, slots=True)
class RuleContext:
    now: datetime
    clock_skew: timedelta = timedelta(minutes=5)


# The elements inside MsgHead's RefDoc/Content with their Document's position; empty for standalone documents.
ContentParts = Sequence[tuple[int, etree._Element]]
Rule = Callable[[RoutingHeader, ContentParts, RuleContext], Iterable[Problem]]


def msg_id_present_and_short(header: RoutingHeader, _: ContentParts, __: RuleContext) -> Iterable[Problem]:
    if not header.msg_id:
        yield problem(Code.MSGID_MISSING, path=_path(header, "MsgId"))
    elif len(header.msg_id) > MAX_MSGID_LENGTH:
        yield problem(Code.MSGID_TOO_LONG, length=len(header.msg_id), path=_path(header, "MsgId"))


def gen_date_not_in_future(header: RoutingHeader, _: ContentParts, context: RuleContext) -> Iterable[Problem]:
    if not header.gen_date:
        return
    generated = parse_kith_datetime(header.gen_date)
    if generated is None:
        yield problem(Code.GENDATE_INVALID, gen_date=header.gen_date, path=_path(header, "GenDate"))
    elif generated > context.now + context.clock_skew:
        yield problem(
            Code.GENDATE_IN_FUTURE, gen_date=header.gen_date, skew=int(context.clock_skew.total_seconds() // 60),
            path=_path(header, "GenDate"),
        )


def her_ids_present_and_numeric(header: RoutingHeader, _: ContentParts, __: RuleContext) -> Iterable[Problem]:
    sender, receiver = header.sender_her_id, header.receiver.her_id if header.receiver else None
    if sender is None:
        yield problem(Code.SENDER_HERID_MISSING)
    if receiver is None:
        yield problem(Code.RECEIVER_HERID_MISSING, role="receiver", role_nb="Mottaker")
    roles: list[tuple[str, str, str | None]] = [
        ("sender", "avsender", sender), ("receiver", "mottaker", receiver),
        *(("copy receiver", "kopimottaker", copy.her_id) for copy in header.copy_receivers),
    ]
    for role, role_nb, her_id in roles:
        if her_id is not None and not her_id.isdigit():
            yield problem(Code.HERID_NOT_NUMERIC, role=role, role_nb=role_nb, her_id=her_id)


def message_type_known(header: RoutingHeader, _: ContentParts, __: RuleContext) -> Iterable[Problem]:
    if header.namespace != MSGHEAD_NS:
        return  # standalone documents use their own type code lists, which their schemas enforce
    code = header.message_type.code if header.message_type else None
    if code is not None and code not in message_functions():
        yield problem(Code.TYPE_UNKNOWN, type=code, path="/MsgHead/MsgInfo/Type/@V")


_MIG = re.compile(r"v?(?P<version>\d+\.\d+)?\s*(?P<date>\d{4}-\d{2}-\d{2})?", re.IGNORECASE)


# The MIGversion each header's namespace is normally sent with ("v1.2 2006-05-24"), which needs no further look.
_USUAL_MIG = {
    s.namespace: f"v{s.version} {s.namespace_date}"
    for s in STANDARDS if s.role in (Role.ENVELOPE, Role.STANDALONE) and s.namespace_date
}


def mig_version_matches_namespace(header: RoutingHeader, _: ContentParts, __: RuleContext) -> Iterable[Problem]:
    if header.mig_version == _USUAL_MIG.get(header.namespace):
        return
    standard = standard_for(header.namespace)
    if not header.mig_version or standard is None:
        return
    match = _MIG.search(header.mig_version)
    found_version = match.group("version") if match else None
    found_date = match.group("date") if match else None
    path = _path(header, "MIGversion")
    expected_date = standard.namespace_date
    if found_date and expected_date and found_date != expected_date:
        yield problem(
            Code.MIGVERSION_DATE_MISMATCH, mig=header.mig_version, found=found_date, expected=expected_date,
            standard=standard.name, path=path,
        )
    elif found_version and found_version != standard.version:
        yield problem(
            Code.MIGVERSION_MISMATCH, mig=header.mig_version, found=found_version, standard=standard.name,
            version=standard.version, path=path,
        )


def attachments_decode(header: RoutingHeader, parts: ContentParts, _: RuleContext) -> Iterable[Problem]:
    for index, container in parts:
        standard = standard_for(namespace_of(container))
        if standard is None or standard.role is not Role.ATTACHMENT:
            continue
        text = "".join("".join(container.itertext()).split())
        try:
            binascii.a2b_base64(text, strict_mode=True)
        except binascii.Error as exc:
            yield problem(Code.BASE64_INVALID, index=index, detail=str(exc), line=container.sourceline)


_NATIONAL_ID_TYPES = {"FNR": ("national identity number", "fødselsnummer"), "DNR": ("D-number", "D-nummer")}


def national_ids_valid(header: RoutingHeader, _: ContentParts, __: RuleContext) -> Iterable[Problem]:
    if header.patient is None:
        return
    for ident in header.patient.idents:
        kind = _NATIONAL_ID_TYPES.get(ident.type or "")
        if kind and not is_valid_national_id(ident.id):
            yield problem(Code.NATIONAL_ID_INVALID, kind=kind[0], kind_nb=kind[1])  # never echo the number


RULES: tuple[Rule, ...] = (
    msg_id_present_and_short,
    gen_date_not_in_future,
    her_ids_present_and_numeric,
    message_type_known,
    mig_version_matches_namespace,
    attachments_decode,
    national_ids_valid,
)


def run_rules(header: RoutingHeader, parts: ContentParts, context: RuleContext) -> list[Problem]:
    return [found for rule in RULES for found in rule(header, parts, context)]


def parse_kith_datetime(value: str) -> datetime | None:
    """An xs:dateTime or xs:date; without a zone it is Norwegian local time, as the standards intend."""
    text = value.strip()
    try:
        parsed = (datetime.fromisoformat(text) if "T" in text
                  else datetime.combine(date.fromisoformat(text), datetime.min.time()))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=NORWAY)


def _path(header: RoutingHeader, name: str) -> str:
    if header.namespace == MSGHEAD_NS:
        return f"/MsgHead/MsgInfo/{name}"
    root = "AppRec" if header.standard == "AppRec" else "Message"
    return f"/{root}/{'Id' if name == 'MsgId' and root == 'AppRec' else name}"
