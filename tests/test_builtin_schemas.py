"""The project's own MsgHead 1.2 / AppRec 1.0 / 1.1 / Dialogmelding 1.0 / 1.1 schemas (src/edi/schemas/xsd) vs
the published ones.

For every MsgHead envelope, every AppRec and every Dialogmelding among the shared samples, the verdict (valid /
invalid) of our schema must equal the verdict of the published schema, computed live here with lxml, and
samples/VALIDATION.md must be reproduced. Envelopes are validated the way VALIDATION.md's method does it (and
the way the validation engine does it): a deep copy of the outermost MsgHead with the children of every
Document/RefDoc/Content detached; the Dialogmelding documents are those children, each validated on its own.
Targeted mutations of valid samples then show that both reject (and accept) the same things.

The published schemas are compiled with a custom lxml resolver built from shared/standards/catalog.xml
(their http:// schemaLocations for kith.xsd and xmldsig point to local copies); ours must compile with no
resolver, no catalog and no network.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

import edi.schemas
from edi.core.catalog import SchemaCatalog
from edi.core.validation import PartKind, Validator

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "samples"
STANDARDS = SHARED / "standards"
OURS = Path(edi.schemas.__file__).resolve().parent / "xsd"

if not (SAMPLES / "VALIDATION.md").is_file() or not (STANDARDS / "catalog.xml").is_file():
    pytest.skip(f"shared reference material not found under {SHARED}", allow_module_level=True)

MH = "http://www.kith.no/xmlstds/msghead/2006-05-24"
AR10 = "http://www.kith.no/xmlstds/apprec/2004-11-21"
AR11 = "http://www.kith.no/xmlstds/apprec/2012-02-15"
DIA10 = "http://www.kith.no/xmlstds/dialog/2006-10-11"
DIA11 = "http://www.kith.no/xmlstds/dialog/2013-01-23"
B64 = "http://www.kith.no/xmlstds/base64container"
KITH = "http://www.kith.no/xmlstds"
FK1 = "http://www.kith.no/xmlstds/felleskomponent1"
DS = "http://www.w3.org/2000/09/xmldsig#"
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

# namespace -> (published top-level XSD relative to shared/standards, our file)
SCHEMAS = {
    MH: ("felleskomponenter/MsgHead-v1_2.xsd", "msghead-1.2.xsd"),
    AR10: ("applikasjonskvittering/AppRec-v1-2004-11-21.xsd", "apprec-1.0.xsd"),
    AR11: ("applikasjonskvittering/AppRec-v1.1.xsd", "apprec-1.1.xsd"),
    DIA10: ("dialogmelding/2006-10-11/dialogmelding.xsd", "dialogmelding-1.0.xsd"),
    DIA11: ("dialogmelding/2013-01-23/dialogmelding-v1.1.xsd", "dialogmelding-1.1.xsd"),
    B64: ("felleskomponenter/kith-base64.xsd", "base64container-1.0.xsd"),
}

MSGHEAD = f"{{{MH}}}MsgHead"
APPREC_TAGS = (f"{{{AR10}}}AppRec", f"{{{AR11}}}AppRec")
DIALOG_TAGS = (f"{{{DIA10}}}Dialogmelding", f"{{{DIA11}}}Dialogmelding")
BASE64_TAG = f"{{{B64}}}Base64Container"


# ----------------------------------------------------------------------------------------------------
# compiling the two schema sets


class CatalogResolver(etree.Resolver):  # type: ignore[misc]  # lxml is untyped
    """Maps the published XSDs' absolute http:// schemaLocations to the local copies, per catalog.xml."""

    def __init__(self, catalog: Path) -> None:
        super().__init__()
        ns = "{urn:oasis:names:tc:entity:xmlns:xml:catalog}"
        root = etree.parse(str(catalog)).getroot()
        self.mapping: dict[str, Path] = {}
        for entry in root.iter(f"{ns}system", f"{ns}uri"):
            key = entry.get("systemId") or entry.get("name")
            uri = entry.get("uri")
            if key and uri:
                self.mapping[key] = (catalog.parent / uri).resolve()

    def resolve(self, system_url: str, public_id: str | None, context: object) -> object:
        target = self.mapping.get(system_url)
        if target is None:
            return None
        return self.resolve_filename(str(target), context)


@cache
def published(ns: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(CatalogResolver(STANDARDS / "catalog.xml"))
    return etree.XMLSchema(etree.parse(str(STANDARDS / SCHEMAS[ns][0]), parser))


@cache
def ours(ns: str) -> etree.XMLSchema:
    # no resolver, no catalog, no network: only the relative schemaLocations between our own files
    return etree.XMLSchema(etree.parse(str(OURS / SCHEMAS[ns][1]), etree.XMLParser(no_network=True)))


# ----------------------------------------------------------------------------------------------------
# the instances among the samples


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.rglob("*") if p.is_file())


def parse(path: Path) -> etree._ElementTree | None:
    try:
        return etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None


def outermost_msgheads(tree: etree._ElementTree) -> list[etree._Element]:
    return [e for e in tree.iter(MSGHEAD) if not any(a.tag == MSGHEAD for a in e.iterancestors())]


def envelope_copy(msghead: etree._Element) -> etree._ElementTree:
    """A deep copy of the MsgHead with the children of every Document/RefDoc/Content removed."""
    root = copy.deepcopy(msghead)
    for content in root.iter(f"{{{MH}}}Content"):
        for child in list(content):
            content.remove(child)
    return etree.ElementTree(root)


def standalone_copy(element: etree._Element) -> etree._ElementTree:
    return etree.ElementTree(copy.deepcopy(element))


