"""A fresh backbone, with no schema directory configured, validates the bulk of GP traffic: Dialogmelding 1.0 and 1.1
business documents are checked against the project's own schemas, and one that breaks its schema is refused with
T02, the line and the path, instead of being accepted. `edi send` validates with the directories it is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edi.cli.main import app as edi
from edi.services.messaging import Refused
from edi.settings import ValidationSettings
from tests.services.conftest import party, running_backbone, seed_registry
from tests.services.documents import DIALOG_SPEC, RECEIVER, dialog
from tests.shared_samples import SAMPLES, STANDARDS

pytestmark = pytest.mark.parametrize("bus_kind", ["embedded"])
HENVISNING_20 = SAMPLES / "henvisning/sarepta-eksempel/Henvisning/Henvisning_v2-0/Henvisning_ny_tilstand_v2-0_Ny.xml"
HELSEFAGLIG = SAMPLES / "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml"


@pytest.fixture
def no_schema_directory(installation: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDI_SCHEMA_DIRS")


@pytest.mark.usefixtures("no_schema_directory")
@pytest.mark.parametrize(("version", "document", "line"), [
    ("1.0", dialog().replace(b"<Notat>", b"<Notat><Nonsense/>", 1), 86),
    ("1.1", HELSEFAGLIG.read_bytes().replace(b"<Notat>", b"<Notat><Nonsense/>", 1), 62),
])
async def test_a_dialogmelding_that_breaks_its_schema_is_refused_with_t02_line_and_path(
    version: str, document: bytes, line: int,
) -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC)])
    async with running_backbone() as (backbone, _):
        with pytest.raises(Refused) as refused:
            await backbone.submit(document, allowed_sender_her_ids=None)
    problem = refused.value.problems[0]
    assert (problem.code, problem.apprec_code.value) == ("EDI-SCH-001", "T02")
    assert f"the schema for Dialogmelding {version}" in problem.message and "Nonsense" in problem.message
    assert problem.line == line
    assert problem.path is not None and problem.path.endswith("/Content/Dialogmelding/Notat/Nonsense")


@pytest.mark.usefixtures("no_schema_directory")
async def test_a_valid_dialogmelding_is_accepted_as_validated() -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC)])
    async with running_backbone() as (backbone, _):
        submitted = await backbone.submit(dialog(), allowed_sender_her_ids=None)
    assert not submitted.duplicate
    # Validated, not merely accepted: every part had its schema (None would mean some part was not validated).
    assert ValidationSettings().validator().validate(dialog()).valid is True
    assert ValidationSettings().validator().validate(HELSEFAGLIG.read_bytes()).valid is True


@pytest.mark.usefixtures("no_schema_directory")
def test_edi_send_validates_with_the_schema_directories_it_is_given(tmp_path: Path) -> None:
    """`edi send` validates in its own process: given `edi up`'s --schemas, it gives the same verdict."""
    broken = tmp_path / "henvisning.xml"
    broken.write_bytes(HENVISNING_20.read_bytes().replace(b"</Henvisning>", b"<Nonsense/></Henvisning>", 1))
    send = ["send", "--wait", "0", "--json", "--data-dir", str(tmp_path / "data"), str(broken)]
    refused = CliRunner().invoke(edi, [*send, "--schemas", str(STANDARDS)], catch_exceptions=False)
    assert refused.exit_code == 1
    errors = json.loads(refused.stdout)["refused"]["errors"]
    assert errors[0]["apprec_code"] == "T02" and "Nonsense" in errors[0]["message"]
    # Without them, Henvisning 2.0 has no schema here: accepted, with the part unvalidated.
    assert json.loads(CliRunner().invoke(edi, send, catch_exceptions=False).stdout)["refused"] is None
