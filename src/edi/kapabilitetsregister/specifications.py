"""The message specifications the registry knows, and recognising a real message as one of them.

The list is data (`specifications.json`, shipped with the package): adding a specification is a data change.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edi.core.extract import find_headers, read_header
from edi.core.header import RoutingHeader
from edi.core.kinds import MessageKind
from edi.core.parsing import parse_xml
from edi.core.problems import DocumentRefused
from edi.kapabilitetsregister.model import Direction, InvalidInputError, UnknownSpecificationError


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")


class RecognitionRule(_Data):
    """Matches a message whose business namespace is the specification's own namespace and whose message
    function (code system 8279) and, for lab messages, MsgDescr (8202) are listed; None matches any."""

    message_functions: tuple[str, ...] | None
    service_descriptions: tuple[str, ...] | None = None


class Specification(_Data):
    id: int
    display_name: str
    source: str
    responsible: str
    category: str
    standard: str
    version: str
    namespace: str
    capability_name: str  # the compact name in capabilities, e.g. DialogmeldingHelsefagligDialog1.1
    recognition: tuple[RecognitionRule, ...]
    recognition_note: str | None = None

    def capability(self, direction: Direction) -> str:
        """The registry's spelling of a capability, e.g. ConsumeEpikrise1.2."""
        return f"{direction.value}{self.capability_name}"


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore")

    specifications: tuple[Specification, ...] = Field(min_length=1)


_RuleKey = tuple[str, str | None, str | None]  # namespace, message function, MsgDescr


class Catalogue:
    """All specifications, with lookups by id, name or capability name, and message recognition."""

    def __init__(self, specifications: tuple[Specification, ...]) -> None:
        self.specifications = specifications
        self._by_id = {s.id: s for s in specifications}
        self._by_name: dict[str, Specification] = {}
        self._rules: dict[_RuleKey, Specification] = {}
        for spec in specifications:
            for name in (spec.display_name, spec.capability_name):
                if self._by_name.setdefault(name.casefold(), spec) is not spec:
                    raise ValueError(f"two specifications are named {name!r}")
            for key in _rule_keys(spec):
                if self._rules.setdefault(key, spec) is not spec:
                    raise ValueError(f"specifications {self._rules[key].id} and {spec.id} both recognise {key}")
        if len(self._by_id) != len(specifications):
            raise ValueError("specification ids are not unique")
        # Same standard in another version: what "only other versions supported" names.
        self._by_standard: dict[str, list[Specification]] = {}
        for spec in specifications:
            self._by_standard.setdefault(spec.standard, []).append(spec)

    def __iter__(self) -> Iterator[Specification]:
        return iter(self.specifications)

    def __len__(self) -> int:
        return len(self.specifications)

    def get(self, specification_id: int) -> Specification | None:
        return self._by_id.get(specification_id)

    def resolve(self, text: str) -> Specification:
        """A specification by id ("16"), capability name or display name (case-insensitive)."""
        cleaned = text.strip()
        found = self._by_id.get(int(cleaned)) if cleaned.isdigit() else self._by_name.get(cleaned.casefold())
        if found is not None:
            return found
        close = difflib.get_close_matches(cleaned.casefold(), list(self._by_name), n=3, cutoff=0.6)
        suggestions = dict.fromkeys(self._by_name[c].capability_name for c in close)
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        raise UnknownSpecificationError(
            f"unknown message specification {text!r}: give an id 1-{max(self._by_id)}, a capability name such "
            f"as DialogmeldingHelsefagligDialog1.1, or a display name (`kapreg specs list`){hint}"
        )

    def parse_capability(self, text: str) -> tuple[Direction, Specification]:
        """Split the registry's compact capability spelling, e.g. ConsumeDialogmeldingHelsefagligDialog1.1."""
        cleaned = text.strip()
        for direction in Direction:
            if cleaned.startswith(direction.value):
                spec = self._by_name.get(cleaned.removeprefix(direction.value).casefold())
                if spec is not None:
                    return direction, spec
        raise UnknownSpecificationError(
            f"unknown capability {text!r}: expected Consume or Produce followed by a specification's capability "
            "name, e.g. ConsumeDialogmeldingHelsefagligDialog1.1"
        )

    def other_versions(self, spec: Specification) -> list[Specification]:
        return [s for s in self._by_standard[spec.standard] if s.version != spec.version]

    def recognise(self, kind: MessageKind) -> Specification | None:
        """The specification a message is, from its business namespace, message function and MsgDescr."""
        namespace, function, description = kind.business_namespace, kind.message_function, kind.service_description
        for key in ((namespace, function, description), (namespace, function, None), (namespace, None, None)):
            spec = self._rules.get(key)
            if spec is not None:
                return spec
        return None


def read_routing_header(data: bytes, source: str) -> RoutingHeader:
    """The routing header of a message (MsgHead's, or a standalone KITH document's own; the first one in a
    wrapper such as NAV's EI_fellesformat)."""
    try:
        headers = find_headers(parse_xml(data))
    except DocumentRefused as exc:
        raise InvalidInputError(f"{source} is not a readable message: {exc.problem.message}") from None
    if not headers:
        raise InvalidInputError(f"{source} has no routing header (neither MsgHead nor a standalone KITH document)")
    return read_header(headers[0])


def _rule_keys(spec: Specification) -> Iterator[_RuleKey]:
    for rule in spec.recognition:
        for function in rule.message_functions or (None,):
            for description in rule.service_descriptions or (None,):
                yield spec.namespace, function, description


@cache
def default_catalogue() -> Catalogue:
    """The specifications shipped with the package."""
    text = resources.files(__package__).joinpath("specifications.json").read_text(encoding="utf-8")
    return Catalogue(_Document.model_validate(json.loads(text)).specifications)