def content_documents(msghead: etree._Element) -> list[etree._Element]:
    """The business documents the MsgHead carries: the children of every Document/RefDoc/Content."""
    return [child for content in msghead.iter(f"{{{MH}}}Content") for child in content if isinstance(child.tag, str)]


@dataclass(frozen=True)
class Verdict:
    valid: bool
    errors: tuple[str, ...]

    @property
    def first_element(self) -> str | None:
        """The element the first error is about ("Element '{ns}Name'...")."""
        if not self.errors:
            return None
        m = re.match(r"Element '([^']+)'", self.errors[0])
        return m.group(1) if m else self.errors[0]


def verdict(schema: etree.XMLSchema, doc: etree._ElementTree) -> Verdict:
    ok = schema.validate(doc)
    return Verdict(ok, tuple(e.message for e in schema.error_log))


@dataclass(frozen=True)
class Instance:
    file: str  # relative to samples/
    kind: str  # top-level folder, as in VALIDATION.md
    what: str  # "MsgHead", "AppRec" or "Dialogmelding"
    ns: str
    line: int
    published: Verdict
    ours: Verdict


@cache
def instances_in(rel: str) -> tuple[Instance, ...] | None:
    """None for a file that is not well-formed XML."""
    tree = parse(SAMPLES / rel)
    if tree is None:
        return None
    kind = rel.split("/", 1)[0]
    found: list[Instance] = []

    def add(what: str, element: etree._Element, doc: etree._ElementTree) -> None:
        ns = etree.QName(element).namespace
        found.append(
            Instance(rel, kind, what, ns, element.sourceline or 0, verdict(published(ns), doc), verdict(ours(ns), doc))
        )

    dialogs: list[etree._Element] = []
    for mh in outermost_msgheads(tree):
        add("MsgHead", mh, envelope_copy(mh))
        dialogs.extend(d for d in content_documents(mh) if d.tag in DIALOG_TAGS)
        for attachment in (d for d in content_documents(mh) if d.tag == BASE64_TAG):
            add("Base64Container", attachment, standalone_copy(attachment))
    for ar in tree.iter(*APPREC_TAGS):
        add("AppRec", ar, standalone_copy(ar))
    # as VALIDATION.md and the engine do: the Dialogmelding documents inside Content (none sits anywhere else)
    assert len(dialogs) == len(list(tree.iter(*DIALOG_TAGS))), f"{rel}: a Dialogmelding outside MsgHead Content"
    for dialog in dialogs:
        add("Dialogmelding", dialog, standalone_copy(dialog))
    return tuple(found)


def all_instances() -> list[Instance]:
    out: list[Instance] = []
    for path in sample_files():
        found = instances_in(path.relative_to(SAMPLES).as_posix())
        if found:
            out.extend(found)
    return out


# ----------------------------------------------------------------------------------------------------
# what VALIDATION.md says


@dataclass(frozen=True)
class SummaryRow:
    files: int
    not_well_formed: int
    envelope_valid: int
    envelope_invalid: int
    parts_valid: int
    parts_invalid: int


@cache
def validation_summary() -> dict[str, SummaryRow]:
    text = (SAMPLES / "VALIDATION.md").read_text(encoding="utf-8")
    section = text.split("## Summary per kind", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, SummaryRow] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and cells[1].isdigit():
            rows[cells[0]] = SummaryRow(*(int(c) for c in cells[1:7]))
    return rows


@cache
def validation_per_file() -> dict[str, tuple[str, tuple[tuple[str, bool], ...]]]:
    """file -> (envelope result cell, ((namespace, valid), ...) of its AppRec, Dialogmelding and Base64Container
    parts) from the per-file table."""
    text = (SAMPLES / "VALIDATION.md").read_text(encoding="utf-8")
    out: dict[str, tuple[str, tuple[tuple[str, bool], ...]]] = {}
    for line in text.splitlines():
        m = re.match(r"\| `([^`]+)` \| [^|]* \| [^|]* \| ([^|]*) \|", line)
        if not m:
            continue
        parts = tuple(
            (f"http://www.kith.no/xmlstds/{standard}" + (f"/{date}" if date else ""), result == "valid")
            for standard, date, result in re.findall(
                r"`kith:(apprec|dialog|base64container)(?:/([\d-]+))?` → `[^`]*` → (valid|INVALID)", line
            )
        )
        out[m.group(1)] = (m.group(2).strip(), parts)
    return out


# ----------------------------------------------------------------------------------------------------
# our schema files themselves


def test_our_schemas_compile_offline_with_relative_locations_only() -> None:
    files = sorted(OURS.glob("*.xsd"))
    assert {f.name for f in files} >= {
        "msghead-1.2.xsd",
        "apprec-1.0.xsd",
        "apprec-1.1.xsd",
        "dialogmelding-1.0.xsd",
        "dialogmelding-1.1.xsd",
        "kith-types.xsd",
        "felleskomponent1-types.xsd",
    }
    for f in files:
        doc = etree.parse(str(f), etree.XMLParser(no_network=True))
        for imp in doc.getroot().iter(f"{{{XS}}}import", f"{{{XS}}}include", f"{{{XS}}}redefine"):
            loc = imp.get("schemaLocation", "")
            assert loc and "://" not in loc and (OURS / loc).is_file(), f"{f.name}: schemaLocation {loc!r}"
        etree.XMLSchema(doc)  # compiles on its own
    for ns in SCHEMAS:
        assert ours(ns) is not None


