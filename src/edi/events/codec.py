"""Avro encoding of events in the Confluent wire format: magic byte 0, the writer schema's id as 4 bytes big
endian, then the Avro binary body.

The schema id is how a record carries its schema version: a reader looks the writer's schema up by id and
resolves it against the schema it was built for (Avro schema resolution), so an old service reads records of
a newer writer and a new one reads old records, as long as each change is compatible (fields added or
removed with defaults). Ids come from a `SchemaRegistry`: `LocalSchemaRegistry` serves the schemas shipped in
`edi/schemas/avro` under the fixed ids of `ids.json`; a Confluent Schema Registry client can take its place
behind the same protocol, and the bytes on the topics stay the same format.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol, TypeVar

import fastavro
from fastavro.read import SchemaResolutionError
from pydantic import ValidationError

from edi.events.models import Event

E = TypeVar("E", bound=Event)

MAGIC_BYTE = 0
_HEADER_BYTES = 5
_FILE_NAME = re.compile(r"(?P<name>\w+)\.v(?P<version>\d+)\.avsc")


class DecodeError(ValueError):
    """The bytes are not a record of the expected event: wrong framing, unknown schema, or invalid content."""


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    schema_id: int
    name: str  # the Avro full name, e.g. edi.events.AcceptedMessage
    version: int
    definition: dict[str, Any]  # the schema JSON, as a registry would be given it
    parsed: Any  # fastavro's parsed form


class SchemaRegistry(Protocol):
    def by_id(self, schema_id: int) -> RegisteredSchema:
        """Raises KeyError for an unknown id."""
        ...

    def by_version(self, name: str, version: int) -> RegisteredSchema:
        """Raises KeyError for an unknown name or version."""
        ...


def parse(definition: dict[str, Any]) -> Any:
    # A fresh namespace of named types per schema: several schemas define their own edi.events.BlobRef.
    return fastavro.parse_schema(definition, named_schemas={})


class LocalSchemaRegistry:
    def __init__(self, definitions: Mapping[int, tuple[int, dict[str, Any]]]) -> None:
        """`definitions`: schema id -> (version, schema JSON)."""
        self._by_id: dict[int, RegisteredSchema] = {}
        self._by_version: dict[tuple[str, int], RegisteredSchema] = {}
        for schema_id, (version, definition) in definitions.items():
            name = f"{definition['namespace']}.{definition['name']}"
            if (name, version) in self._by_version:
                raise ValueError(f"{name} version {version} is registered twice")
            registered = RegisteredSchema(schema_id, name, version, definition, parse(definition))
            self._by_id[schema_id] = registered
            self._by_version[(name, version)] = registered

    @classmethod
    def bundled(cls, extra: Mapping[int, tuple[int, dict[str, Any]]] | None = None) -> LocalSchemaRegistry:
        """The schemas shipped with the package (plus `extra`, e.g. a schema under test)."""
        return cls({**_bundled_definitions(), **(extra or {})})

    def by_id(self, schema_id: int) -> RegisteredSchema:
        return self._by_id[schema_id]

    def by_version(self, name: str, version: int) -> RegisteredSchema:
        return self._by_version[(name, version)]

    def all(self) -> list[RegisteredSchema]:
        return sorted(self._by_id.values(), key=lambda schema: schema.schema_id)


@cache
def _bundled_definitions() -> dict[int, tuple[int, dict[str, Any]]]:
    folder = resources.files("edi.schemas") / "avro"
    manifest = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
    definitions = {}
    for schema_id, file_name in manifest["schemas"].items():
        match = _FILE_NAME.fullmatch(file_name)
        if match is None:
            raise ValueError(f"schema file {file_name} is not named <Name>.v<version>.avsc")
        definition = json.loads((folder / file_name).read_text(encoding="utf-8"))
        definitions[int(schema_id)] = (int(match["version"]), definition)
    return definitions


class AvroCodec:
    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry

    def encode(self, event: Event) -> bytes:
        schema = self._registry.by_version(event.schema_name, event.schema_version)
        out = io.BytesIO()
        out.write(bytes([MAGIC_BYTE]))
        out.write(schema.schema_id.to_bytes(4, "big"))
        fastavro.schemaless_writer(out, schema.parsed, event.model_dump())
        return out.getvalue()

    def decode(self, data: bytes | None, event_type: type[E]) -> E:
        """The record as `event_type`, read through that type's schema version whatever version wrote it."""
        if data is None or len(data) < _HEADER_BYTES or data[0] != MAGIC_BYTE:
            raise DecodeError("not a record in the Confluent wire format (magic byte 0 and a schema id)")
        schema_id = int.from_bytes(data[1:_HEADER_BYTES], "big")
        try:
            writer = self._registry.by_id(schema_id)
            reader = self._registry.by_version(event_type.schema_name, event_type.schema_version)
        except KeyError as exc:
            raise DecodeError(f"unknown schema: {exc}") from exc
        if writer.name != reader.name:
            raise DecodeError(f"expected a {reader.name} record, got a {writer.name} (schema id {schema_id})")
        body = io.BytesIO(data[_HEADER_BYTES:])
        try:
            datum = fastavro.schemaless_reader(body, writer.parsed, reader.parsed)
            if body.tell() != len(data) - _HEADER_BYTES:
                raise DecodeError(f"{len(data) - _HEADER_BYTES - body.tell()} bytes left after the record")
            return event_type.model_validate(datum)
        except DecodeError:
            raise
        except (SchemaResolutionError, ValidationError, ValueError, EOFError, IndexError, TypeError) as exc:
            # Incompatible schemas, content the model refuses, or a truncated or garbled body (which fastavro
            # reports with whatever its decoder trips over).
            raise DecodeError(f"cannot read {writer.name} v{writer.version}: {exc}") from exc


@cache
def default_codec() -> AvroCodec:
    """The codec over the bundled schemas, shared by the services of a process."""
    return AvroCodec(LocalSchemaRegistry.bundled())
