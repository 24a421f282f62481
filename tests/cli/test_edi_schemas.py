"""What is validated and from where: the catalog's inventory, `edi schemas` as a user runs it, and `edi up`'s
account of it (its banner's lines, and its refusal of a schema directory it cannot use)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edi.cli.main import app
from edi.cli.up import schema_lines
from edi.core.catalog import BUILT_IN, SchemaCatalog, SchemaCompileError
from edi.core.standards import STANDARDS as KNOWN
from tests.shared_samples import STANDARDS

runner = CliRunner()
HENVISNING_20 = "http://ehelse.no/xmlstds/henvisning/2017-11-30"
MSGHEAD = "http://www.kith.no/xmlstds/msghead/2006-05-24"


def partial_standards(into: Path) -> Path:
    """The published set without PLO, and without what the built-in set has (MsgHead, AppRec, Dialogmelding): the
    built-in set, a configured one and some known standards validated by neither, as a deployment may have."""
    target = into / "partial-standards"
    shutil.copytree(STANDARDS, target, ignore=shutil.ignore_patterns(
        "plo", "MsgHead-v1_2.xsd", "applikasjonskvittering", "dialogmelding"))
    return target


def broken_schemas(into: Path) -> Path:
    """A schema directory whose XSD is well-formed but does not compile (its element's type is not defined)."""
    target = into / "broken-schemas"
    target.mkdir()
    (target / "broken.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:b="urn:example:broken" '
        'targetNamespace="urn:example:broken"><xs:element name="Broken" type="b:Undefined"/></xs:schema>')
    return target


def unwrapped(lines: list[str]) -> str:
    """The banner's lines with each wrapped line joined to the one it continues."""
    return re.sub(r"\n {6}", " ", "\n".join(lines))


def test_a_fresh_install_validates_its_built_in_set_and_names_every_known_standard_it_cannot() -> None:
    inventory = SchemaCatalog().inventory()
    [built_in] = inventory.sets()
    assert built_in.name == BUILT_IN
    assert {"MsgHead 1.2", "AppRec 1.0", "AppRec 1.1"} <= {s.label for s in built_in.standards}
    assert HENVISNING_20 in {s.namespace for s in inventory.missing}
    # Every known standard is either validated by some set or reported missing, never both, never neither.
    validated = [s for schema_set in inventory.sets() for s in schema_set.standards]
    assert sorted(validated + list(inventory.missing), key=KNOWN.index) == list(KNOWN)


def test_a_configured_directory_comes_first_and_its_other_namespaces_are_listed(tmp_path: Path) -> None:
    partial = partial_standards(tmp_path)
    inventory = SchemaCatalog([partial]).inventory()
    sources = {standard.namespace: source for standard, source in inventory.standards}
    henvisning, msghead = sources[HENVISNING_20], sources[MSGHEAD]
    assert henvisning is not None and msghead is not None
    assert (henvisning.schema_set, str(henvisning.file)) == (str(partial), "henvisning/Henvisning-v2.0.xsd")
    assert msghead.schema_set == BUILT_IN  # the configured set has none, so the built-in one validates
    assert [s.name for s in inventory.sets()] == [BUILT_IN, str(partial)]
    assert {s.name for s in inventory.missing} >= {"PLO Pasientlogistikk", "PLO Tverrfaglig epikrise"}
    assert "http://www.kith.no/xmlstds/po/poKomponent/2017-11-30" not in {s.namespace for s in inventory.others}
    assert "http://ehelse.no/xmlstds/po/poKomponent/2017-11-30" in {s.namespace for s in inventory.others}

    shadowed = SchemaCatalog([STANDARDS]).inventory()
    assert not shadowed.missing and shadowed.sets()[0].standards == ()  # the published set has all of them


def test_a_directory_that_does_not_exist_or_does_not_compile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaCompileError, match="does not exist"):
        SchemaCatalog([tmp_path / "nowhere"])
    catalog = SchemaCatalog([broken_schemas(tmp_path)])
    with pytest.raises(SchemaCompileError, match=r"cannot compile .*broken\.xsd for urn:example:broken"):
        catalog.compile_all()