def test_one_file_with_global_elements_per_namespace() -> None:
    by_ns: dict[str, list[str]] = {}
    for f in sorted(OURS.glob("*.xsd")):
        root = etree.parse(str(f)).getroot()
        ns = root.get("targetNamespace")
        assert ns, f"{f.name} has no targetNamespace"
        assert root.find(f"{{{XS}}}annotation") is None and not list(root.iter(f"{{{XS}}}documentation")), (
            f"{f.name}: no annotation/documentation blocks in our schemas"
        )
        if root.findall(f"{{{XS}}}element"):
            by_ns.setdefault(ns, []).append(f.name)
    assert by_ns.get(MH) == ["msghead-1.2.xsd"]
    assert by_ns.get(AR10) == ["apprec-1.0.xsd"]
    assert by_ns.get(AR11) == ["apprec-1.1.xsd"]
    assert by_ns.get(DIA10) == ["dialogmelding-1.0.xsd"]
    assert by_ns.get(DIA11) == ["dialogmelding-1.1.xsd"]
    assert by_ns.get(KITH) == ["kith-types.xsd"]  # kith.xsd's global REF, as published
    assert FK1 not in by_ns
    assert all(len(names) == 1 for names in by_ns.values()), by_ns


def test_same_global_declarations_as_published() -> None:
    """Global elements decide which roots a document may have (and what wildcards match); global type names
    can be named by an instance's xsi:type; global attributes are checked wherever attributes are lax. All must
    be the published ones: Dialogmelding's xs:anyType content (TekstNotatInnhold, 1.1's Sporsmal) is checked
    laxly against every global element, attribute and type of the schema set, kith and felleskomponent1 included.
    """

    def globals_of(schema_doc_path: Path, target: str, kind: str) -> set[str]:
        root = etree.parse(str(schema_doc_path), etree.XMLParser(no_network=True)).getroot()
        assert root.get("targetNamespace") == target
        if kind in ("element", "attribute"):
            return {str(e.get("name")) for e in root.findall(f"{{{XS}}}{kind}")}
        return {
            str(e.get("name"))
            for e in root.findall(f"{{{XS}}}complexType") + root.findall(f"{{{XS}}}simpleType")
        }

    pairs = [(ns, STANDARDS / pub, OURS / own) for ns, (pub, own) in SCHEMAS.items()]
    pairs.append((DS, STANDARDS / "w3c/xmldsig-core-schema.xsd", OURS / "xmldsig-core.xsd"))
    # the type libraries, both where AppRec 1.1 / Dialogmelding 1.1 and where Dialogmelding 1.0 import them from
    for folder in ("felleskomponenter", "dialogmelding/2006-10-11"):
        pairs.append((KITH, STANDARDS / folder / "kith.xsd", OURS / "kith-types.xsd"))
        pairs.append((FK1, STANDARDS / folder / "felleskomponent1.xsd", OURS / "felleskomponent1-types.xsd"))
    for ns, pub_path, own_path in pairs:
        for kind in ("element", "type", "attribute"):
            assert globals_of(own_path, ns, kind) == globals_of(pub_path, ns, kind), (ns, pub_path.name, kind)


# ----------------------------------------------------------------------------------------------------
# every MsgHead, AppRec and Dialogmelding among the samples


@pytest.mark.parametrize("rel", [p.relative_to(SAMPLES).as_posix() for p in sample_files()])
def test_sample_verdicts_match_published(rel: str) -> None:
    found = instances_in(rel)
    if found is None:
        pytest.skip("not well-formed XML")
    for inst in found:
        where = f"{rel} line {inst.line} ({inst.what})"
        assert inst.ours.valid == inst.published.valid, (
            f"{where}: published says {inst.published.valid} {inst.published.errors[:1]}, "
            f"ours says {inst.ours.valid} {inst.ours.errors[:1]}"
        )
        if not inst.published.valid:
            # comparable error reporting: the first error is about the same element
            assert inst.ours.first_element == inst.published.first_element, (
                where,
                inst.published.errors[0],
                inst.ours.errors[0],
            )


