"""The specifications data and recognising the shared samples as the right specification."""

from __future__ import annotations

import csv
import json
import re
from functools import cache
from pathlib import Path

import pytest

from edi.core.extract import find_headers, read_header
from edi.core.header import RoutingHeader
from edi.core.kinds import MessageKind
from edi.core.parsing import parse_xml
from edi.core.problems import DocumentRefused
from edi.kapabilitetsregister.model import Direction
from edi.kapabilitetsregister.specifications import default_catalogue
from tests.kapabilitetsregister.conftest import EXAMPLE_PARTY, SPECS, Kapreg, write_json
from tests.shared_samples import SAMPLES

# Which specification each kind of shared sample is, by where it sits and what it is called. Immunology reports
# are recognised as Mikrobiologi: they carry MsgDescr MBIO (code list 8202 has no immunology code), so nothing in
# the message tells them apart (see the note on specification 8).
KIND_BY_PATH: list[tuple[str, int]] = [
    (r"Epikrise_v1-2/", 1),
    (r"Henvisning_v2-0/Henvisning_ny_tilstand", 2),
    (r"Henvisning_v2-0/Viderehenvisning", 3),
    (r"Rekvisisjon-v-1-6/Rekvisisjon_radiologi", 4),
    (r"Rekvisisjon-v-1-6/Rekvisisjon_lab", 5),
    (r"Svarrapport-v-1-4/Svar_radiologi", 6),
    (r"Svarrapport-v-1-4/Svar_patologi", 7),
    (r"Svarrapport-v-1-4/Svar_(mikrobiologi|immunologi)", 9),
    (r"Svarrapport-v-1-4/Svar_biokjemi", 10),
    (r"Dialogmelding-v1-0/Dialogmelding_avvik|Testcase-Dialogmeldingen/Case4", 13),
    (r"Dialogmelding-v1-0/Dialogmelding_svar_foresporsel|Testcase-Dialogmeldingen/|sarepta-test/plo/Case"
     r"|foresporsel-og-svar/|navikt-padm2/", 12),
    (r"Dialogmelding-v1-1/Helsefaglig_dialog|MetadataTestsDialogmelding11", 16),
    (r"Dialogmelding-v1-1/Status_paa_henvisning", 17),
    (r"app-rec/1\.0/|app-rec/missing-migversion|navikt-isdialogmelding/apprec|NPRbehandlerkravmelding/apprec", 19),
    (r"app-rec/1\.1/", 20),
    (r"plo/1_6/innleggelsesrapport", 21),
    (r"plo/1_6/helseopplysninger_1_6", 22),
    (r"plo/1_6/helseopplysninger_til_lege", 23),
    (r"plo/1_6/orientering_om_tjenestetilbud", 24),
    (r"plo/1_6/medisinske_opplysninger", 25),
    (r"plo/1_6/utskrivningsrapport", 26),
    (r"plo/1_6/pasientlogistikk", 27),
]

# One sample of every kind that maps to one of the 27, for `kapreg check --message`.
REPRESENTATIVES = {
    1: "epikrise/sarepta-eksempel/Epikrise/Epikrise_v1-2/epikrise_v1.2_n.xml",
    2: "henvisning/sarepta-eksempel/Henvisning/Henvisning_v2-0/Henvisning_ny_tilstand_v2-0_Ny.xml",
    3: "henvisning/sarepta-eksempel/Henvisning/Henvisning_v2-0/Viderehenvisning_v2-0_Uten_rettighetsvurdering_Ny.xml",
    4: "other/sarepta-eksempel/Rekvisisjon/Rekvisisjon-v-1-6/Rekvisisjon_radiologi_enkel_v1-6_Ny.xml",
    5: "other/sarepta-eksempel/Rekvisisjon/Rekvisisjon-v-1-6/Rekvisisjon_lab_v1-6_Tillegg.xml",
    6: "svarrapport/sarepta-eksempel/Svarrapport/Svarrapport-v-1-4/Svar_radiologi_v1-4_Ny.xml",
    7: "svarrapport/sarepta-eksempel/Svarrapport/Svarrapport-v-1-4/Svar_patologi_histologi_v1-4_Ny.xml",
    9: "svarrapport/sarepta-eksempel/Svarrapport/Svarrapport-v-1-4/Svar_mikrobiologi_dyrkning_v1-4_Ny.xml",
    10: "svarrapport/sarepta-eksempel/Svarrapport/Svarrapport-v-1-4/Svar_biokjemi_v1-4_Ny.xml",
    12: "dialogmelding/ks-no-fiks-nhn-client/dialogmelding/1.0/foresporsel-og-svar/dialog-foresporsel-samsvar-test.xml",
    13: "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-0/Dialogmelding_avvik_v1-0.xml",
    16: "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml",
    17: "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/"
        "Status_paa_henvisning-InnkaltEtterViderehenvisning.xml",
    19: "apprec/ks-no-fiks-nhn-client/app-rec/1.0/all-data.xml",
    20: "apprec/ks-no-fiks-nhn-client/app-rec/1.1/all-data.xml",
    21: "other/sarepta-eksempel/plo/1_6/innleggelsesrapport_1_6_mottak/Innleggelsesrapport_v1-6_Ny.xml",
    22: "other/sarepta-eksempel/plo/1_6/helseopplysninger_1_6_mottak/"
        "Helseopplysninger_Varsel_om_innlagt_pasient_v1-6_Ny.xml",
    23: "other/sarepta-eksempel/plo/1_6/helseopplysninger_til_lege_1_6_mottak/"
        "Helseopplysninger_til_lege_v1-6_Kansellering.xml",
    24: "other/sarepta-eksempel/plo/1_6/orientering_om_tjenestetilbud_1_6_mottak/"
        "Orientering_om_tjenestetilbud_v1-6_Ny.xml",
    25: "other/sarepta-eksempel/plo/1_6/medisinske_opplysninger_1_6_mottak/Medisinske_opplysninger_v1-6_Ny.xml",
    26: "other/sarepta-eksempel/plo/1_6/utskrivningsrapport_1.6_mottak/Utskrivningsrapport_v1-6_Ny.xml",
    27: "other/sarepta-eksempel/plo/1_6/pasientlogistikk_1_6_mottak/Pasientlogistikk_Innlagt_pasient_v1-6_Ny.xml",
    # The immunology example names Mikrobiologi, as its MsgDescr says.
    -9: "svarrapport/sarepta-eksempel/Svarrapport/Svarrapport-v-1-4/Svar_immunologi_v1-4_Ny.xml",
}


