"""The schema catalog: which compiled XML Schema validates a namespace.

Schemas come from the project's own built-in set and from directories the operator configures (a published
XSD set such as e-helse's). Each directory is indexed once by targetNamespace; a namespace's schema is compiled
on first use and then shared by every caller and thread. Absolute imports inside published XSDs (kith.xsd,
xmldsig) are resolved through an OASIS XML catalog (`catalog.xml`) in the directory; nothing is ever fetched over
the network.

The envelope's schema (MsgHead) is compiled with its Content wildcard set to skip: the validator checks each
document inside Content against the schema for its own namespace, so the envelope is validated as it stands,
with the same verdict as the published schema gives it with Content's children lifted out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from lxml import etree

from edi.core.standards import STANDARDS, Role, Standard, standard_for

_XSD = "{http://www.w3.org/2001/XMLSchema}"
_CATALOG_NS = "{urn:oasis:names:tc:entity:xmlns:xml:catalog}"


class SchemaCompileError(Exception):
    """A configured schema could not be compiled; the message names the file and the reason."""


def builtin_schema_dir() -> Path:
    return Path(str(resources.files("edi.schemas") / "xsd"))


class _CatalogResolver(etree.Resolver):  # type: ignore[misc]  # lxml is untyped
    """Maps the absolute schemaLocations in a catalog.xml to local files and refuses every other remote URL."""

    def __init__(self, mapping: dict[str, Path]) -> None:
        super().__init__()
        self._mapping = mapping

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> object:
        if system_url is None:
            return None
        target = self._mapping.get(system_url)
        if target is not None:
            return self.resolve_filename(str(target), context)
        if system_url.startswith(("http:", "https:", "ftp:")):
            raise SchemaCompileError(f"schema import {system_url} is not in the directory's catalog.xml")
        return None


def _read_xml_catalog(directory: Path) -> dict[str, Path]:
    catalog = directory / "catalog.xml"
    if not catalog.is_file():
        return {}
    root = etree.parse(str(catalog), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    mapping: dict[str, Path] = {}
    for entry in root.iter(f"{_CATALOG_NS}system", f"{_CATALOG_NS}uri"):
        key = entry.get("systemId") or entry.get("name")
        uri = entry.get("uri")
        if key and uri:
            mapping[key] = (directory / uri).resolve()
    return mapping


BUILT_IN = "built-in"  # the name of the project's own schema set, where a configured one is named by its path


@dataclass(frozen=True, slots=True)
class SchemaSource:
    namespace: str
    path: Path
    resolver_mapping: dict[str, Path] = field(hash=False, compare=False)
    directory: Path | None = None  # the configured directory the schema was found in; None: the built-in set

    @property
    def schema_set(self) -> str:
        return BUILT_IN if self.directory is None else str(self.directory)

    @property
    def file(self) -> Path:
        """The schema's file within its set."""
        return self.path.relative_to(self.directory or builtin_schema_dir())


def _index_directory(directory: Path, *, configured: bool) -> dict[str, SchemaSource]:
    """targetNamespace -> the top-level XSD for it: the file that declares the namespace's root element."""
    mapping = _read_xml_catalog(directory)
    candidates: dict[str, list[tuple[int, Path]]] = {}
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    for path in sorted(directory.rglob("*.xsd")):
        try:
            root = etree.parse(str(path), parser).getroot()
        except etree.XMLSyntaxError:
            continue  # reported when someone actually needs this namespace and it is missing
        namespace = root.get("targetNamespace") or ""
        elements = {e.get("name") for e in root.iterchildren(f"{_XSD}element")}
        if not elements:
            continue  # type libraries (kith.xsd, felleskomponent1) are only ever imported
        standard = standard_for(namespace)
        rank = 0 if standard and standard.root in elements else 1
        candidates.setdefault(namespace, []).append((rank, path))
    return {
        ns: SchemaSource(ns, min(paths, key=lambda item: (item[0], len(item[1].parts)))[1], mapping,
                         directory if configured else None)
        for ns, paths in candidates.items()
    }