def test_sample_counts_match_validation_md() -> None:
    instances = all_instances()
    summary = validation_summary()
    per_file = validation_per_file()
    assert summary, "could not read the summary table of VALIDATION.md"

    # every instance: ours == published (the parametrized test says where, this is the total)
    disagree = [i for i in instances if i.ours.valid != i.published.valid]
    assert not disagree, [(i.file, i.what) for i in disagree]
    whats = Counter(i.what for i in instances)
    assert whats["MsgHead"] > 0 and whats["AppRec"] > 0 and whats["Dialogmelding"] > 0 and whats["Base64Container"] > 0

    # files and well-formedness per kind, as in the summary
    files_by_kind: Counter[str] = Counter()
    nwf_by_kind: Counter[str] = Counter()
    for path in sample_files():
        rel = path.relative_to(SAMPLES).as_posix()
        if "/" not in rel:
            continue  # SOURCES.md, VALIDATION.md
        kind = rel.split("/", 1)[0]
        files_by_kind[kind] += 1
        nwf_by_kind[kind] += instances_in(rel) is None
    for kind, row in summary.items():
        assert (files_by_kind[kind], nwf_by_kind[kind]) == (row.files, row.not_well_formed), kind

    # MsgHead envelopes: VALIDATION.md counts files (a file is valid when all its outermost MsgHeads are)
    for which in ("published", "ours"):
        valid_by_kind: Counter[str] = Counter()
        invalid_by_kind: Counter[str] = Counter()
        by_file: dict[str, list[bool]] = {}
        for inst in instances:
            if inst.what == "MsgHead":
                by_file.setdefault(inst.file, []).append(getattr(inst, which).valid)
        for rel, oks in by_file.items():
            (valid_by_kind if all(oks) else invalid_by_kind)[rel.split("/", 1)[0]] += 1
            expected = per_file[rel][0]
            assert expected.startswith("valid" if all(oks) else "INVALID"), (which, rel, expected)
        for kind, row in summary.items():
            assert (valid_by_kind[kind], invalid_by_kind[kind]) == (
                row.envelope_valid,
                row.envelope_invalid,
            ), (
                which,
                kind,
            )
        assert sum(valid_by_kind.values()) == sum(r.envelope_valid for r in summary.values())
        assert sum(invalid_by_kind.values()) == sum(r.envelope_invalid for r in summary.values())
        # files VALIDATION.md gives an envelope result for are exactly the files with a MsgHead
        assert set(by_file) == {
            rel for rel, (env, _) in per_file.items() if env.startswith(("valid", "INVALID"))
        }

        # AppRec and Dialogmelding: per file (and per version) from the per-file table
        for what, namespaces in (("AppRec", (AR10, AR11)), ("Dialogmelding", (DIA10, DIA11)),
                                 ("Base64Container", (B64,))):
            got = sorted((i.file, i.ns, getattr(i, which).valid) for i in instances if i.what == what)
            expected_parts = sorted(
                (rel, ns, ok) for rel, (_, parts) in per_file.items() for ns, ok in parts if ns in namespaces
            )
            assert got == expected_parts, (which, what)
        apprecs = [i for i in instances if i.what == "AppRec"]
        row = summary["apprec"]
        in_kind = [getattr(i, which).valid for i in apprecs if i.kind == "apprec"]
        assert len(in_kind) == len(apprecs)  # every AppRec sample lives under apprec/
        assert (in_kind.count(True), in_kind.count(False)) == (row.parts_valid, row.parts_invalid), which


def test_dialogmelding_counts_per_version() -> None:
    """Every Dialogmelding 1.0 / 1.1 document among the samples, per version: VALIDATION.md's counts, with both
    schemas' verdicts (the per-file comparison is in the tests above)."""
    expected: Counter[tuple[str, bool]] = Counter(
        (ns, ok) for _, parts in validation_per_file().values() for ns, ok in parts if ns in (DIA10, DIA11)
    )
    dialogs = [i for i in all_instances() if i.what == "Dialogmelding"]
    for which in ("published", "ours"):
        assert Counter((i.ns, getattr(i, which).valid) for i in dialogs) == expected, which
    assert all(i.kind == "dialogmelding" for i in dialogs)
    for ns in (DIA10, DIA11):
        assert expected[ns, True] + expected[ns, False] > 30, ns  # the table was read
    print({ns: {"valid": expected[ns, True], "invalid": expected[ns, False]} for ns in (DIA10, DIA11)})


# ----------------------------------------------------------------------------------------------------
# targeted mutations of valid samples

MSGHEAD_SAMPLE = (
    "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-0/Dialogmelding_avvik_v1-0.xml"
)
SIGNED_SAMPLE = "other/navikt-syfosmmottak/fellesformat-behandlingsdager.xml"
APPREC10_SAMPLE = "apprec/ks-no-fiks-nhn-client/app-rec/1.0/all-data.xml"
APPREC11_SAMPLE = "apprec/ks-no-fiks-nhn-client/app-rec/1.1/all-data.xml"
APPREC11_REJECTION = "apprec/ks-no-fiks-nhn-client/app-rec/1.1/example-avvist.xml"
# "#Dialogmelding": the business document inside the sample's MsgHead, not its envelope (see base_doc)
DIALOG10_SAMPLE = (
    "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-0/Dialogmelding_svar_foresporsel_PLO_v1-0.xml"
    "#Dialogmelding"
)
BASE64_SAMPLE = "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml#Base64Container"
DIALOG11_SAMPLE = (
    "dialogmelding/sarepta-eksempel/DigitalDialogImplementasjonsguideStandarder/"
    "SystemdokumentasjonKommunikasjonsprosesser-verifiserbare/DIALOG_INNBYGGER_TIMER/1.2_ikke_publisert/"
    "1.2_-_Svar_pa_henvendelse.xml#Dialogmelding"
)


def base_doc(sample: str) -> etree._ElementTree:
    """The document a mutation starts from: "file" is the file's first MsgHead envelope (else its AppRec),
    "file#Dialogmelding" the file's first Dialogmelding document, on its own."""
    rel, _, part = sample.partition("#")
    tree = parse(SAMPLES / rel)
    assert tree is not None, rel
    if part == "Dialogmelding":
        return standalone_copy(next(tree.iter(*DIALOG_TAGS)))
    if part == "Base64Container":
        return standalone_copy(next(tree.iter(BASE64_TAG)))
    mh = outermost_msgheads(tree)
    if mh:
        return envelope_copy(mh[0])
    return standalone_copy(next(tree.iter(*APPREC_TAGS)))


def find(doc: etree._ElementTree, path: str) -> etree._Element:
    """path: ElementPath from the root, "x:" standing for the root's namespace (also "ds:", "fk1:")."""
    ns = etree.QName(doc.getroot()).namespace
    path = path.replace("x:", f"{{{ns}}}").replace("ds:", f"{{{DS}}}").replace("fk1:", f"{{{FK1}}}")
    el = doc.getroot().find(path)
    assert el is not None, path
    return el


Mutation = Callable[[etree._ElementTree], None]

