"""Whether a validated document may enter the backbone, and as what: the one admission rule that both ingress
paths (the gateway's `submit` and the validator service on edi.inbound) apply to the core's report.

A document is admitted when the core finds no error and it has a routing header with a MsgId and at least one
receiver HER-id (what cannot be addressed is refused, E21). A sender without a HER-id is admitted, as the
published schemas allow it (its sender HER-id is then ""): it reaches its receivers, but no AppRec can answer it
and the gateway's callers, who send as a HER-id, cannot send it. A part whose schema is not installed (verdict
None) is admitted with its warning, unless the deployment requires schemas (EDI_REQUIRE_SCHEMAS=true) and the part
is of a known standard, one with a published schema (edi.core.standards): then the document is refused with T10.
A part that no published schema covers (an unknown namespace, such as the iCalendar part of Helsenorge's citizen
dialogs) is never refused for that: requiring a schema nobody publishes would refuse valid traffic forever.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from edi.core.errors import Code, Severity
from edi.core.header import RoutingHeader
from edi.core.problems import Problem, problem
from edi.core.standards import standard_for
from edi.core.validation import ValidationReport
from edi.services.messaging import RefusalKind

# Ids derived from content (the validator's message ids, the receipts' AppRec ids) live in this namespace.
BACKBONE_NAMESPACE = uuid.UUID("5b0c7a1e-2f4d-4c1b-9a53-6f1e0d7c2b90")


@dataclass(frozen=True, slots=True)
class Admitted:
    header: RoutingHeader
    sender_her_id: str  # "" when the sender has no HER-id
    msg_id: str
    receiver_her_ids: tuple[str, ...]  # receiver first, then copy receivers
    message_type: str  # the message function (code system 8279), "" when the document gives none
    is_apprec: bool
    warnings: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: RefusalKind
    problems: tuple[Problem, ...]  # at least one, each an error

    @property
    def apprec_code(self) -> str:
        return self.problems[0].apprec_code.value

    @property
    def message(self) -> str:
        return "; ".join(p.message for p in self.problems)


def admit(report: ValidationReport, *, require_schemas: bool) -> Admitted | Refusal:
    if report.valid is False:
        return Refusal(RefusalKind.INVALID_DOCUMENT, tuple(report.errors))
    header = report.header
    if header is None:
        return Refusal(RefusalKind.INVALID_DOCUMENT, _as_errors(report, Code.NO_ROUTING_HEADER))
    if require_schemas and (missing := schemas_missing(report)):
        return Refusal(RefusalKind.INVALID_DOCUMENT, missing)
    if not header.msg_id:  # the core reports this as an error already; kept so the types say it
        return Refusal(RefusalKind.INVALID_DOCUMENT, (_error(problem(Code.MSGID_MISSING)),))
    if not header.receiver_her_ids:
        missing = _as_errors(report, Code.RECEIVER_HERID_MISSING) or (
            _error(problem(Code.RECEIVER_HERID_MISSING, role="receiver", role_nb="Mottaker")),)
        return Refusal(RefusalKind.NO_RECEIVERS, missing)
    return Admitted(
        header=header, sender_her_id=header.sender_her_id or "", msg_id=header.msg_id,
        receiver_her_ids=tuple(header.receiver_her_ids), message_type=type_code(header), is_apprec=header.is_apprec,
        warnings=tuple(report.warnings),
    )


def schemas_missing(report: ValidationReport) -> tuple[Problem, ...]:
    """As errors, the EDI-SCH-002 problems (each naming its part and standard) of the parts of a known standard
    whose schema is not installed; what EDI_REQUIRE_SCHEMAS refuses."""
    return tuple(_error(found) for part, found in report.unvalidated() if standard_for(part.namespace) is not None)


def type_code(header: RoutingHeader) -> str:
    return (header.message_type.code if header.message_type else None) or ""


def duplicate_msgid(sender_her_id: str, msg_id: str) -> Problem:
    """The refusal of a MsgId this sender already used for a different document."""
    return problem(Code.DUPLICATE_MSGID, sender=sender_her_id, msg_id=msg_id)


def sha256_of(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()


def content_message_id(document: bytes) -> uuid.UUID:
    """A message id that is the same every time the same bytes come in, so that a record delivered twice to
    the validator is one message, not two."""
    return uuid.uuid5(BACKBONE_NAMESPACE, sha256_of(document))


def _as_errors(report: ValidationReport, code: Code) -> tuple[Problem, ...]:
    return tuple(_error(p) for p in report.problems if p.code == code.value)


def _error(found: Problem) -> Problem:
    return found if found.is_error else found.model_copy(update={"severity": Severity.ERROR})
