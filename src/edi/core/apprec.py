"""Building application receipts (AppRec 1.0 and 1.1) in answer to a received message.

The receipt goes back to the original sender: its Receiver is the original Sender, its Sender the original
Receiver (or the party the caller names, such as the messaging service itself), and OriginalMsgId carries the
original's type, issue date and id. An AppRec is never sent in answer to an AppRec.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from lxml import etree

from edi.core.errors import APPREC_CODE_TEXT
from edi.core.header import HER, Ident, LevelKind, Party, PartyLevel, RoutingHeader
from edi.core.problems import Problem
from edi.core.rules import NORWAY, parse_kith_datetime
from edi.core.standards import APPREC_10_NS, APPREC_11_NS

AppRecVersion = Literal["1.0", "1.1"]

_NAMESPACES: dict[str, tuple[str, str]] = {
    "1.0": (APPREC_10_NS, "v1.0 2004-11-21"),
    "1.1": (APPREC_11_NS, "v1.1 2012-02-15"),
}
ERROR_CODE_SYSTEM = "2.16.578.1.12.4.1.1.8221"


class AppRecStatus(StrEnum):
    """Code system 8220."""

    OK = "1"
    AVVIST = "2"
    OK_FEIL_I_DELMELDING = "3"

    @property
    def display_name(self) -> str:
        return {"1": "OK", "2": "Avvist", "3": "OK, feil i delmelding"}[self.value]


@dataclass(frozen=True, slots=True)
class AppRecError:
    code: str  # from code list 8221 (or the code list `system` names)
    description: str  # free text for the sender's user, carried as the Error's OT
    system: str = ERROR_CODE_SYSTEM

    @classmethod
    def from_problem(cls, problem: Problem) -> AppRecError:
        return cls(code=problem.apprec_code.value, description=problem.message_nb)


class AppRecNotAllowed(ValueError):
    """The receipt cannot be built: an AppRec to an AppRec, a sender with no address, or status/errors that
    contradict each other."""


def build_apprec(
    original: RoutingHeader,
    status: AppRecStatus,
    errors: Sequence[AppRecError] = (),
    *,
    version: AppRecVersion = "1.1",
    sender: Party | None = None,
    apprec_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """The AppRec document (UTF-8 bytes) answering `original` with `status` and `errors`."""
    if original.standard == "AppRec" or (original.message_type and original.message_type.code == "APPREC"):
        raise AppRecNotAllowed("an AppRec is never answered with an AppRec")
    if status is AppRecStatus.OK and errors:
        raise AppRecNotAllowed("an OK AppRec carries no errors")
    if status is not AppRecStatus.OK and not errors:
        raise AppRecNotAllowed(f"an AppRec with status {status.display_name} needs at least one error")
    if original.sender is None or not original.sender.levels:
        raise AppRecNotAllowed("the original message names no sender to answer")
    from_party = sender or original.receiver
    if from_party is None or not from_party.levels:
        raise AppRecNotAllowed("no sender for the AppRec: the original has no receiver, so name one")

    moment = now or datetime.now(NORWAY)
    namespace, mig_version = _NAMESPACES[version]
    e = _Builder(namespace)
    root = e("AppRec")
    e.sub(root, "MsgType", V="APPREC", DN="Applikasjonskvittering")
    e.sub(root, "MIGversion", text=mig_version)
    e.sub(root, "GenDate", text=_xs_datetime(moment))
    e.sub(root, "Id", text=apprec_id or str(uuid.uuid4()))
    e.party(e.sub(root, "Sender"), from_party)
    e.party(e.sub(root, "Receiver"), original.sender)
    e.sub(root, "Status", V=status.value, DN=status.display_name)
    for error in errors:
        attributes = {"V": error.code, "S": error.system, "OT": error.description}
        text = APPREC_CODE_TEXT.get(error.code)
        if text:
            attributes["DN"] = text
        e.sub(root, "Error", **attributes)
    original_id = e.sub(root, "OriginalMsgId")
    message_type = original.message_type
    e.sub(original_id, "MsgType", **_coded(message_type.code if message_type else None,
                                             message_type.display_name if message_type else None))
    # A message refused for a broken GenDate or a missing MsgId still gets its receipt: the schema requires
    # both, so the receipt's own time and an empty id stand in for what the original did not say.
    issued = parse_kith_datetime(original.gen_date) if original.gen_date else None
    e.sub(original_id, "IssueDate", text=_xs_datetime(issued or moment))
    e.sub(original_id, "Id", text=original.msg_id or "")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


class _Builder:
    def __init__(self, namespace: str) -> None:
        self.ns = "{" + namespace + "}"
        self.nsmap = {None: namespace}

    def __call__(self, name: str) -> etree._Element:
        return etree.Element(self.ns + name, nsmap=self.nsmap)

    def sub(self, parent: etree._Element, name: str, *, text: str | None = None, **attributes: str) -> etree._Element:
        child = etree.SubElement(parent, self.ns + name, {k: v for k, v in attributes.items() if v is not None})
        if text is not None:
            child.text = text
        return child

    def party(self, holder: etree._Element, party: Party) -> None:
        """Party levels as AppRec's HCP: the organisation as Inst, departments as Dept, persons as HCPerson;
        a lone professional as HCProf."""
        hcp = self.sub(holder, "HCP")
        organisation = [lv for lv in party.levels if lv.kind is not LevelKind.HEALTHCARE_PROFESSIONAL]
        persons = [lv for lv in party.levels if lv.kind is LevelKind.HEALTHCARE_PROFESSIONAL]
        if not organisation:
            self.level(self.sub(hcp, "HCProf"), persons[-1])
            return
        institution = self.sub(hcp, "Inst")
        self.level(institution, organisation[0], extra_ids=False)
        for department in organisation[1:]:
            self.level(self.sub(institution, "Dept"), department)
        self.additional_ids(institution, organisation[0])
        for person in persons:
            self.level(self.sub(institution, "HCPerson"), person)

    def level(self, element: etree._Element, level: PartyLevel, *, extra_ids: bool = True) -> None:
        if level.name:
            self.sub(element, "Name", text=level.name)
        primary = _primary_ident(level)
        if primary is not None:
            self.sub(element, "Id", text=primary.id)
            self.sub(element, "TypeId", **_coded(primary.type, _IDENT_NAMES.get(primary.type or "")))
        if extra_ids:
            self.additional_ids(element, level)

    def additional_ids(self, element: etree._Element, level: PartyLevel) -> None:
        primary = _primary_ident(level)
        for ident in level.idents:
            if ident is not primary:
                additional = self.sub(element, "AdditionalId")
                self.sub(additional, "Id", text=ident.id)
                self.sub(additional, "Type", **_coded(ident.type, _IDENT_NAMES.get(ident.type or "")))


_IDENT_NAMES = {"HER": "HER-id", "ENH": "Organisasjonsnummeret i Enhetsregister", "HPR": "HPR-nummer"}


def _primary_ident(level: PartyLevel) -> Ident | None:
    """The HER-id leads, because it is what the receiver of the AppRec routes and matches on."""
    return next((i for i in level.idents if i.type == HER), level.idents[0] if level.idents else None)


def _coded(code: str | None, display_name: str | None) -> dict[str, str]:
    return {k: v for k, v in (("V", code), ("DN", display_name)) if v}


def _xs_datetime(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()
