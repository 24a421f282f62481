"""`edi validate` and `edi errors` as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from edi.cli.errors import catalogue_markdown
from edi.cli.main import app
from tests.shared_samples import SAMPLES, STANDARDS

runner = CliRunner()
VALID = SAMPLES / "apprec/ks-no-fiks-nhn-client/app-rec/1.1/all-data.xml"
DIALOG = SAMPLES / "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml"
BROKEN = SAMPLES / "svarrapport/sarepta-test/svarrapport/Testcase-patologisvar-2011-12-05/Case3-4.xml"
SCHEMA_ERROR = SAMPLES / "dialogmelding/navikt-padm2/dialogmelding_dialog_notat.xml"
# a Dialogmelding 1.1 that carries an iCalendar part: no schema for that anywhere, built in or published
NO_SCHEMA = SAMPLES / (
    "dialogmelding/sarepta-eksempel/DigitalDialogImplementasjonsguideStandarder/"
    "SystemdokumentasjonKommunikasjonsprosesser-verifiserbare/DIALOG_INNBYGGER_TIMERESERVASJON/1.2/"
    "Avbestill_time_-_Foresporsel_innbygger_-_Avbestill_reservert_time.xml"
)


def test_valid_file_exits_0_and_says_what_it_is() -> None:
    result = runner.invoke(app, ["validate", str(VALID)])
    assert result.exit_code == 0
    assert "✓ valid" in result.stdout and "AppRec 1.1 APPREC from HER 123456 to 9512" in result.stdout


def test_invalid_file_exits_1_with_code_line_path_and_reason() -> None:
    result = runner.invoke(app, ["validate", "--schemas", str(STANDARDS), str(SCHEMA_ERROR)])
    assert result.exit_code == 1
    assert "✗ invalid" in result.stdout
    assert "error T02 EDI-SCH-001 line 11 /EI_fellesformat/MsgHead/MsgInfo/ConversationRef/RefToConversation" in (
        result.stdout)
    assert "Element 'RefToConversation': This element is not expected. Expected is ( RefToParent )." in result.stdout


def test_json_output_has_the_documented_keys() -> None:
    result = runner.invoke(app, ["validate", "--json", "--schemas", str(STANDARDS), str(DIALOG), str(BROKEN)])
    assert result.exit_code == 1
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first == {
        "file": str(DIALOG), "valid": True, "standard": "Dialogmelding", "version": "1.1", "envelope": "MsgHead 1.2",
        "type": "DIALOG_HELSEFAGLIG", "msg_id": "de1a95c0-4d0c-11e7-9598-0800200c9a66", "sender_her_id": "258521",
        "receiver_her_ids": ["90998"], "errors": [], "warnings": [],
    }
    assert second["valid"] is False and second["msg_id"] is None
    [error] = second["errors"]
    assert set(error) >= {"code", "apprec_code", "message", "line", "path"}
    assert (error["code"], error["apprec_code"], error["line"]) == ("EDI-XML-003", "T01", 133)


def test_missing_schema_is_null_and_exit_1_never_a_silent_pass() -> None:
    result = runner.invoke(app, ["validate", "--json", str(NO_SCHEMA)])
    assert result.exit_code == 1
    row = json.loads(result.stdout)
    assert row["valid"] is None
    assert {w["code"] for w in row["warnings"]} == {"EDI-SCH-002"}


def test_directories_are_searched_recursively(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    shutil.copy(VALID, nested / "one.xml")
    shutil.copy(VALID, tmp_path / "two.xml")
    (tmp_path / "notes.txt").write_text("not a message")
    result = runner.invoke(app, ["validate", "--json", str(tmp_path)])
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert runner.invoke(app, ["validate", str(tmp_path / "missing.xml")]).exit_code == 2
    result = runner.invoke(app, ["validate", "--schemas", str(tmp_path / "nowhere"), str(VALID)])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert runner.invoke(app, ["validate"]).exit_code == 2
    assert runner.invoke(app, ["validate", "--bogus", str(VALID)]).exit_code == 2


def test_schema_dirs_from_the_environment() -> None:
    result = runner.invoke(app, ["validate", "--json", str(DIALOG)], env={"EDI_SCHEMA_DIRS": str(STANDARDS)})
    assert result.exit_code == 0 and json.loads(result.stdout)["valid"] is True


def test_the_installed_console_script_runs() -> None:
    edi = shutil.which("edi")
    assert edi, "the edi console script is installed with the package"
    done = subprocess.run([edi, "validate", "--json", str(VALID)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and json.loads(done.stdout)["valid"] is True


def test_error_catalogue_document_is_current() -> None:
    committed = (Path(__file__).resolve().parents[2] / "docs" / "error-codes.md").read_text(encoding="utf-8")
    assert committed == catalogue_markdown(), "run: edi errors --markdown > docs/error-codes.md"
    assert "EDI-SCH-001 | T02 XML validerer ikke" in committed
