"""The routing header: who sent a message, to whom, what it is, and which documents it carries.

Read from a MsgHead envelope or from the header a standalone KITH document (Svarrapport, Epikrise 1.x,
Henvisning 1.x, Rekvisisjon, AppRec) carries itself. Patient data is kept out of `repr` so that it never reaches
a log line by accident.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field

HER = "HER"


class CodedValue(BaseModel):
    """A KITH coded value (CS/CV): the code `V`, its display name `DN` and code system `S`."""

    model_config = ConfigDict(frozen=True)

    code: str | None = None
    display_name: str | None = None
    system: str | None = None


class Ident(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    type: str | None = None  # code from 9051/8116 etc.: HER, ENH, HPR, FNR, DNR, LAV, ...


class LevelKind(StrEnum):
    ORGANISATION = "organisation"
    DEPARTMENT = "department"
    HEALTHCARE_PROFESSIONAL = "healthcare_professional"


class PartyLevel(BaseModel):
    """One level of the organisation hierarchy: an organisation, one of its departments, or a person in it."""

    model_config = ConfigDict(frozen=True)

    kind: LevelKind
    name: str | None = None
    idents: tuple[Ident, ...] = ()

    @property
    def her_id(self) -> str | None:
        for ident in self.idents:
            if ident.type == HER:
                return ident.id
        return None


class Party(BaseModel):
    """A sender or receiver as the hierarchy the message gives, outermost organisation first."""

    model_config = ConfigDict(frozen=True)

    levels: tuple[PartyLevel, ...]

    @property
    def her_id(self) -> str | None:
        """The HER-id the message is addressed to: the deepest level that has one."""
        for level in reversed(self.levels):
            if her_id := level.her_id:
                return her_id
        return None

    @property
    def organisation_her_id(self) -> str | None:
        return next((level.her_id for level in self.levels if level.her_id), None)

    @property
    def name(self) -> str | None:
        return next((level.name for level in self.levels if level.name), None)


class ConversationRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    ref_to_parent: str | None = None
    ref_to_conversation: str | None = None


class Patient(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str | None = None
    idents: tuple[Ident, ...] = ()


class RefDoc(BaseModel):
    """One Document/RefDoc of a MsgHead: a business document, an attachment or a reference to a file."""

    model_config = ConfigDict(frozen=True)

    index: int
    msg_type: str | None = None  # A (attachment), REF (reference), XML (XML instance)
    mime_type: str | None = None
    description: str | None = None
    issue_date: str | None = None
    content_namespace: str | None = None  # namespace of the inline element, when Content holds XML
    file_reference: str | None = None
    size: int | None = None  # decoded bytes of an inline base64 attachment

    @property
    def inline(self) -> bool:
        return self.file_reference is None


class RoutingHeader(BaseModel):
    model_config = ConfigDict(frozen=True)

    standard: str
    version: str
    namespace: str
    message_type: CodedValue | None = None
    mig_version: str | None = None
    gen_date: str | None = None
    msg_id: str | None = None
    ack: str | None = None
    conversation_ref: ConversationRef | None = None
    sender: Party | None = None
    receiver: Party | None = None
    copy_receivers: tuple[Party, ...] = ()
    patient: Patient | None = Field(default=None, repr=False)
    documents: tuple[RefDoc, ...] = ()
    service_description: CodedValue | None = None  # ServReport/ServReq MsgDescr: MBIO, KKL, RTG, ...
    apprec_status: CodedValue | None = None  # AppRec only: 1 OK, 2 Avvist, 3 OK feil i delmelding
    original_msg_id: str | None = None  # AppRec only: the id of the message it answers

    @property
    def sender_her_id(self) -> str | None:
        return self.sender.her_id if self.sender else None

    @cached_property
    def receiver_her_ids(self) -> list[str]:
        """The receiver and every copy receiver that has a HER-id, in order, without repeats."""
        parties = ([self.receiver] if self.receiver else []) + list(self.copy_receivers)
        return list(dict.fromkeys(p.her_id for p in parties if p.her_id))

    @property
    def is_apprec(self) -> bool:
        """An application receipt: a standalone AppRec, or a document whose message function is APPREC."""
        return self.standard == "AppRec" or (self.message_type is not None and self.message_type.code == "APPREC")

    @property
    def business_namespace(self) -> str:
        """The namespace that says what the message is: the first XML document in MsgHead, or the document's own."""
        for doc in self.documents:
            if doc.content_namespace and doc.msg_type == "XML":
                return doc.content_namespace
        return self.namespace
