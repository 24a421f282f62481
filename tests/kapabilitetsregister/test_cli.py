"""Every `kapreg` command end to end, as an operator runs it, against SQLite and a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.kapabilitetsregister.conftest import EXAMPLE_HER_ID, EXAMPLE_PARTY, Kapreg, write_json
from tests.shared_samples import SAMPLES

HELSEFAGLIG_DIALOG = SAMPLES / "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml"
SVARRAPPORT_13 = SAMPLES / "svarrapport/sarepta-eksempel/Svarrapport/Svarrapport-v-1-3/Svar_biokjemi_v1-3_Ny.xml"

REGION = {"parties": [
    {"herId": 100001, "name": "Kattskinnet legesenter", "organisationNumber": "987654321",
     "sourceSystem": "CGM Journal", "version": "5.1",
     "supported": ["ConsumeDialogmeldingForesporselSvar1.0", "ConsumeApplikasjonskvittering1.1",
                   "ProduceApplikasjonskvittering1.1", "ConsumeSvarrapportMikrobiologi1.4"]},
    {"herId": 100002, "name": "Kattskinnet legesenter, fastlegetjeneste", "kind": "service", "parentHerId": 100001},
    {"herId": 100003, "name": "Gamle legevakt", "active": False, "supported": ["ConsumeEpikrise1.2"]},
    {"herId": 100004, "name": "Nye helsestasjon", "validFrom": "2030-01-01", "supported": ["ConsumeEpikrise1.2"]},
    {"herId": 100005, "name": "Sykehuset Innlandet", "deliveryChannel": "kafka", "kafkaTopic": "sykehuset.inbound",
     "acceptsFileReference": True,
     "supported": [{"capability": "ConsumeEpikrise1.2", "validTo": "2020-01-01"},
                   "ConsumeDialogmeldingHelsefagligDialog1.1"]},
]}


@pytest.fixture
def region(kapreg: Kapreg, tmp_path: Path) -> Kapreg:
    kapreg.ok("import", write_json(tmp_path / "region.json", REGION))
    return kapreg


def snapshot(kapreg: Kapreg) -> tuple[str, ...]:
    """Everything an operator can see change: the export and every party's history."""
    export = kapreg.ok("export")
    her_ids = [p["herId"] for p in json.loads(export)["parties"]]
    return (export, *(kapreg.ok("history", str(h), "--json") for h in her_ids))


# --- specifications ---------------------------------------------------------------------------------------------


def test_specs_list_shows_the_27_specifications(kapreg: Kapreg) -> None:
    listed = kapreg.json("specs", "list")
    assert [s["id"] for s in listed] == list(range(1, 28))
    table = kapreg.ok("specs", "list")
    assert "Dialogmelding 1.1, Helsefaglig dialog" in table and "DialogmeldingHelsefagligDialog1.1" in table


def test_specs_show_by_id_or_name(kapreg: Kapreg) -> None:
    shown = kapreg.json("specs", "show", "dialogmeldinghelsefagligdialog1.1")
    assert shown["id"] == 16 and shown["namespace"] == "http://www.kith.no/xmlstds/dialog/2013-01-23"
    text = kapreg.ok("specs", "show", "9")
    assert "Svarrapport 1.4, Mikrobiologi" in text and "MsgDescr MBIO" in text


# --- import, export, parties ------------------------------------------------------------------------------------


def test_importing_the_example_party_gives_exactly_its_29_capabilities_and_twice_changes_nothing(
    kapreg: Kapreg,
) -> None:
    expected = sorted(json.loads(EXAMPLE_PARTY.read_text())["supported"])

    dry = kapreg("import", EXAMPLE_PARTY, "--dry-run")
    assert dry.exit_code == 0
    assert "+ 8138082: grant ConsumeDialogmeldingHelsefagligDialog1.1" in dry.stdout
    assert "30 change(s) planned (dry run: nothing written)" in dry.stdout
    assert kapreg.json("parties", "list") == []

    assert "30 change(s) written" in kapreg.ok("import", EXAMPLE_PARTY)
    details = kapreg.json("parties", "show", str(EXAMPLE_HER_ID))
    assert sorted(details["supported"]) == expected and len(expected) == 29
    assert details["party"]["sourceSystem"] == "Samsvarstest, Dev"
    assert details["party"]["sourceVersion"] == "2.0.1524.0"
    history = kapreg.json("history", str(EXAMPLE_HER_ID))

    assert "nothing to change" in kapreg.ok("import", EXAMPLE_PARTY)
    assert kapreg.json("import", EXAMPLE_PARTY, "--dry-run")["changes"] == []
    assert sorted(kapreg.json("parties", "show", str(EXAMPLE_HER_ID))["supported"]) == expected
    assert kapreg.json("history", str(EXAMPLE_HER_ID)) == history