_RRN = "x:Notat/x:RollerRelatertNotat"
_HP = f"{_RRN}/x:HealthcareProfessional"
# a valid Dialogmelding 1.1 TilknyttetEnhet: an organisation (felleskomponent1, its own namespace) and a remark
_UNIT = (
    "<TilknyttetEnhet><Kontaktenhet><fk1:OrganisationName>Legekontoret</fk1:OrganisationName>"
    '<fk1:Ident><fk1:Id>123</fk1:Id><fk1:TypeId V="HER" S="2.16.578.1.12.4.1.1.9051"/></fk1:Ident>'
    "</Kontaktenhet><Merknad>fast kontakt</Merknad></TilknyttetEnhet>"
)


def remove(path: str) -> Mutation:
    def mutate(doc: etree._ElementTree) -> None:
        el = find(doc, path)
        parent = el.getparent()
        assert parent is not None
        parent.remove(el)

    return mutate


def set_attr(path: str, name: str, value: str) -> Mutation:
    def mutate(doc: etree._ElementTree) -> None:
        find(doc, path).set(name, value)

    return mutate


def drop_attr(path: str, name: str) -> Mutation:
    def mutate(doc: etree._ElementTree) -> None:
        del find(doc, path).attrib[name]

    return mutate


def set_text(path: str, value: str) -> Mutation:
    def mutate(doc: etree._ElementTree) -> None:
        find(doc, path).text = value

    return mutate


def insert_unknown(path: str, index: int, name: str = "Comment") -> Mutation:
    def mutate(doc: etree._ElementTree) -> None:
        ns = etree.QName(doc.getroot()).namespace
        find(doc, path).insert(index, etree.Element(f"{{{ns}}}{name}"))

    return mutate


def insert_xml(path: str, index: int, fragment: str) -> Mutation:
    """Insert the fragment's elements as children of path, from position index. Unprefixed names are in the
    root's namespace; the prefixes kith:, fk1: and xsi: are bound. A prefix used only inside an attribute value
    (xsi:type="kith:TS") must be declared on the fragment's element itself: only that travels with it."""

    def mutate(doc: etree._ElementTree) -> None:
        ns = etree.QName(doc.getroot()).namespace
        wrapper = etree.fromstring(
            f'<w xmlns="{ns}" xmlns:kith="{KITH}" xmlns:fk1="{FK1}" xmlns:xsi="{XSI}">{fragment}</w>'
        )
        parent = find(doc, path)
        for offset, child in enumerate(list(wrapper)):
            parent.insert(index + offset, child)

    return mutate


def duplicate(path: str) -> Mutation:
    """Repeat the element right after itself (one occurrence too many where at most one is allowed)."""

    def mutate(doc: etree._ElementTree) -> None:
        el = find(doc, path)
        el.addnext(copy.deepcopy(el))

    return mutate


def move_after(path: str, anchor: str) -> Mutation:
    """Move the element at path to just after the element at anchor (out of the order the schema requires)."""

    def mutate(doc: etree._ElementTree) -> None:
        find(doc, anchor).addnext(find(doc, path))

    return mutate


def base64_signature(doc: etree._ElementTree) -> None:
    """The NAV sample's signature has placeholder values that are not base64 ('123=', 'signature', ...)."""
    for path in (
        "ds:Signature/ds:SignedInfo/ds:Reference/ds:DigestValue",
        "ds:Signature/ds:SignatureValue",
        "ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate",
    ):
        find(doc, path).text = "QUJDRA=="


def signed(mutation: Mutation | None = None) -> Mutation:
    """Mutate the signed sample after making its signature values base64 (valid before the mutation)."""

    def mutate(doc: etree._ElementTree) -> None:
        base64_signature(doc)
        if mutation is not None:
            mutation(doc)

    return mutate


