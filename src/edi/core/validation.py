"""Validating a message: parse safely, find the routing header, validate the envelope and every business
document against the schema for its namespace, then run the business rules.

The result is data (a ValidationReport), never an exception: every way a message can be wrong is a Problem with
a stable code, an AppRec code, texts in English and Norwegian, and a line and path where it applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from lxml import etree
from pydantic import BaseModel, ConfigDict

from edi.core.catalog import SchemaCatalog
from edi.core.errors import AppRecCode, Code, Severity
from edi.core.extract import MSGHEAD_TAG, content_parts, find_headers, local_name, namespace_of, read_header
from edi.core.header import RoutingHeader
from edi.core.parsing import DEFAULT_MAX_BYTES, parse_xml
from edi.core.problems import DocumentRefused, Problem, problem
from edi.core.rules import RuleContext, run_rules
from edi.core.standards import Role, Standard, standard_for

MAX_SCHEMA_ERRORS_PER_PART = 20


class PartKind(StrEnum):
    ENVELOPE = "envelope"
    DOCUMENT = "document"
    ATTACHMENT = "attachment"


class PartReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: PartKind
    namespace: str
    standard: str | None = None
    version: str | None = None
    valid: bool | None  # None: no schema installed for the namespace
    line: int | None = None


class ValidationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    valid: bool | None  # None when nothing is wrong but some part's schema is not installed
    size: int
    header: RoutingHeader | None = None
    parts: tuple[PartReport, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]

    @property
    def apprec_codes(self) -> list[AppRecCode]:
        return list(dict.fromkeys(p.apprec_code for p in self.errors))

    def unvalidated(self) -> list[tuple[PartReport, Problem]]:
        """Each part whose schema is not installed, with the EDI-SCH-002 problem that reports it: the validator
        reports each such part with exactly one of them, in the order of the parts."""
        parts = [part for part in self.parts if part.valid is None]
        reported = [p for p in self.problems if p.code == Code.SCHEMA_NOT_INSTALLED.value]
        return list(zip(parts, reported, strict=True))


@dataclass(frozen=True, slots=True)
class ValidatorOptions:
    max_bytes: int = DEFAULT_MAX_BYTES
    clock_skew: timedelta = timedelta(minutes=5)
    error_codes: frozenset[str] = frozenset()  # warning codes this deployment treats as errors (policy)


class Validator:
    """Validates messages against a shared SchemaCatalog; safe to use from several threads at once."""

    def __init__(self, catalog: SchemaCatalog, options: ValidatorOptions | None = None) -> None:
        self.catalog = catalog
        self.options = options or ValidatorOptions()

    def validate(self, data: bytes, *, now: datetime | None = None) -> ValidationReport:
        try:
            root = parse_xml(data, max_bytes=self.options.max_bytes)
        except DocumentRefused as refused:
            return ValidationReport(valid=False, size=len(data), problems=(refused.problem,))
        problems: list[Problem] = []
        parts: list[PartReport] = []
        headers = find_headers(root)
        contents = [self._validate_unit(element, parts, problems) for element in headers or [root]]
        header: RoutingHeader | None = None
        if headers:
            context = RuleContext(now=now or datetime.now(UTC), clock_skew=self.options.clock_skew)
            for element, content in zip(headers, contents, strict=True):
                unit_header = read_header(element)
                header = header or unit_header
                problems.extend(run_rules(unit_header, content, context))
            if len(headers) > 1:
                problems.append(problem(Code.SEVERAL_MESSAGES, count=len(headers)))
        else:
            problems.append(problem(Code.NO_ROUTING_HEADER, root=local_name(root), line=root.sourceline))
        if self.options.error_codes:
            problems = [
                p.model_copy(update={"severity": Severity.ERROR}) if p.code in self.options.error_codes else p
                for p in problems
            ]
        return ValidationReport(
            valid=_verdict(parts, problems), size=len(data), header=header, parts=tuple(parts),
            problems=tuple(problems),
        )

    def _validate_unit(
        self, element: etree._Element, parts: list[PartReport], problems: list[Problem]
    ) -> list[tuple[int, etree._Element]]:
        """Validate one message (an envelope and what it carries, or a standalone document); returns the
        elements found inside the envelope's Content, for the rules."""
        if element.tag != MSGHEAD_TAG:
            self._validate_part(element, PartKind.DOCUMENT, 0, parts, problems)
            return []
        inner = content_parts(element)
        # The catalog compiles the envelope's schema with Content skipped (see SchemaCatalog): each document inside
        # is validated against the schema for its own namespace instead.
        self._validate_part(element, PartKind.ENVELOPE, 0, parts, problems)
        for index, child in inner:
            standard = standard_for(namespace_of(child))
            kind = PartKind.ATTACHMENT if standard and standard.role is Role.ATTACHMENT else PartKind.DOCUMENT
            self._validate_part(child, kind, index, parts, problems)
        return inner

    def _validate_part(
        self, element: etree._Element, kind: PartKind, index: int, parts: list[PartReport], problems: list[Problem]
    ) -> None:
        namespace = namespace_of(element)
        standard = standard_for(namespace)
        schema = self.catalog.schema_for(namespace)
        valid = None if schema is None else bool(schema.validate(element))
        parts.append(PartReport(
            kind=kind, namespace=namespace, standard=standard.name if standard else None,
            version=standard.version if standard else None, valid=valid, line=element.sourceline,
        ))
        if valid:
            return
        label, label_nb = _part_label(kind, index, standard, element)
        if schema is None:
            problems.append(problem(Code.SCHEMA_NOT_INSTALLED, namespace=namespace or "(none)", part=label,
                                    part_nb=label_nb, line=element.sourceline))
            return
        with self.catalog.error_lock:  # see SchemaCatalog.error_lock
            schema.validate(element)
            entries = list(schema.error_log)[:MAX_SCHEMA_ERRORS_PER_PART]
        name = standard.label if standard else namespace
        for entry in entries:
            detail = _readable(entry.message)
            problems.append(problem(
                Code.SCHEMA_INVALID, part=label, part_nb=label_nb, standard=name, detail=detail,
                line=entry.line or None, path=_locate(element, entry.line, detail) if entry.line else None,
            ))


