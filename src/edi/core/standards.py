"""The message standards the core knows by namespace: which standard and version a namespace is, and its role.

The list is data, the project's namespace index (`edi/schemas/standards.csv`): a new standard is a new row. This is
what the core needs to find the routing header and to check that a document's MIGversion matches its
namespace. Which *schema* validates a namespace is a separate question, answered by the schema catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from edi.core.codelists import read_data_csv


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
    def label(self) -> str:
        """How a standard is named to people: "Dialogmelding 1.1"."""
        return f"{self.name} {self.version}"

    @property
    def namespace_date(self) -> str | None:
        match = _DATE.search(self.namespace)
        return match.group(0) if match else None


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

MSGHEAD_NS = "http://www.kith.no/xmlstds/msghead/2006-05-24"
APPREC_10_NS = "http://www.kith.no/xmlstds/apprec/2004-11-21"
APPREC_11_NS = "http://www.kith.no/xmlstds/apprec/2012-02-15"
BASE64_NS = "http://www.kith.no/xmlstds/base64container"


def _read_index() -> tuple[Standard, ...]:
    rows = read_data_csv("standards.csv")
    return tuple(Standard(r["namespace"], r["name"], r["version"], Role(r["role"]), r["root"]) for r in rows)


STANDARDS: tuple[Standard, ...] = _read_index()
BY_NAMESPACE: dict[str, Standard] = {s.namespace: s for s in STANDARDS}
STANDALONE_NAMESPACES = frozenset(s.namespace for s in STANDARDS if s.role is Role.STANDALONE)


def standard_for(namespace: str) -> Standard | None:
    return BY_NAMESPACE.get(namespace)