MUTATIONS: dict[str, tuple[str, Mutation, str]] = {
    # name: (sample, mutation, a word the first error of both schemas must mention)
    "msghead-missing-MsgId": (MSGHEAD_SAMPLE, remove("x:MsgInfo/x:MsgId"), "MsgId"),
    "msghead-Type-attribute-not-in-CS": (
        MSGHEAD_SAMPLE,
        set_attr("x:MsgInfo/x:Type", "S", "2.16.578.1.12.4.1.1.8279"),
        "'S'",
    ),
    "msghead-TypeId-S-not-an-oid": (
        MSGHEAD_SAMPLE,
        set_attr(".//x:Ident/x:TypeId", "S", "2.16.578.1.12.4.1.1.x9051"),
        "TypeId",
    ),
    "msghead-wrong-MIGversion": (
        MSGHEAD_SAMPLE,
        set_text("x:MsgInfo/x:MIGversion", "v1.1 2006-02-15"),
        "MIGversion",
    ),
    "msghead-bad-GenDate": (
        MSGHEAD_SAMPLE,
        set_text("x:MsgInfo/x:GenDate", "2008-13-32T10:00:00"),
        "GenDate",
    ),
    "msghead-date-without-time": (MSGHEAD_SAMPLE, set_text("x:MsgInfo/x:GenDate", "2008-06-13"), "GenDate"),
    "msghead-bad-IssueDate-TS": (
        MSGHEAD_SAMPLE,
        set_attr("x:Document/x:RefDoc/x:IssueDate", "V", "13.06.2008"),
        "IssueDate",
    ),
    "msghead-unknown-child-in-MsgInfo": (MSGHEAD_SAMPLE, insert_unknown("x:MsgInfo", 4), "Comment"),
    "msghead-missing-Receiver": (MSGHEAD_SAMPLE, remove("x:MsgInfo/x:Receiver"), "Receiver"),
    "msghead-text-in-Content": (
        MSGHEAD_SAMPLE,
        set_text("x:Document/x:RefDoc/x:Content", "base64?"),
        "Content",
    ),
    "msghead-signature-value-not-base64": (
        SIGNED_SAMPLE,
        signed(set_text("ds:Signature/ds:SignatureValue", "not base64!")),
        "SignatureValue",
    ),
    "msghead-signature-missing-SignedInfo": (
        SIGNED_SAMPLE,
        signed(remove("ds:Signature/ds:SignedInfo")),
        "SignedInfo",
    ),
    "msghead-signature-missing-Algorithm": (
        SIGNED_SAMPLE,
        signed(drop_attr("ds:Signature/ds:SignedInfo/ds:SignatureMethod", "Algorithm")),
        "SignatureMethod",
    ),
    "apprec10-missing-Status": (APPREC10_SAMPLE, remove("x:Status"), "Status"),
    "apprec11-missing-Status": (APPREC11_SAMPLE, remove("x:Status"), "Status"),
    "apprec10-bad-GenDate": (APPREC10_SAMPLE, set_text("x:GenDate", "21.11.2004"), "GenDate"),
    "apprec11-unknown-child": (APPREC11_SAMPLE, insert_unknown(".", 2), "Comment"),
    "apprec11-Error-S-not-an-oid": (APPREC11_REJECTION, set_attr("x:Error", "S", "kith:8221"), "Error"),
    "apprec10-missing-OriginalMsgId-Id": (APPREC10_SAMPLE, remove("x:OriginalMsgId/x:Id"), "OriginalMsgId"),
    # Dialogmelding 1.0 only (the base: a Notat answering a Foresporsel, with a HealthcareProfessional)
    "dialog10-two-TypeJournalinfo": (  # 1.1 allows any number
        DIALOG10_SAMPLE,
        insert_xml("x:Notat/x:Foresporsel", 2, '<TypeJournalinfo V="1"/><TypeJournalinfo V="2"/>'),
        "TypeJournalinfo",
    ),
    "dialog10-RollerRelatertNotat-without-person": (  # 1.1 allows it
        DIALOG10_SAMPLE,
        remove(f"{_RRN}/x:HealthcareProfessional"),
        "RollerRelatertNotat",
    ),
    "dialog10-markup-in-Sporsmal": (  # a string in 1.0, xs:anyType in 1.1
        DIALOG10_SAMPLE,
        insert_xml("x:Notat/x:Foresporsel/x:Sporsmal", 0, "<b>!</b>"),
        "Sporsmal",
    ),
    # Dialogmelding 1.1 only (the base: the same, the Foresporsel with EmneSporsmal)
    "dialog11-unknown-element-in-Foresporsel": (
        DIALOG11_SAMPLE,
        insert_unknown("x:Notat/x:Foresporsel", 1, "Nonsense"),
        "Nonsense",
    ),
    "dialog11-EmneSporsmal-after-Sporsmal": (
        DIALOG11_SAMPLE,
        move_after("x:Notat/x:Foresporsel/x:EmneSporsmal", "x:Notat/x:Foresporsel/x:Sporsmal"),
        "EmneSporsmal",
    ),
    "dialog11-two-TekstNotatInnhold": (DIALOG11_SAMPLE, duplicate("x:Notat/x:TekstNotatInnhold"), "TekstNotatInnhold"),
    "dialog11-two-KodetOpplysning": (
        DIALOG11_SAMPLE,
        insert_xml("x:Notat/x:Foresporsel", 3, '<KodetOpplysning V="1"/><KodetOpplysning V="2"/>'),
        "KodetOpplysning",
    ),
    "dialog11-bad-FraDato": (
        DIALOG11_SAMPLE,
        insert_xml("x:Notat/x:Foresporsel", 3, "<FraDato>2019-02-30</FraDato>"),
        "FraDato",
    ),
    "dialog11-TilknyttetEnhet-without-Kontaktenhet": (
        DIALOG11_SAMPLE,
        insert_xml(_RRN, 1, "<TilknyttetEnhet><Merknad>x</Merknad></TilknyttetEnhet>"),
        "Kontaktenhet",
    ),
    "dialog11-Kontaktenhet-without-Ident": (
        DIALOG11_SAMPLE,
        insert_xml(
            _RRN,
            1,
            "<TilknyttetEnhet><Kontaktenhet><fk1:OrganisationName>Legekontoret</fk1:OrganisationName>"
            "</Kontaktenhet></TilknyttetEnhet>",
        ),
        "Kontaktenhet",
    ),
    "dialog11-TilknyttetEnhet-after-HealthcareProfessional": (
        DIALOG11_SAMPLE,
        insert_xml(_RRN, 2, _UNIT),
        "TilknyttetEnhet",
    ),
    # Sporsmal is xs:anyType in 1.1: its content is checked against kith.xsd's global declarations
    "dialog11-kith-REF-with-content-in-Sporsmal": (
        DIALOG11_SAMPLE,
        insert_xml("x:Notat/x:Foresporsel/x:Sporsmal", 0, "<kith:REF><b/></kith:REF>"),
        "REF",
    ),
    "dialog11-xsi-type-kith-TS-inside-Sporsmal": (
        DIALOG11_SAMPLE,
        insert_xml(
            "x:Notat/x:Foresporsel/x:Sporsmal", 0, f'<when xmlns:kith="{KITH}" xsi:type="kith:TS" V="neste uke"/>'
        ),
        "'neste uke'",
    ),
}

