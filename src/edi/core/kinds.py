"""What kind of message a document is, and its name: "Dialogmelding 1.1, DIALOG_INNBYGGER_EKONTAKT",
"Svarrapport 1.4, SVAR_LAB, MBIO".

A kind is the business document's namespace (standard and version, from the namespace index), its message
function (MsgHead's MsgInfo/Type, code system 8279, or a 1.x standalone document's own type) and, for lab reports
and requisitions, MsgDescr (code system 8202). Its name is built only from the project's data (the namespace index
and the code lists), never from text a sender wrote, so it is safe as a metric label and the set of names is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from edi.core.codelists import legacy_message_types, message_functions, service_descriptions
from edi.core.header import RoutingHeader
from edi.core.standards import standard_for

UNKNOWN_KIND = "unknown"  # the name of a kind whose namespace is no standard the project knows
UNLISTED_FUNCTION = "unlisted message function"  # stands for a code in none of the code lists


@dataclass(frozen=True, slots=True)
class MessageKind:
    """What recognition reads of a message: its business namespace, message function (code system 8279) and
    MsgDescr (8202); from its routing header (`of`), or from the facts an event carries."""

    business_namespace: str
    message_function: str | None = None
    service_description: str | None = None

    @classmethod
    def of(cls, header: RoutingHeader) -> MessageKind:
        return cls(header.business_namespace, header.message_type.code if header.message_type else None,
                   header.service_description.code if header.service_description else None)

    @property
    def description(self) -> str:
        """What a refusal tells the sender: the name, or for a namespace the project does not know, the namespace
        the sender wrote (its own words, given back to it; never a metric label)."""
        known = standard_for(self.business_namespace) is not None
        return self.name if known else f"a document in namespace {self.business_namespace or '(none)'}"

    @property
    def name(self) -> str:
        standard = standard_for(self.business_namespace)
        if standard is None:
            return UNKNOWN_KIND
        parts = [standard.label]
        function = self.message_function
        if function:
            listed = function in message_functions() or function in legacy_message_types()
            parts.append(function if listed else UNLISTED_FUNCTION)
        if self.service_description in service_descriptions():
            parts.append(self.service_description)
        return ", ".join(parts)
