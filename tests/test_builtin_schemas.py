"""The project's own MsgHead 1.2 / AppRec 1.0 / 1.1 schemas (src/edi/schemas/xsd) vs the published ones.

For every MsgHead envelope and every AppRec among the shared samples, the verdict (valid / invalid) of our
schema must equal the verdict of the published schema, computed live here with lxml, and the summary in
samples/VALIDATION.md must be reproduced. Envelopes are validated the way VALIDATION.md's method does it
(and the way the validation engine does it): a deep copy of the outermost MsgHead with the children of
every Document/RefDoc/Content detached. Targeted mutations of valid samples then show that both reject the
same things.

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

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "samples"
STANDARDS = SHARED / "standards"
OURS = Path(edi.schemas.__file__).resolve().parent / "xsd"

if not (SAMPLES / "VALIDATION.md").is_file() or not (STANDARDS / "catalog.xml").is_file():
    pytest.skip(f"shared reference material not found under {SHARED}", allow_module_level=True)

MH = "http://www.kith.no/xmlstds/msghead/2006-05-24"
AR10 = "http://www.kith.no/xmlstds/apprec/2004-11-21"
AR11 = "http://www.kith.no/xmlstds/apprec/2012-02-15"
DS = "http://www.w3.org/2000/09/xmldsig#"
XS = "http://www.w3.org/2001/XMLSchema"

# namespace -> (published top-level XSD relative to shared/standards, our file)
SCHEMAS = {
    MH: ("felleskomponenter/MsgHead-v1_2.xsd", "msghead-1.2.xsd"),
    AR10: ("applikasjonskvittering/AppRec-v1-2004-11-21.xsd", "apprec-1.0.xsd"),
    AR11: ("applikasjonskvittering/AppRec-v1.1.xsd", "apprec-1.1.xsd"),
}

MSGHEAD = f"{{{MH}}}MsgHead"
APPREC_TAGS = (f"{{{AR10}}}AppRec", f"{{{AR11}}}AppRec")


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
    what: str  # "MsgHead" or "AppRec"
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
    for mh in outermost_msgheads(tree):
        doc = envelope_copy(mh)
        found.append(
            Instance(
                rel,
                kind,
                "MsgHead",
                MH,
                mh.sourceline or 0,
                verdict(published(MH), doc),
                verdict(ours(MH), doc),
            )
        )
    for ar in tree.iter(*APPREC_TAGS):
        ns = etree.QName(ar).namespace
        doc = standalone_copy(ar)
        found.append(
            Instance(
                rel,
                kind,
                "AppRec",
                ns,
                ar.sourceline or 0,
                verdict(published(ns), doc),
                verdict(ours(ns), doc),
            )
        )
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
    """file -> (envelope result cell, ((apprec namespace, valid), ...)) from the per-file table."""
    text = (SAMPLES / "VALIDATION.md").read_text(encoding="utf-8")
    out: dict[str, tuple[str, tuple[tuple[str, bool], ...]]] = {}
    for line in text.splitlines():
        m = re.match(r"\| `([^`]+)` \| [^|]* \| [^|]* \| ([^|]*) \|", line)
        if not m:
            continue
        apprecs = tuple(
            (f"http://www.kith.no/xmlstds/apprec/{date}", result == "valid")
            for date, result in re.findall(r"`kith:apprec/([\d-]+)` → `[^`]*` → (valid|INVALID)", line)
        )
        out[m.group(1)] = (m.group(2).strip(), apprecs)
    return out


# ----------------------------------------------------------------------------------------------------
# our schema files themselves


def test_our_schemas_compile_offline_with_relative_locations_only() -> None:
    files = sorted(OURS.glob("*.xsd"))
    assert {f.name for f in files} >= {
        "msghead-1.2.xsd",
        "apprec-1.0.xsd",
        "apprec-1.1.xsd",
        "kith-types.xsd",
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
    assert all(len(names) == 1 for names in by_ns.values()), by_ns


def test_same_global_declarations_as_published() -> None:
    """Global elements decide which roots a document may have (and what wildcards match); global type names
    can be named by an instance's xsi:type. Both must be the published ones (kith-types: a subset)."""

    def globals_of(schema_doc_path: Path, target: str, kind: str) -> set[str]:
        root = etree.parse(str(schema_doc_path), etree.XMLParser(no_network=True)).getroot()
        assert root.get("targetNamespace") == target
        if kind == "element":
            return {str(e.get("name")) for e in root.findall(f"{{{XS}}}element")}
        return {
            str(e.get("name"))
            for e in root.findall(f"{{{XS}}}complexType") + root.findall(f"{{{XS}}}simpleType")
        }

    pairs = [(ns, STANDARDS / pub, OURS / own) for ns, (pub, own) in SCHEMAS.items()]
    pairs.append((DS, STANDARDS / "w3c/xmldsig-core-schema.xsd", OURS / "xmldsig-core.xsd"))
    for ns, pub_path, own_path in pairs:
        for kind in ("element", "type"):
            assert globals_of(own_path, ns, kind) == globals_of(pub_path, ns, kind), (ns, kind)
    kith_pub = STANDARDS / "felleskomponenter/kith.xsd"
    kith_own = OURS / "kith-types.xsd"
    assert globals_of(kith_own, "http://www.kith.no/xmlstds", "element") == set()
    assert globals_of(kith_own, "http://www.kith.no/xmlstds", "type") <= globals_of(
        kith_pub, "http://www.kith.no/xmlstds", "type"
    )