# the same change to the sample of either Dialogmelding version: name -> (mutation, word)
EITHER_DIALOGMELDING: dict[str, tuple[Mutation, str]] = {
    "unknown-element": (insert_unknown("x:Notat", 1, "Nonsense"), "Nonsense"),
    "missing-TemaKodet": (remove("x:Notat/x:TemaKodet"), "TemaKodet"),
    "missing-TypeForesp": (remove("x:Notat/x:Foresporsel/x:TypeForesp"), "TypeForesp"),
    "TemaKodet-after-TekstNotatInnhold": (
        move_after("x:Notat/x:TemaKodet", "x:Notat/x:TekstNotatInnhold"),
        "TemaKodet",
    ),
    "FamilyName-after-GivenName": (move_after(f"{_HP}/x:FamilyName", f"{_HP}/x:GivenName"), "FamilyName"),
    "two-Foresporsel-in-Notat": (duplicate("x:Notat/x:Foresporsel"), "Foresporsel"),
    "notes-and-enquiries-mixed": (insert_xml(".", 1, '<Foresporsel><TypeForesp V="1"/></Foresporsel>'), "Foresporsel"),
    "HealthcareProfessional-and-Person": (insert_xml(_RRN, 2, "<Person/>"), "Person"),
    "TemaKodet-S-not-an-oid": (set_attr("x:Notat/x:TemaKodet", "S", "kith:9069"), "TemaKodet"),
    "bad-DatoNotat": (insert_xml("x:Notat", 2, "<DatoNotat>16.01.2019</DatoNotat>"), "DatoNotat"),
    "Ident-without-Id": (remove(f"{_HP}/x:Ident/fk1:Id"), "TypeId"),
    # TekstNotatInnhold is xs:anyType: its content is checked against kith.xsd's and felleskomponent1's globals
    "kith-REF-with-content-in-TekstNotatInnhold": (
        insert_xml("x:Notat/x:TekstNotatInnhold", 0, "<kith:REF><b/></kith:REF>"),
        "REF",
    ),
    "kith-NULL-not-a-null-flavour": (set_attr("x:Notat/x:TekstNotatInnhold", f"{{{KITH}}}NULL", "bad"), "NULL"),
    "xsi-type-fk1-Ident-on-TekstNotatInnhold": (
        set_attr("x:Notat/x:TekstNotatInnhold", f"{{{XSI}}}type", "fk1:Ident"),
        "TekstNotatInnhold",
    ),
}
MUTATIONS |= {
    f"{version}-{name}": (sample, mutation, word)
    for version, sample in (("dialog10", DIALOG10_SAMPLE), ("dialog11", DIALOG11_SAMPLE))
    for name, (mutation, word) in EITHER_DIALOGMELDING.items()
}

MUTATIONS |= {
    "base64-not-base64": (BASE64_SAMPLE, set_text(".", "not base64!"), "Base64Container"),
    "base64-attribute": (BASE64_SAMPLE, set_attr(".", "MimeType", "application/pdf"), "MimeType"),
    "base64-child-element": (BASE64_SAMPLE, insert_unknown(".", 0), "Base64Container"),
}

# changes both schemas accept: what 1.1 relaxed against 1.0, and what the xs:anyType elements let through
ACCEPTED: dict[str, tuple[str, Mutation]] = {
    "dialog10-neither-notes-nor-enquiries": (DIALOG10_SAMPLE, remove("x:Notat")),
    "dialog10-unknown-markup-in-TekstNotatInnhold": (
        DIALOG10_SAMPLE,
        insert_xml("x:Notat/x:TekstNotatInnhold", 0, "<Nonsense><b>!</b></Nonsense>"),
    ),
    "dialog10-kith-NULL-flavour-on-TekstNotatInnhold": (
        DIALOG10_SAMPLE,
        set_attr("x:Notat/x:TekstNotatInnhold", f"{{{KITH}}}NULL", "NI"),
    ),
    "dialog10-xsi-type-kith-TN-inside-TekstNotatInnhold": (
        DIALOG10_SAMPLE,
        insert_xml(
            "x:Notat/x:TekstNotatInnhold",
            0,
            f'<vedlegg xmlns:kith="{KITH}" xsi:type="kith:TN" kith:MT="text/plain" kith:COMPN="GZ">'
            '<kith:REF V="cid:vedlegg-1"/></vedlegg>',
        ),
    ),
    "dialog11-RollerRelatertNotat-without-person": (
        DIALOG11_SAMPLE,
        remove(f"{_RRN}/x:HealthcareProfessional"),
    ),
    "dialog11-TilknyttetEnhet": (DIALOG11_SAMPLE, insert_xml(_RRN, 1, _UNIT)),
    "dialog11-xhtml-in-Sporsmal": (
        DIALOG11_SAMPLE,
        insert_xml(
            "x:Notat/x:Foresporsel/x:Sporsmal", 0, '<p xmlns="http://www.w3.org/1999/xhtml">Hei <b>du</b></p>'
        ),
    ),
    "dialog11-two-TypeJournalinfo": (
        DIALOG11_SAMPLE,
        insert_xml("x:Notat/x:Foresporsel", 3, '<TypeJournalinfo V="1"/><TypeJournalinfo V="2"/>'),
    ),
}


@pytest.mark.parametrize(
    "rel",
    [MSGHEAD_SAMPLE, APPREC10_SAMPLE, APPREC11_SAMPLE, APPREC11_REJECTION, DIALOG10_SAMPLE, DIALOG11_SAMPLE,
     BASE64_SAMPLE],
)
def test_mutation_bases_are_valid(rel: str) -> None:
    doc = base_doc(rel)
    ns = etree.QName(doc.getroot()).namespace
    assert verdict(published(ns), doc).valid and verdict(ours(ns), doc).valid