def _verdict(parts: list[PartReport], problems: list[Problem]) -> bool | None:
    if any(p.is_error for p in problems):
        return False
    if any(part.valid is None for part in parts):
        return None
    return True


def _part_label(kind: PartKind, index: int, standard: Standard | None, element: etree._Element) -> tuple[str, str]:
    name = standard.label if standard else local_name(element)
    if kind is PartKind.ENVELOPE:
        return "The MsgHead envelope", "MsgHead-konvolutten"
    if index == 0:
        return f"The {name} document", f"{name}-dokumentet"
    what, what_nb = ("attachment", "vedlegg") if kind is PartKind.ATTACHMENT else ("document", "dokument")
    return f"The {what} in Document {index} ({name})", f"{what_nb.capitalize()} i Document {index} ({name})"


_CLARK = re.compile(r"\{[^}]*\}")


def _readable(message: str) -> str:
    """libxml2's messages name elements as {namespace}Name; the sender knows them by their plain names."""
    return _CLARK.sub("", message).strip()


_NAMED = re.compile(r"Element '([^']+)'")


def _locate(element: etree._Element, line: int, message: str) -> str | None:
    """The path of the element a schema error is about: libxml2 gives its line and names it in the message."""
    named = _NAMED.search(message)
    name = named.group(1) if named else None
    candidates = [e for e in element.iter() if isinstance(e.tag, str) and e.sourceline == line]
    exact = [e for e in candidates if local_name(e) == name]
    found = (exact or candidates or [None])[0]
    return None if found is None else element_path(found)


def element_path(element: etree._Element) -> str:
    """/MsgHead/MsgInfo/Receiver/Organisation[2]: local names, with a position only where siblings share a name."""
    steps: list[str] = []
    current: etree._Element | None = element
    while current is not None:
        name = local_name(current)
        parent = current.getparent()
        if parent is not None:
            same = [s for s in parent.iterchildren(current.tag)]
            if len(same) > 1:
                name += f"[{same.index(current) + 1}]"
        steps.append(name)
        current = parent
    return "/" + "/".join(reversed(steps))