# ----------------------------------------------------------------------------------------------------
# every MsgHead and AppRec among the samples


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
    assert whats["MsgHead"] > 0 and whats["AppRec"] > 0

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

        # AppRec: per file from the per-file table, and the apprec kind's business-document counts
        apprecs = [i for i in instances if i.what == "AppRec"]
        got = sorted((i.file, i.ns, getattr(i, which).valid) for i in apprecs)
        expected_apprecs = sorted((rel, ns, ok) for rel, (_, parts) in per_file.items() for ns, ok in parts)
        assert got == expected_apprecs, which
        row = summary["apprec"]
        in_kind = [getattr(i, which).valid for i in apprecs if i.kind == "apprec"]
        assert len(in_kind) == len(apprecs)  # every AppRec sample lives under apprec/
        assert (in_kind.count(True), in_kind.count(False)) == (row.parts_valid, row.parts_invalid), which


# ----------------------------------------------------------------------------------------------------
# targeted mutations of valid samples

MSGHEAD_SAMPLE = (
    "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-0/Dialogmelding_avvik_v1-0.xml"
)
SIGNED_SAMPLE = "other/navikt-syfosmmottak/fellesformat-behandlingsdager.xml"
APPREC10_SAMPLE = "apprec/ks-no-fiks-nhn-client/app-rec/1.0/all-data.xml"
APPREC11_SAMPLE = "apprec/ks-no-fiks-nhn-client/app-rec/1.1/all-data.xml"
APPREC11_REJECTION = "apprec/ks-no-fiks-nhn-client/app-rec/1.1/example-avvist.xml"


def base_doc(rel: str) -> etree._ElementTree:
    tree = parse(SAMPLES / rel)
    assert tree is not None, rel
    mh = outermost_msgheads(tree)
    if mh:
        return envelope_copy(mh[0])
    return standalone_copy(next(tree.iter(*APPREC_TAGS)))


def find(doc: etree._ElementTree, path: str) -> etree._Element:
    ns = etree.QName(doc.getroot()).namespace
    el = doc.getroot().find(path.replace("x:", f"{{{ns}}}").replace("ds:", f"{{{DS}}}"))
    assert el is not None, path
    return el


Mutation = Callable[[etree._ElementTree], None]


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


def insert_unknown(path: str, index: int) -> Mutation:
    def mutate(doc: etree._ElementTree) -> None:
        ns = etree.QName(doc.getroot()).namespace
        find(doc, path).insert(index, etree.Element(f"{{{ns}}}Comment"))

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
}


@pytest.mark.parametrize("rel", [MSGHEAD_SAMPLE, APPREC10_SAMPLE, APPREC11_SAMPLE, APPREC11_REJECTION])
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