def test_import_replaces_what_the_file_states_and_dry_run_prints_the_diff(region: Kapreg, tmp_path: Path) -> None:
    changed = {"herId": 100001, "name": "Kattskinnet legesenter AS",
               "supported": ["ConsumeDialogmeldingForesporselSvar1.0", "ConsumeEpikrise1.2"]}
    dry = region("import", write_json(tmp_path / "changed.json", changed), "--dry-run")
    assert dry.exit_code == 0
    lines = dry.stdout.splitlines()
    assert "~ 100001: update party 100001: name: Kattskinnet legesenter -> Kattskinnet legesenter AS" in lines
    assert "+ 100001: grant ConsumeEpikrise1.2" in lines
    assert "- 100001: revoke ConsumeApplikasjonskvittering1.1" in lines
    assert "- 100001: revoke ProduceApplikasjonskvittering1.1" in lines
    assert "- 100001: revoke ConsumeSvarrapportMikrobiologi1.4" in lines
    assert "5 change(s) planned (dry run: nothing written)" in lines

    region.ok("import", tmp_path / "changed.json")
    details = region.json("parties", "show", "100001")
    assert sorted(details["supported"]) == ["ConsumeDialogmeldingForesporselSvar1.0", "ConsumeEpikrise1.2"]
    # What the file leaves out is kept.
    assert details["party"]["organisationNumber"] == "987654321"


def test_csv_import(kapreg: Kapreg, tmp_path: Path) -> None:
    csv_file = tmp_path / "parties.csv"
    csv_file.write_text(
        "herId,capability,name,validFrom\n"
        "200001,ConsumeEpikrise1.2,Legekontoret i Bø,\n"
        "200001,ProduceApplikasjonskvittering1.0,,2026-01-01\n"
        "200002,ConsumeViderehenvisning2.0,Sykehuset i Vestfold,\n",
        encoding="utf-8",
    )
    assert "5 change(s) planned" in kapreg.ok("import", csv_file, "--dry-run")
    assert "5 change(s) written" in kapreg.ok("import", csv_file)
    details = kapreg.json("parties", "show", "200001")
    assert details["party"]["name"] == "Legekontoret i Bø"
    assert {c["specificationId"] for c in details["capabilities"]} == {1, 19}
    assert "nothing to change" in kapreg.ok("import", csv_file)


def test_export_is_an_import_file_that_changes_nothing(region: Kapreg, tmp_path: Path) -> None:
    region.ok("override", "100001", "16", "allow", "--reason", "pilot: reads 1.1 since 2026-03")
    exported = tmp_path / "export.json"
    region.ok("export", "--output", exported)
    document = json.loads(exported.read_text())
    assert [p["herId"] for p in document["parties"]] == [100001, 100002, 100003, 100004, 100005]
    assert document["parties"][0]["overrides"][0]["effect"] == "allow"
    assert json.loads(region.ok("export")) == document
    assert "nothing to change" in region.ok("import", exported)


def test_parties_list_search_and_show(region: Kapreg) -> None:
    listed = region.json("parties", "list")
    assert [p["herId"] for p in listed] == [100001, 100002, 100003, 100004, 100005]
    table = region.ok("parties", "list")
    assert "Kattskinnet legesenter" in table and "service" in table

    assert [p["herId"] for p in region.json("parties", "search", "kattskinnet")] == [100001, 100002]
    assert [p["herId"] for p in region.json("parties", "search", "100005")] == [100005]
    assert [p["herId"] for p in region.json("parties", "search", "987654321")] == [100001]
    assert region.json("parties", "search", "nobody by that name") == []

    service = region.json("parties", "show", "100002")
    assert service["inheritedFrom"] == 100001
    assert "ConsumeDialogmeldingForesporselSvar1.0" in service["supported"]
    shown = region.ok("parties", "show", "100005")
    assert "sykehuset.inbound" in shown and "accepted" in shown
    assert "ConsumeDialogmeldingHelsefagligDialog1.1" in shown
    assert "(inherited from organisation 100001)" in region.ok("parties", "show", "100002")