class SchemaCatalog:
    """Namespace -> compiled schema, from the operator's directories first and the built-in set last."""

    def __init__(self, directories: Sequence[Path] = (), *, include_builtin: bool = True) -> None:
        self.directories = tuple(Path(d).resolve() for d in directories)
        for directory in self.directories:
            if not directory.is_dir():
                raise SchemaCompileError(f"schema directory {directory} does not exist")
        sources: dict[str, SchemaSource] = {}
        if include_builtin:
            sources.update(_index_directory(builtin_schema_dir(), configured=False))
        for directory in reversed(self.directories):
            sources.update(_index_directory(directory, configured=True))  # earlier directories override later ones
        self._sources = sources
        self._compiled: dict[str, etree.XMLSchema] = {}
        self._lock = threading.Lock()
        # lxml's XMLSchema keeps one error log per object, so reading *which* errors a document has is done
        # under this lock; the verdict alone needs no lock and runs in parallel.
        self.error_lock = threading.Lock()

    @property
    def namespaces(self) -> frozenset[str]:
        return frozenset(self._sources)

    def source(self, namespace: str) -> SchemaSource | None:
        return self._sources.get(namespace)

    def inventory(self) -> SchemaInventory:
        """What this catalog validates and from where, and which known standards it does not validate."""
        known = {standard.namespace for standard in STANDARDS}
        return SchemaInventory(
            directories=self.directories,
            standards=tuple((standard, self._sources.get(standard.namespace)) for standard in STANDARDS),
            others=tuple(sorted((source for ns, source in self._sources.items() if ns not in known),
                                key=lambda source: source.namespace)),
        )

    def compile_all(self) -> None:
        """Compile every indexed schema now, so that a set that does not compile is found at start (raising
        SchemaCompileError) rather than by the first message that needs it."""
        for namespace in sorted(self._sources):
            self.schema_for(namespace)

    def schema_for(self, namespace: str) -> etree.XMLSchema | None:
        compiled = self._compiled.get(namespace)
        if compiled is not None:
            return compiled
        source = self._sources.get(namespace)
        if source is None:
            return None
        with self._lock:
            compiled = self._compiled.get(namespace)
            if compiled is None:
                compiled = _compile(source)
                self._compiled[namespace] = compiled
        return compiled


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """One place schemas come from: the built-in set or a configured directory, and what it validates."""

    name: str  # BUILT_IN, or the directory's path
    standards: tuple[Standard, ...]  # the known standards whose schema comes from here
    others: tuple[SchemaSource, ...]  # namespaces from here that are no known standard (type libraries, ...)


@dataclass(frozen=True, slots=True)
class SchemaInventory:
    """Which of the known standards (edi.core.standards.STANDARDS) a catalog validates with which schema, which
    it cannot validate, and the namespaces it has schemas for that are no known standard. One computation for
    the start-up banner, the log line and /readyz of every process that validates, and `edi schemas`."""

    directories: tuple[Path, ...]  # the configured directories, in search order
    standards: tuple[tuple[Standard, SchemaSource | None], ...]  # every known standard; None: not installed
    others: tuple[SchemaSource, ...]

    @property
    def missing(self) -> tuple[Standard, ...]:
        return tuple(standard for standard, source in self.standards if source is None)

    def sets(self) -> tuple[SchemaSet, ...]:
        """The built-in set, then each configured directory in search order (also one that provides nothing,
        so that an operator sees it was read)."""
        names = dict.fromkeys([BUILT_IN, *(str(directory) for directory in self.directories)])
        return tuple(
            SchemaSet(
                name,
                tuple(standard for standard, source in self.standards if source and source.schema_set == name),
                tuple(source for source in self.others if source.schema_set == name),
            )
            for name in names
        )


def grouped_labels(standards: Iterable[Standard]) -> list[str]:
    """Standards named compactly, the versions of one name together: ["AppRec 1.0/1.1", "Henvisning 2.0"]."""
    versions: dict[str, list[str]] = {}
    for standard in standards:
        versions.setdefault(standard.name, []).append(standard.version)
    return [f"{name} {'/'.join(found)}" for name, found in versions.items()]


def _compile(source: SchemaSource) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    parser.resolvers.add(_CatalogResolver(source.resolver_mapping))
    try:
        document = etree.parse(str(source.path), parser)
        standard = standard_for(source.namespace)
        if standard is not None and standard.role is Role.ENVELOPE:
            _skip_content(document, source)
        return etree.XMLSchema(document)
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise SchemaCompileError(f"cannot compile {source.path} for {source.namespace}: {exc}") from exc


def _skip_content(document: etree._ElementTree, source: SchemaSource) -> None:
    wildcards = [wildcard for content in document.iter(f"{_XSD}element") if content.get("name") == "Content"
                 for wildcard in content.iter(f"{_XSD}any")]
    if not wildcards:
        raise SchemaCompileError(f"{source.path} for {source.namespace} has no Content wildcard to skip")
    for wildcard in wildcards:
        wildcard.set("processContents", "skip")