def test_the_27_specifications_match_the_published_list() -> None:
    with (SPECS / "message-specifications.csv").open(encoding="utf-8") as published:
        rows = list(csv.DictReader(published))
    catalogue = default_catalogue()
    assert [(s.id, s.display_name, s.source, s.responsible, s.category) for s in catalogue] == [
        (int(r["id"]), r["display_name"], r["source"], r["responsible"], r["category"]) for r in rows
    ]


def test_every_published_capability_name_is_a_specification() -> None:
    catalogue = default_catalogue()
    supported = json.loads(EXAMPLE_PARTY.read_text())["supported"]
    parsed = {catalogue.parse_capability(name) for name in supported}
    assert len(parsed) == 29
    assert {spec.id for _, spec in parsed} == set(range(1, 28))


@cache
def _header(path: Path) -> RoutingHeader | None:
    try:
        headers = find_headers(parse_xml(path.read_bytes()))
    except DocumentRefused:
        return None
    return read_header(headers[0]) if headers else None


def _expected(relative: str) -> int | None:
    return next((spec for pattern, spec in KIND_BY_PATH if re.search(pattern, relative)), None)


def test_every_shared_sample_is_recognised_as_its_kind_or_as_none() -> None:
    catalogue = default_catalogue()
    recognised: dict[str, int | None] = {}
    expected: dict[str, int | None] = {}
    for path in sorted(SAMPLES.rglob("*.xml")):
        header = _header(path)
        if header is None:  # not well-formed or not a message: nothing to recognise
            continue
        relative = path.relative_to(SAMPLES).as_posix()
        spec = catalogue.recognise(MessageKind.of(header))
        recognised[relative] = None if spec is None else spec.id
        expected[relative] = _expected(relative)
    assert recognised == expected
    assert {s for s in recognised.values() if s} == {*range(1, 8), 9, 10, 12, 13, 16, 17, *range(19, 28)} - {8}


@pytest.fixture
def consumes_everything(kapreg: Kapreg, tmp_path: Path) -> Kapreg:
    every = [spec.capability(Direction.CONSUME) for spec in default_catalogue()]
    kapreg.ok("import", write_json(tmp_path / "all.json", {"herId": 555001, "supported": every}))
    return kapreg


@pytest.mark.parametrize(("spec_id", "sample"), sorted(REPRESENTATIVES.items()), ids=lambda v: str(v))
def test_check_message_names_the_right_specification(
    consumes_everything: Kapreg, spec_id: int, sample: str, tmp_path: Path,
) -> None:
    allowed = consumes_everything("check", "--receiver", "555001", "--message", SAMPLES / sample, "--json")
    assert allowed.exit_code == 0, allowed.stdout + allowed.stderr
    assert json.loads(allowed.stdout)["specification"]["id"] == abs(spec_id)

    # A receiver that has registered capabilities, none for this standard: refused, naming what it can take.
    spec = default_catalogue().get(abs(spec_id))
    assert spec is not None
    other = next(s for s in default_catalogue() if s.standard != spec.standard).capability(Direction.CONSUME)
    consumes_everything.ok("import", write_json(tmp_path / "other.json", {"herId": 555002, "supported": [other]}))
    refused = consumes_everything("check", "--receiver", "555002", "--message", SAMPLES / sample)
    assert refused.exit_code == 1
    assert f"has no Consume capability for {spec.display_name}" in refused.stdout
    assert f"it can receive: {other}" in refused.stdout