def test_signed_base_is_valid_once_digest_is_base64() -> None:
    doc = base_doc(SIGNED_SAMPLE)
    assert not verdict(published(MH), doc).valid and not verdict(ours(MH), doc).valid  # as in VALIDATION.md
    base64_signature(doc)
    assert verdict(published(MH), doc).valid and verdict(ours(MH), doc).valid


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_rejected_by_both(name: str) -> None:
    rel, mutate, mentioned = MUTATIONS[name]
    doc = base_doc(rel)
    mutate(doc)
    ns = etree.QName(doc.getroot()).namespace
    pub, own = verdict(published(ns), doc), verdict(ours(ns), doc)
    assert not pub.valid, f"{name}: the published schema accepts it, the mutation tests nothing"
    assert not own.valid, f"{name}: ours accepts what the published rejects: {pub.errors[0]}"
    assert own.first_element == pub.first_element, (pub.errors[0], own.errors[0])
    assert mentioned in pub.errors[0] and mentioned in own.errors[0], (pub.errors[0], own.errors[0])
    if ns in (DIA10, DIA11):
        assert own.errors == pub.errors  # same content models, so libxml2 reports every error the same way


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_mutation_accepted_by_both(name: str) -> None:
    rel, mutate = ACCEPTED[name]
    doc = base_doc(rel)
    mutate(doc)
    ns = etree.QName(doc.getroot()).namespace
    pub, own = verdict(published(ns), doc), verdict(ours(ns), doc)
    assert pub.valid, f"{name}: the published schema rejects it: {pub.errors[:1]}"
    assert own.valid, f"{name}: ours rejects what the published accepts: {own.errors[:1]}"


def test_content_is_skipped_by_ours_only() -> None:
    """The one deliberate difference: Content's children are not looked at by our envelope schema."""
    tree = parse(SAMPLES / MSGHEAD_SAMPLE)
    assert tree is not None
    whole = standalone_copy(outermost_msgheads(tree)[0])  # Content children NOT detached
    unknown = etree.SubElement(find(whole, "x:Document/x:RefDoc/x:Content"), "{urn:example:not-a-schema}Doc")
    unknown.text = "anything"
    assert verdict(ours(MH), whole).valid
    pub = verdict(published(MH), whole)
    assert not pub.valid and "strict wildcard" in pub.errors[0]
    # with the children detached, as the engine validates envelopes, both agree again
    assert verdict(published(MH), envelope_copy(whole.getroot())).valid


# ----------------------------------------------------------------------------------------------------
# the engine with the built-in schemas only

DIALOG11_WHOLE = (  # a message whose every part has a built-in schema (DIALOG11_SAMPLE also carries iCalendar)
    "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Status_paa_henvisning-InnkaltEtterViderehenvisning.xml"
)


def test_builtin_catalog_picks_our_files() -> None:
    catalog = SchemaCatalog()  # no schema directory: the built-in set only
    found = {ns: source.path.name for ns in catalog.namespaces if (source := catalog.source(ns))}
    assert {ns: found.get(ns) for ns in SCHEMAS} == {ns: own for ns, (_, own) in SCHEMAS.items()}
    assert found.get(KITH) == "kith-types.xsd" and FK1 not in found  # a type library with no elements
    for ns in SCHEMAS:
        assert catalog.schema_for(ns) is not None


@pytest.mark.parametrize(
    ("rel", "version", "mutation", "element"),
    [
        (DIALOG10_SAMPLE.partition("#")[0], "1.0", insert_unknown("x:Notat", 1, "Nonsense"), "Notat/Nonsense"),
        (DIALOG11_WHOLE, "1.1", insert_xml("x:Notat", 1, "<DatoNotat>19.01.2018</DatoNotat>"), "Notat/DatoNotat"),
    ],
)
def test_engine_with_builtin_schemas_judges_dialogmelding(
    rel: str, version: str, mutation: Mutation, element: str
) -> None:
    """Validator(SchemaCatalog()) accepts the valid Dialogmelding message, and refuses it once its business
    document breaks the schema: EDI-SCH-001 / T02 at the offending line and path, exactly the problems the
    published schemas give."""
    builtin = Validator(SchemaCatalog())
    data = (SAMPLES / rel).read_bytes()
    report = builtin.validate(data)
    assert report.valid is True, report.problems
    assert [(p.standard, p.version, p.valid) for p in report.parts if p.kind is PartKind.DOCUMENT] == [
        ("Dialogmelding", version, True)
    ]

    tree = parse(SAMPLES / rel)
    assert tree is not None
    [dialog] = [d for mh in outermost_msgheads(tree) for d in content_documents(mh) if d.tag in DIALOG_TAGS]
    mutation(etree.ElementTree(dialog))  # in place, inside the message
    broken = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    steps = "/".join(f"d:{name}" for name in element.split("/"))
    offending = etree.fromstring(broken).find(
        f"m:Document/m:RefDoc/m:Content/d:Dialogmelding/{steps}", {"m": MH, "d": etree.QName(dialog).namespace}
    )
    assert offending is not None

    report = builtin.validate(broken)
    assert report.valid is False
    errors = report.errors
    assert errors and {(p.code, p.apprec_code) for p in errors} == {("EDI-SCH-001", "T02")}
    first = errors[0]
    assert first.line == offending.sourceline
    assert first.path == f"/MsgHead/Document/RefDoc/Content/Dialogmelding/{element}"
    assert f"Dialogmelding {version}" in first.message
    assert [(p.kind, p.valid) for p in report.parts] == [(PartKind.ENVELOPE, True), (PartKind.DOCUMENT, False)]
    # the published schemas say the same, in the same words
    assert Validator(SchemaCatalog([STANDARDS])).validate(broken).problems == report.problems