# --- check ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("arguments", "exit_code", "reason"), [
    (["--receiver", "100001", "--spec", "12"], 0, "ConsumeDialogmeldingForesporselSvar1.0 (registered)"),
    (["--receiver", "100002", "--spec", "12"], 0, "inherited from organisation 100001"),
    (["--receiver", "999999", "--spec", "12"], 1, "HER-id 999999 is not a registered communication party"),
    (["--receiver", "100003", "--spec", "1"], 1, "HER-id 100003 (Gamle legevakt) is not active"),
    (["--receiver", "100004", "--spec", "1"], 1, "HER-id 100004 (Nye helsestasjon) is registered only from 2030-01-01"),
    (["--receiver", "100004", "--spec", "1", "--at", "2030-06-01T12:00"], 0, "ConsumeEpikrise1.2"),
    (["--receiver", "100005", "--spec", "1"], 1, "can receive Epikrise 1.2 only until 2020-01-01"),
    (["--receiver", "100001", "--spec", "1"], 1, "has no Consume capability for Epikrise 1.2 (ConsumeEpikrise1.2)"),
    (["--receiver", "100001", "--spec", "DialogmeldingHelsefagligDialog1.1"], 1,
     "cannot receive Dialogmelding 1.1, Helsefaglig dialog; of Dialogmelding it supports only: "
     "Dialogmelding 1.0, Forespørsel og svar på forespørsel"),
    (["--receiver", "100005", "--spec", "16", "--sender", "100001"], 1,
     "HER-id 100001 (Kattskinnet legesenter) has no Produce capability for Dialogmelding 1.1, Helsefaglig dialog"),
    (["--receiver", "100001", "--spec", "20", "--sender", "100001"], 0, "ProduceApplikasjonskvittering1.1"),
])
def test_check_answers_with_a_reason_and_exit_code(
    region: Kapreg, arguments: list[str], exit_code: int, reason: str,
) -> None:
    result = region("check", *arguments)
    assert result.exit_code == exit_code, result.stdout + result.stderr
    assert reason in result.stdout
    assert result.stdout.split("Result:")[1].split()[0] == ("ALLOWED" if exit_code == 0 else "REFUSED")


def test_check_json(region: Kapreg) -> None:
    result = region("check", "--receiver", "100001", "--spec", "16", "--json")
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["allowed"] is False
    assert answer["specification"] == {"id": 16, "displayName": "Dialogmelding 1.1, Helsefaglig dialog",
                                       "capabilityName": "DialogmeldingHelsefagligDialog1.1"}
    assert answer["receiver"]["outcome"] == "other_versions_only"


def test_check_message_recognises_it_and_checks_the_receiver(region: Kapreg) -> None:
    refused = region("check", "--receiver", "100001", "--message", HELSEFAGLIG_DIALOG)
    assert refused.exit_code == 1
    assert "Dialogmelding 1.1, DIALOG_HELSEFAGLIG" in refused.stdout
    assert "16 Dialogmelding 1.1, Helsefaglig dialog" in refused.stdout

    allowed = region("check", "--receiver", "100005", "--message", HELSEFAGLIG_DIALOG, "--json")
    assert allowed.exit_code == 0
    assert json.loads(allowed.stdout)["specification"]["id"] == 16

    # A kind the registry does not govern is delivered, unchecked, under the default policy (registered) ...
    ungoverned = region("check", "--receiver", "100005", "--message", SVARRAPPORT_13, "--json")
    assert ungoverned.exit_code == 0
    answer = json.loads(ungoverned.stdout)
    assert answer["message"]["kind"] == "Svarrapport 1.3, S, CLIN"
    assert answer["message"]["governed"] is False
    assert answer["receiver"]["outcome"] == "unchecked_not_governed"
    assert "kind not governed by the registry" in answer["receiver"]["reason"]

    # ... but a receiver the registry does not know still gets E21's reason, under every policy.
    unknown = region("check", "--receiver", "999999", "--message", SVARRAPPORT_13, "--json")
    assert unknown.exit_code == 1
    assert json.loads(unknown.stdout)["receiver"]["outcome"] == "unknown_party"

    # Under `strict`, only what the registry positively allows: the kind is refused (T10).
    region.env["EDI_CAPABILITY_POLICY"] = "strict"
    strict = region("check", "--receiver", "100005", "--message", SVARRAPPORT_13)
    assert strict.exit_code == 1
    assert "Svarrapport 1.3, S, CLIN" in strict.stdout
    assert "none of the registry's message specifications" in strict.stdout


