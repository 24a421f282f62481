"""The import/export format: parties with their supported capabilities, as JSON or CSV.

JSON is a party object as the registry publishes it (`{"herId": 8138082, "sourceSystem": ..., "version": ...,
"supported": ["ConsumeEpikrise1.2", ...]}`), a list of them, or `{"parties": [...]}`. CSV has one capability per
row: the columns `herId` and `capability`, optionally `validFrom`, `validTo` and party columns (`name`, `kind`,
`parentHerId`, `organisationNumber`, `sourceSystem`, `version`).

What a file states about a party replaces what the registry holds; what it leaves out is left alone. So a party's
`supported` list is its complete set of own capabilities, and a party without `supported` keeps its capabilities.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from edi.kapabilitetsregister.model import (
    DeliveryChannel,
    HerId,
    InvalidInputError,
    OptionalMoment,
    OrganisationNumber,
    OverrideEffect,
    PartyKind,
)

# Party fields an import may set, by their name in Party.
PARTY_FIELDS = (
    "name", "kind", "parent_her_id", "organisation_number", "active", "valid_from", "valid_to",
    "source_system", "source_version", "delivery_channel", "kafka_topic", "accepts_file_reference",
)


class _Doc(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class CapabilityEntry(_Doc):
    capability: str  # e.g. ConsumeEpikrise1.2
    valid_from: OptionalMoment = None
    valid_to: OptionalMoment = None


class OverrideEntry(_Doc):
    specification: str
    effect: OverrideEffect
    reason: str = Field(min_length=1)
    valid_from: OptionalMoment = None
    valid_to: OptionalMoment = None


class PartyEntry(_Doc):
    her_id: HerId
    name: str | None = None
    kind: PartyKind = PartyKind.ORGANISATION
    parent_her_id: HerId | None = None
    organisation_number: OrganisationNumber | None = None
    active: bool = True
    valid_from: OptionalMoment = None
    valid_to: OptionalMoment = None
    source_system: str | None = None
    source_version: str | None = Field(default=None, alias="version")
    delivery_channel: DeliveryChannel = DeliveryChannel.MAILBOX
    kafka_topic: str | None = None
    accepts_file_reference: bool = False
    supported: list[str | CapabilityEntry] | None = None
    overrides: list[OverrideEntry] | None = None

    def stated_party_fields(self) -> dict[str, Any]:
        """The party fields this entry states (those it leaves out keep their current value)."""
        return {name: getattr(self, name) for name in PARTY_FIELDS if name in self.model_fields_set}

    def capability_entries(self) -> list[CapabilityEntry]:
        return [CapabilityEntry(capability=c) if isinstance(c, str) else c for c in self.supported or []]


class ExportDocument(_Doc):
    parties: list[PartyEntry]


_ENTRIES = TypeAdapter(list[PartyEntry])
_CSV_PARTY_COLUMNS = {
    "name": "name", "kind": "kind", "parentHerId": "parent_her_id", "organisationNumber": "organisation_number",
    "sourceSystem": "source_system", "version": "source_version",
}


def parse_import(data: bytes, filename: str = "") -> list[PartyEntry]:
    """Parties from a JSON or CSV import file; CSV when the name ends in .csv or the content is not JSON."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{filename or 'the import'} is not UTF-8 text") from None
    stripped = text.lstrip()
    if filename.lower().endswith(".csv") or not stripped.startswith(("{", "[")):
        entries = _from_csv(text, filename)
    else:
        entries = _from_json(text, filename)
    seen: set[int] = set()
    for entry in entries:
        if entry.her_id in seen:
            raise InvalidInputError(f"HER-id {entry.her_id} appears twice in {filename or 'the import'}")
        seen.add(entry.her_id)
    return entries


def _from_json(text: str, filename: str) -> list[PartyEntry]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{filename or 'the import'} is not valid JSON: {exc}") from None
    if isinstance(document, Mapping) and "parties" in document:
        document = document["parties"]
    elif isinstance(document, Mapping):
        document = [document]
    try:
        return _ENTRIES.validate_python(document)
    except ValidationError as exc:
        raise InvalidInputError(_explain(exc, filename)) from None


def _from_csv(text: str, filename: str) -> list[PartyEntry]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"herId", "capability"} - set(reader.fieldnames or ())
    if missing:
        raise InvalidInputError(
            f"{filename or 'the CSV import'} lacks the column(s) {', '.join(sorted(missing))}; a CSV import has a "
            "header row with herId and capability (optionally validFrom, validTo, name, kind, parentHerId, "
            "organisationNumber, sourceSystem, version)"
        )
    parties: dict[str, dict[str, Any]] = {}
    for line, row in enumerate(reader, start=2):
        her_id = (row.get("herId") or "").strip()
        if not her_id:
            raise InvalidInputError(f"{filename or 'the CSV import'} line {line}: herId is empty")
        party = parties.setdefault(her_id, {"herId": her_id, "supported": []})
        for column, field_name in _CSV_PARTY_COLUMNS.items():
            value = (row.get(column) or "").strip()
            if value and field_name not in party:
                party[field_name] = value
        capability = (row.get("capability") or "").strip()
        if capability:
            party["supported"].append({
                "capability": capability,
                "validFrom": (row.get("validFrom") or "").strip() or None,
                "validTo": (row.get("validTo") or "").strip() or None,
            })
    try:
        return _ENTRIES.validate_python(list(parties.values()))
    except ValidationError as exc:
        raise InvalidInputError(_explain(exc, filename)) from None


def _explain(error: ValidationError, filename: str) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg'].removeprefix('Value error, ')}"
        for e in error.errors()[:5]
    )
    return f"{filename or 'the import'} is not a valid registry import: {problems}"