def test_the_banner_names_each_set_with_what_it_validates_and_what_is_not_validated(tmp_path: Path) -> None:
    partial = partial_standards(tmp_path)
    lines = schema_lines(SchemaCatalog([partial]).inventory(), require_schemas=False)
    assert all(len(line) <= 120 for line in lines)
    text = unwrapped(lines)
    assert "  validated by built-in schemas: MsgHead 1.2, AppRec 1.0/1.1" in text
    assert f"  validated by {partial}: Svarrapport 1.2/1.3/1.4, Epikrise 1.0/1.1/1.2, Henvisning 1.0/1.1/2.0" in text
    assert re.search(r"other namespaces \(`edi schemas` lists them\)", text)
    not_validated = text[text.index("not validated (no schema installed):"):]
    assert "PLO Pasientlogistikk 1.5/1.6" in not_validated and "Henvisning" not in not_validated
    assert "accepted with a warning (EDI-SCH-002)" in text and "--schemas DIR or EDI_SCHEMA_DIRS" in text

    required = unwrapped(schema_lines(SchemaCatalog().inventory(), require_schemas=True))
    assert re.search(r"not validated \(no schema installed\):.* Henvisning [\d./]*2\.0", required)
    assert "EDI_REQUIRE_SCHEMAS is set: documents with such a part are refused (T10)" in required

    complete = schema_lines(SchemaCatalog([STANDARDS]).inventory(), require_schemas=False)
    assert complete[0].startswith(f"  validated by {STANDARDS.resolve()}: MsgHead 1.2")
    assert not any("not validated" in line for line in complete)


def test_edi_schemas_lists_each_standard_with_its_schema_and_set_or_not_installed() -> None:
    result = runner.invoke(app, ["schemas"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Validated by built-in schemas" in result.stdout
    msghead = r"MsgHead 1\.2 +│ http://www\.kith\.no/xmlstds/msghead/2006-05-24 +│ msghead-1\.2\.xsd"
    assert re.search(msghead, result.stdout)
    not_installed = result.stdout[result.stdout.index("Not installed, so not validated"):]
    assert re.search(r"Henvisning 2\.0 +│ http://ehelse\.no/xmlstds/henvisning/2017-11-30", not_installed)
    assert "Add a published XSD set with --schemas DIR or EDI_SCHEMA_DIRS." in result.stdout


def test_edi_schemas_json_gives_one_object_per_schema_with_its_set(tmp_path: Path) -> None:
    partial = partial_standards(tmp_path)
    result = runner.invoke(app, ["schemas", "--schemas", str(partial), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by_namespace = {row["namespace"]: row for row in rows}
    assert by_namespace[HENVISNING_20] == {
        "standard": "Henvisning", "version": "2.0", "role": "business", "namespace": HENVISNING_20,
        "schema": str(partial / "henvisning/Henvisning-v2.0.xsd"), "file": "henvisning/Henvisning-v2.0.xsd",
        "set": str(partial),
    }
    assert by_namespace[MSGHEAD]["set"] == "built-in" and by_namespace[MSGHEAD]["file"] == "msghead-1.2.xsd"
    pasientlogistikk = by_namespace["http://www.kith.no/xmlstds/po/Pasientlogistikk/2012-04-01"]
    assert (pasientlogistikk["schema"], pasientlogistikk["set"]) == (None, None)
    assert [row["namespace"] for row in rows[:len(KNOWN)]] == [s.namespace for s in KNOWN]
    others = rows[len(KNOWN):]
    assert others and all(row["standard"] is None and row["schema"] for row in others)


@pytest.mark.parametrize("command", ["schemas", "up"])
def test_a_schema_directory_that_is_missing_or_does_not_compile_is_a_usage_error(command: str, tmp_path: Path) -> None:
    missing = runner.invoke(app, [command, "--schemas", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert f"schema directory {tmp_path / 'nowhere'} does not exist" in missing.output
    broken = runner.invoke(app, [command, "--schemas", str(broken_schemas(tmp_path))])
    assert broken.exit_code == 2 and "cannot compile" in broken.output and "broken.xsd" in broken.output