# --- operator writes and history ---------------------------------------------------------------------------------


def test_grant_revoke_and_history(region: Kapreg) -> None:
    granted = region("grant", "100001", "Epikrise 1.2", "--consume", "--operator", "alice")
    assert granted.exit_code == 0
    assert "grant ConsumeEpikrise1.2 for HER-id 100001" in granted.stdout
    assert region("check", "--receiver", "100001", "--spec", "1").exit_code == 0
    assert "already has ConsumeEpikrise1.2; nothing changed" in region.ok("grant", "100001", "1", "--consume")

    timed = region.json("grant", "100001", "1", "--produce", "--valid-from", "2026-01-01",
                        "--valid-to", "2027-01-01", "--operator", "alice")
    assert timed["changed"] is True and timed["changes"][0]["after"]["validFrom"] == "2025-12-31T23:00:00Z"

    revoked = region("revoke", "100001", "1", "--consume", "--operator", "bob")
    assert revoked.exit_code == 0 and "revoke ConsumeEpikrise1.2" in revoked.stdout
    assert region("check", "--receiver", "100001", "--spec", "1").exit_code == 1
    assert "has no own ConsumeEpikrise1.2; nothing changed" in region.ok("revoke", "100001", "1", "--consume")

    history = region.json("history", "100001")
    assert [(h["actor"], h["summary"]) for h in history[-3:]] == [
        ("alice", "grant ConsumeEpikrise1.2"),
        ("alice", "grant ProduceEpikrise1.2 (valid from 2026-01-01 until 2027-01-01)"),
        ("bob", "revoke ConsumeEpikrise1.2"),
    ]
    assert history[-1]["before"]["registeredBy"] == "alice" and history[-1]["after"] is None
    table = region.ok("history", "100001")
    assert "bob" in table and "revoke ConsumeEpikrise1.2" in table


def test_override_allow_deny_clear(region: Kapreg) -> None:
    region.ok("override", "100001", "16", "allow", "--reason", "reads 1.1, registration pending")
    allowed = region("check", "--receiver", "100001", "--spec", "16")
    assert allowed.exit_code == 0
    assert "allowed by an operator override: reads 1.1, registration pending" in allowed.stdout

    region.ok("override", "100001", "DialogmeldingForesporselSvar1.0", "deny", "--reason", "system fault ticket 42")
    denied = region("check", "--receiver", "100002", "--spec", "12")  # the service follows its organisation
    assert denied.exit_code == 1 and "operator override: system fault ticket 42" in denied.stdout

    region.ok("override", "100001", "12", "clear")
    assert region("check", "--receiver", "100002", "--spec", "12").exit_code == 0
    assert "is already so; nothing changed" in region.ok("override", "100001", "12", "clear")
    shown = region.ok("parties", "show", "100001")
    assert "Overrides" in shown and "reads 1.1, registration pending" in shown
    assert [h["summary"] for h in region.json("history", "100001")[-3:]] == [
        "override DialogmeldingHelsefagligDialog1.1: allow (reads 1.1, registration pending)",
        "override DialogmeldingForesporselSvar1.0: deny (system fault ticket 42)",
        "clear override of DialogmeldingForesporselSvar1.0",
    ]


# --- bad input --------------------------------------------------------------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "bad_capability": write_json(tmp_path / "bad-capability.json", {"parties": [
            {"herId": 300001, "supported": ["ConsumeEpikrise1.2"]},
            {"herId": 300002, "supported": ["ConsumeEpikrise9.9"]},
        ]}),
        "bad_her_id": write_json(tmp_path / "bad-her-id.json", {"herId": "81-38", "supported": []}),
        "not_json": tmp_path / "garbage.json",
        "csv_without_columns": tmp_path / "bad.csv",
        "not_xml": tmp_path / "message.xml",
        "bad_party": write_json(tmp_path / "bad-party.json", {"herId": 300003, "organisationNumber": "12345"}),
        "kafka_without_topic": write_json(tmp_path / "kafka.json", {"herId": 300004, "deliveryChannel": "kafka"}),
    }
    files["not_json"].write_text("{this is not json", encoding="utf-8")
    files["csv_without_columns"].write_text("her,cap\n1,ConsumeEpikrise1.2\n", encoding="utf-8")
    files["not_xml"].write_text("not a message", encoding="utf-8")
    return files


