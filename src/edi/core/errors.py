"""The stable error-code catalogue: every problem the core reports has one of these codes.

A code never changes meaning once published: API errors, AppRecs, logs and metrics all carry it. Each maps to an
AppRec error code from code list 8221 (T01 not well-formed, T02 does not validate, T10 unsupported format, ...)
and has an English and a Norwegian text a sender's vendor can act on. `docs/error-codes.md` is generated from
this table (and a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"  # the message is refused
    WARNING = "warning"  # reported, the message is still accepted (an operator may promote it to an error)


class AppRecCode(StrEnum):
    """Code list 8221, the AppRec error codes (the subset a messaging service can detect)."""

    E10 = "E10"  # Ugyldig meldingsidentifikator
    E21 = "E21"  # Mottaker finnes ikke
    E31 = "E31"  # Pasientens fødselsnummer er feil
    T01 = "T01"  # Ikke XML / ikke 'well formed' / uleselig
    T02 = "T02"  # XML validerer ikke
    T10 = "T10"  # Støtter ikke meldingsformatet
    T99 = "T99"  # Annen feil på format
    X99 = "X99"  # Annen feil


APPREC_CODE_TEXT: dict[str, str] = {  # keyed by AppRecCode, a str
    AppRecCode.E10: "Ugyldig meldingsidentifikator",
    AppRecCode.E21: "Mottaker finnes ikke",
    AppRecCode.E31: "Pasientens fødselsnummer er feil",
    AppRecCode.T01: "Ikke XML / ikke 'well formed' / uleselig",
    AppRecCode.T02: "XML validerer ikke",
    AppRecCode.T10: "Støtter ikke meldingsformatet",
    AppRecCode.T99: "Annen feil på format",
    AppRecCode.X99: "Annen feil",
}


@dataclass(frozen=True, slots=True)
class ErrorDef:
    code: str
    apprec: AppRecCode
    severity: Severity
    en: str
    nb: str

    def format(self, **values: Any) -> tuple[str, str]:
        return self.en.format(**values), self.nb.format(**values)


class Code(StrEnum):
    EMPTY_DOCUMENT = "EDI-XML-001"
    TOO_LARGE = "EDI-XML-002"
    NOT_WELL_FORMED = "EDI-XML-003"
    BAD_ENCODING = "EDI-XML-004"
    DTD_FORBIDDEN = "EDI-XML-005"
    NO_ROUTING_HEADER = "EDI-HDR-001"
    HEADER_INCOMPLETE = "EDI-HDR-002"
    SEVERAL_MESSAGES = "EDI-HDR-003"
    SCHEMA_INVALID = "EDI-SCH-001"
    SCHEMA_NOT_INSTALLED = "EDI-SCH-002"
    MSGID_MISSING = "EDI-RUL-001"
    MSGID_TOO_LONG = "EDI-RUL-002"
    GENDATE_IN_FUTURE = "EDI-RUL-003"
    SENDER_HERID_MISSING = "EDI-RUL-004"
    RECEIVER_HERID_MISSING = "EDI-RUL-005"
    HERID_NOT_NUMERIC = "EDI-RUL-006"
    TYPE_UNKNOWN = "EDI-RUL-007"
    MIGVERSION_MISMATCH = "EDI-RUL-008"
    MIGVERSION_DATE_MISMATCH = "EDI-RUL-009"
    BASE64_INVALID = "EDI-RUL-010"
    NATIONAL_ID_INVALID = "EDI-RUL-011"
    GENDATE_INVALID = "EDI-RUL-012"
    OBJECT_UNKNOWN = "EDI-OBJ-001"
    OBJECT_UNAVAILABLE = "EDI-OBJ-002"
    OBJECT_NOT_SENDERS = "EDI-OBJ-003"
    OBJECT_RECEIVERS_MISSING = "EDI-OBJ-004"
    ATTACHMENTS_TOO_LARGE_INLINE = "EDI-OBJ-005"
    DUPLICATE_MSGID = "EDI-DUP-001"
    RECEIVER_UNKNOWN = "EDI-RTE-001"
    RECEIVER_CANNOT_CONSUME = "EDI-RTE-002"


_E, _W = Severity.ERROR, Severity.WARNING
A = AppRecCode

CATALOGUE: dict[Code, ErrorDef] = {
    d.code: d  # type: ignore[misc]
    for d in (
        ErrorDef(Code.EMPTY_DOCUMENT, A.T01, _E, "The document is empty.", "Dokumentet er tomt."),
        ErrorDef(
            Code.TOO_LARGE, A.T99, _E,
            "The document is {size} bytes, over the limit of {limit} bytes. Send large attachments through the "
            "attachment service and refer to them with RefDoc/FileReference.",
            "Dokumentet er {size} byte, over grensen på {limit} byte. Send store vedlegg via vedleggstjenesten og "
            "referer til dem med RefDoc/FileReference.",
        ),
        ErrorDef(
            Code.NOT_WELL_FORMED, A.T01, _E,
            "The document is not well-formed XML: {detail}.",
            "Dokumentet er ikke velformet XML: {detail}.",
        ),
        ErrorDef(
            Code.BAD_ENCODING, A.T01, _E,
            "The document's bytes do not match its declared encoding: {detail}. Declare the encoding the document "
            "is actually written in (UTF-8 is recommended).",
            "Dokumentets bytes stemmer ikke med deklarert tegnsett: {detail}. Deklarer tegnsettet dokumentet "
            "faktisk er skrevet i (UTF-8 anbefales).",
        ),
        ErrorDef(
            Code.DTD_FORBIDDEN, A.T99, _E,
            "The document has a DOCTYPE that {what}; health messages may not declare entities or refer to "
            "external DTDs. Remove the DOCTYPE.",
            "Dokumentet har en DOCTYPE som {what_nb}; helsemeldinger kan ikke deklarere entiteter eller vise til "
            "eksterne DTD-er. Fjern DOCTYPE.",
        ),
        ErrorDef(
            Code.NO_ROUTING_HEADER, A.T10, _W,
            "No routing header found: the document is neither a MsgHead envelope nor a standalone KITH message "
            "(root element {root}); it cannot be addressed to a receiver on its own.",
            "Fant ikke adresseringsinformasjon: dokumentet er verken en MsgHead eller en frittstående "
            "KITH-melding (rotelement {root}); det kan ikke adresseres til en mottaker alene.",
        ),
        ErrorDef(
            Code.HEADER_INCOMPLETE, A.X99, _E,
            "The routing header has no {what}.",
            "Adresseringsinformasjonen mangler {what_nb}.",
        ),
        ErrorDef(
            Code.SEVERAL_MESSAGES, A.X99, _W,
            "The file holds {count} messages; only the first is used for routing.",
            "Filen inneholder {count} meldinger; bare den første brukes til adressering.",
        ),
        ErrorDef(
            Code.SCHEMA_INVALID, A.T02, _E,
            "{part} does not validate against the schema for {standard}: {detail}",
            "{part_nb} validerer ikke mot skjemaet for {standard}: {detail}",
        ),
        ErrorDef(
            Code.SCHEMA_NOT_INSTALLED, A.T10, _W,
            "No schema is installed for namespace {namespace} ({part}); that part was not validated. Configure a "
            "schema directory (EDI_SCHEMA_DIRS or --schemas) holding its XSD.",
            "Det er ikke installert noe skjema for navnerommet {namespace} ({part_nb}); den delen er ikke "
            "validert. Angi en skjemakatalog (EDI_SCHEMA_DIRS eller --schemas) med XSD-en.",
        ),
        ErrorDef(
            Code.MSGID_MISSING, A.E10, _E,
            "The message has no message id (MsgId).", "Meldingen mangler meldingsidentifikator (MsgId).",
        ),
        ErrorDef(
            Code.MSGID_TOO_LONG, A.E10, _W,
            "The message id is {length} characters long; at most 100 are allowed.",
            "Meldingsidentifikatoren er {length} tegn lang; høyst 100 er tillatt.",
        ),
        ErrorDef(
            Code.GENDATE_IN_FUTURE, A.X99, _W,
            "GenDate {gen_date} lies in the future (more than {skew} minutes ahead of the service's clock).",
            "GenDate {gen_date} ligger fram i tid (mer enn {skew} minutter foran tjenestens klokke).",
        ),
        ErrorDef(
            Code.GENDATE_INVALID, A.X99, _W,
            "GenDate '{gen_date}' is not a date and time.", "GenDate '{gen_date}' er ikke et tidspunkt.",
        ),
        ErrorDef(
            Code.SENDER_HERID_MISSING, A.X99, _W,
            "The sender has no HER-id at any level; the receiver cannot answer it.",
            "Avsender har ingen HER-id på noe nivå; mottaker kan ikke svare.",
        ),
        ErrorDef(
            Code.RECEIVER_HERID_MISSING, A.E21, _W,
            "The {role} has no HER-id at any level, so the message cannot be delivered.",
            "{role_nb} har ingen HER-id på noe nivå, så meldingen kan ikke leveres.",
        ),
        ErrorDef(
            Code.HERID_NOT_NUMERIC, A.E21, _W,
            "The {role}'s HER-id '{her_id}' is not a number.", "HER-id '{her_id}' for {role_nb} er ikke et tall.",
        ),
        ErrorDef(
            Code.TYPE_UNKNOWN, A.T10, _W,
            "Message type '{type}' is not a code in code system 8279 (Meldingens funksjon).",
            "Meldingstype '{type}' er ikke en kode i kodeverk 8279 (Meldingens funksjon).",
        ),
        ErrorDef(
            Code.MIGVERSION_MISMATCH, A.T99, _W,
            "MIGversion '{mig}' names version {found}, but the namespace is {standard} {version}.",
            "MIGversion '{mig}' oppgir versjon {found}, men navnerommet er {standard} {version}.",
        ),
        ErrorDef(
            Code.MIGVERSION_DATE_MISMATCH, A.T99, _W,
            "MIGversion '{mig}' names the {found} edition, but the namespace is the {expected} edition of "
            "{standard}.",
            "MIGversion '{mig}' oppgir utgaven fra {found}, men navnerommet er utgaven fra {expected} av "
            "{standard}.",
        ),
        ErrorDef(
            Code.BASE64_INVALID, A.T99, _E,
            "Attachment {index} is not valid base64: {detail}.", "Vedlegg {index} er ikke gyldig base64: {detail}.",
        ),
        ErrorDef(
            Code.OBJECT_UNKNOWN, A.X99, _E,
            "Attachment {index} refers to {url}, which is not an object of this service.",
            "Vedlegg {index} viser til {url}, som ikke er et objekt i denne tjenesten.",
        ),
        ErrorDef(
            Code.OBJECT_UNAVAILABLE, A.X99, _E,
            "Attachment {index} refers to an object that cannot be fetched: {reason}.",
            "Vedlegg {index} viser til et objekt som ikke kan hentes: {reason}.",
        ),
        ErrorDef(
            Code.OBJECT_NOT_SENDERS, A.X99, _E,
            "Attachment {index} refers to an object uploaded by HER-id {owner}, not by the message's sender {sender}.",
            "Vedlegg {index} viser til et objekt lastet opp av HER-id {owner}, ikke av meldingens avsender {sender}.",
        ),
        ErrorDef(
            Code.OBJECT_RECEIVERS_MISSING, A.X99, _E,
            "Attachment {index} refers to an object that receiver(s) {missing} of the message may not fetch: upload "
            "it with every receiver of the message in ReceiverHerIds.",
            "Vedlegg {index} viser til et objekt som mottaker(e) {missing} av meldingen ikke kan hente: last det opp "
            "med alle meldingens mottakere i ReceiverHerIds.",
        ),
        ErrorDef(
            Code.ATTACHMENTS_TOO_LARGE_INLINE, A.T99, _E,
            "With its attachments inline the document would be {size} bytes, over the {limit} bytes a receiver that "
            "cannot read FileReference can take.",
            "Med vedleggene innebygd ville dokumentet bli {size} byte, over de {limit} byte en mottaker som ikke kan "
            "lese FileReference kan ta imot.",
        ),
        ErrorDef(
            Code.DUPLICATE_MSGID, A.E10, _E,
            "MsgId {msg_id} was already used by sender {sender} for a different document; a resubmission must be "
            "byte for byte the same, and a new message needs a new MsgId.",
            "MsgId {msg_id} er allerede brukt av avsender {sender} for et annet dokument; en ny innsending må være "
            "helt lik, og en ny melding trenger en ny MsgId.",
        ),
        ErrorDef(
            Code.RECEIVER_UNKNOWN, A.E21, _E,
            "Receiver {receiver} is unknown: {reason}.", "Mottaker {receiver} finnes ikke: {reason}.",
        ),
        ErrorDef(
            Code.RECEIVER_CANNOT_CONSUME, A.T10, _E,
            "Receiver {receiver} cannot receive this message: {reason}.",
            "Mottaker {receiver} støtter ikke meldingsformatet: {reason}.",
        ),
        ErrorDef(
            Code.NATIONAL_ID_INVALID, A.E31, _W,
            "The patient's {kind} fails the mod-11 check digit test.",
            "Pasientens {kind_nb} har feil kontrollsiffer (mod 11).",
        ),
    )
}
