"""The message standards the core knows by namespace: which standard and version a namespace is, and its role.

This is what the core needs to find the routing header and to check that a document's MIGversion matches its
namespace. Which *schema* validates a namespace is a separate question, answered by the schema catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ENVELOPE = "envelope"  # MsgHead: carries the routing header for the documents inside it
    STANDALONE = "standalone"  # a KITH document with its own header (Svarrapport, Epikrise 1.x, AppRec, ...)
    BUSINESS = "business"  # a business document carried inside MsgHead's RefDoc/Content
    ATTACHMENT = "attachment"  # Base64Container and similar wrappers of attachments


@dataclass(frozen=True, slots=True)
class Standard:
    namespace: str
    name: str
    version: str
    role: Role
    root: str

    @property
    def namespace_date(self) -> str | None:
        match = _DATE.search(self.namespace)
        return match.group(0) if match else None


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

MSGHEAD_NS = "http://www.kith.no/xmlstds/msghead/2006-05-24"
APPREC_10_NS = "http://www.kith.no/xmlstds/apprec/2004-11-21"
APPREC_11_NS = "http://www.kith.no/xmlstds/apprec/2012-02-15"
BASE64_NS = "http://www.kith.no/xmlstds/base64container"

_K = "http://www.kith.no/xmlstds"
_PO = f"{_K}/po"

STANDARDS: tuple[Standard, ...] = (
    Standard(MSGHEAD_NS, "MsgHead", "1.2", Role.ENVELOPE, "MsgHead"),
    Standard(APPREC_10_NS, "AppRec", "1.0", Role.STANDALONE, "AppRec"),
    Standard(APPREC_11_NS, "AppRec", "1.1", Role.STANDALONE, "AppRec"),
    Standard(f"{_K}/labsvar/2005-03-14", "Svarrapport", "1.2", Role.STANDALONE, "Message"),
    Standard(f"{_K}/labsvar/2008-12-01", "Svarrapport", "1.3", Role.STANDALONE, "Message"),
    Standard(f"{_K}/labsvar/2012-02-15", "Svarrapport", "1.4", Role.STANDALONE, "Message"),
    Standard(f"{_K}/epikrise", "Epikrise", "1.0", Role.STANDALONE, "Message"),
    Standard(f"{_K}/epikrise/2006-09-23", "Epikrise", "1.1", Role.STANDALONE, "Message"),
    Standard(f"{_K}/epikrise/2012-02-15", "Epikrise", "1.2", Role.STANDALONE, "Message"),
    Standard(f"{_K}/henvisning/2005-07-08", "Henvisning", "1.0", Role.STANDALONE, "Message"),
    Standard(f"{_K}/henvisning/2012-02-15", "Henvisning", "1.1", Role.STANDALONE, "Message"),
    Standard(f"{_K}/rekvisisjon/2005-05-20", "Rekvisisjon", "1.4", Role.STANDALONE, "Message"),
    Standard(f"{_K}/rekvisisjon/2008-12-01", "Rekvisisjon", "1.5", Role.STANDALONE, "Message"),
    Standard(f"{_K}/rekvisisjon/2012-02-15", "Rekvisisjon", "1.6", Role.STANDALONE, "Message"),
    Standard(f"{_K}/dialog/2006-10-11", "Dialogmelding", "1.0", Role.BUSINESS, "Dialogmelding"),
    Standard(f"{_K}/dialog/2013-01-23", "Dialogmelding", "1.1", Role.BUSINESS, "Dialogmelding"),
    Standard("http://ehelse.no/xmlstds/henvisning/2017-11-30", "Henvisning", "2.0", Role.BUSINESS, "Henvisning"),
    Standard(f"{_PO}/Konsultasjon/2009-06-30", "PLO Helseopplysninger til lege", "1.5", Role.BUSINESS, "Message"),
    Standard(f"{_PO}/HelseopplysningerVedSoknad/2009-06-30", "PLO Helseopplysninger ved søknad", "1.5",
             Role.BUSINESS, "Message"),
    Standard(f"{_PO}/Innleggelsesrapport/2009-06-30", "PLO Innleggelsesrapport", "1.5", Role.BUSINESS, "Message"),
    Standard(f"{_PO}/OverforingMedisinskeOpplysninger/2009-06-30", "PLO Medisinske opplysninger", "1.5",
             Role.BUSINESS, "Message"),
    Standard(f"{_PO}/MeldingFravar/2009-06-30", "PLO Melding om fravær", "1.5", Role.BUSINESS, "Message"),
    Standard(f"{_PO}/OrienteringOmTjenestetilbud/2009-06-30", "PLO Orientering om tjenestetilbud", "1.5",
             Role.BUSINESS, "Message"),
    Standard(f"{_PO}/Pasientlogistikk/2009-06-30", "PLO Pasientlogistikk", "1.5", Role.BUSINESS, "Message"),
    Standard(f"{_PO}/TverrfagligEpikrise/2009-06-30", "PLO Tverrfaglig epikrise", "1.5", Role.BUSINESS, "Message"),
    Standard(f"{_PO}/HelseopplysningerVedSoknad/2012-04-01", "PLO Helseopplysninger", "1.6", Role.BUSINESS,
             "Message"),
    Standard(f"{_PO}/HelseopplysningerTilLege/2012-04-01", "PLO Helseopplysninger til lege", "1.6",
             Role.BUSINESS, "Message"),
    Standard(f"{_PO}/Innleggelsesrapport/2012-04-01", "PLO Innleggelsesrapport", "1.6", Role.BUSINESS, "Message"),
    Standard(f"{_PO}/MedisinskeOpplysninger/2012-04-01", "PLO Medisinske opplysninger", "1.6", Role.BUSINESS,
             "Message"),
    Standard(f"{_PO}/OrienteringOmTjenestetilbud/2012-04-01", "PLO Orientering om tjenestetilbud", "1.6",
             Role.BUSINESS, "Message"),
    Standard(f"{_PO}/Pasientlogistikk/2012-04-01", "PLO Pasientlogistikk", "1.6", Role.BUSINESS, "Message"),
    Standard(f"{_PO}/TverrfagligEpikrise/2012-04-01", "PLO Tverrfaglig epikrise", "1.6", Role.BUSINESS, "Message"),
    Standard(f"{_K}/legeerklaring/2008-06-06", "Legeerklæring", "2008-06-06", Role.BUSINESS, "Legeerklaring"),
    Standard(f"{_K}/HelseOpplysningerArbeidsuforhet/2013-10-01", "Sykmelding", "2013-10-01", Role.BUSINESS,
             "HelseOpplysningerArbeidsuforhet"),
    Standard(BASE64_NS, "Base64Container", "1.0", Role.ATTACHMENT, "Base64Container"),
)

BY_NAMESPACE: dict[str, Standard] = {s.namespace: s for s in STANDARDS}
STANDALONE_NAMESPACES = frozenset(s.namespace for s in STANDARDS if s.role is Role.STANDALONE)


def standard_for(namespace: str) -> Standard | None:
    return BY_NAMESPACE.get(namespace)