@pytest.mark.parametrize(("arguments", "message"), [
    (["grant", "100001", "Epikrise 9.9", "--consume"], "unknown message specification 'Epikrise 9.9'"),
    (["grant", "81380x2", "1", "--consume"], "malformed HER-id '81380x2'"),
    (["grant", "424242", "1", "--consume"], "HER-id 424242 is not a registered communication party"),
    (["grant", "100001", "1"], "give exactly one of --consume or --produce"),
    (["grant", "100001", "1", "--consume", "--valid-from", "next tuesday"], "unreadable time 'next tuesday'"),
    (["revoke", "424242", "1", "--consume"], "HER-id 424242 is not a registered communication party"),
    (["revoke", "100001", "1", "--consume", "--produce"], "give exactly one of --consume or --produce"),
    (["override", "100001", "1", "deny"], "an override needs a reason"),
    (["override", "100001", "Epikrise 9.9", "deny", "--reason", "x"], "unknown message specification"),
    (["override", "0", "1", "deny", "--reason", "x"], "malformed HER-id '0'"),
    (["grant", "100001", "1", "--consume", "--valid-from", "2027-01-01", "--valid-to", "2026-01-01"],
     "HER-id 100001: validity ends (2025-12-31 23:00:00+00:00) before it starts (2026-12-31 23:00:00+00:00)"),
    (["import", "{tmp}/missing.json"], "cannot read"),
    (["import", "{bad_party}"], "0.organisationNumber: organisation number '12345' is not 9 digits"),
    (["import", "{kafka_without_topic}"], "a Kafka delivery channel needs a topic name"),
    (["import", "{bad_capability}"], "unknown capability 'ConsumeEpikrise9.9'"),
    (["import", "{bad_her_id}"], "malformed HER-id '81-38'"),
    (["import", "{not_json}"], "is not valid JSON"),
    (["import", "{csv_without_columns}"], "lacks the column(s) capability, herId"),
    (["parties", "show", "424242"], "HER-id 424242 is not a registered communication party"),
    (["parties", "show", "HER-424242"], "malformed HER-id"),
    (["history", "424242"], "HER-id 424242 is not a registered communication party"),
    (["check", "--receiver", "100001"], "give either --spec or --message"),
    (["check", "--receiver", "100001", "--spec", "Epikrise 9.9"], "unknown message specification"),
    (["check", "--receiver", "x", "--spec", "1"], "malformed HER-id 'x'"),
    (["check", "--receiver", "100001", "--message", "{tmp}/missing.xml"], "cannot read"),
    (["check", "--receiver", "100001", "--message", "{not_xml}"], "is not a readable message"),
    (["specs", "show", "Epikrise 9.9"], "did you mean Epikrise1.2?"),
])
def test_bad_input_is_explained_exits_2_and_changes_nothing(
    region: Kapreg, tmp_path: Path, arguments: list[str], message: str,
) -> None:
    files = {name: str(path) for name, path in _bad_files(tmp_path).items()}
    before = snapshot(region)
    result = region(*(a.format(tmp=tmp_path, **files) for a in arguments))
    assert result.exit_code == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert snapshot(region) == before


def test_errors_are_json_on_stderr_with_json(region: Kapreg) -> None:
    result = region("grant", "424242", "1", "--consume", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stderr) == {
        "error": "unknown_party",
        "detail": "HER-id 424242 is not a registered communication party; register it first (`kapreg import`)",
    }


def test_unreachable_database_exits_4(kapreg: Kapreg, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    kapreg.env["EDI_REGISTRY_DATABASE_URL"] = f"sqlite+aiosqlite:///{blocked}/registry.db"
    result = kapreg("parties", "list")
    assert result.exit_code == 4
    assert "cannot open the registry database" in result.stderr
