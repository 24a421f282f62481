"""The routing header read from real messages of every kind: who sent it, to whom, what it is."""

from __future__ import annotations

import pytest

from edi.core.extract import find_headers, read_header
from edi.core.header import LevelKind, RoutingHeader
from edi.core.parsing import parse_xml
from tests.shared_samples import SAMPLES


def header_of(relative: str) -> RoutingHeader:
    headers = find_headers(parse_xml((SAMPLES / relative).read_bytes()))
    assert headers, f"no routing header found in {relative}"
    return read_header(headers[0])


# file, standard, version, type code, MsgId, sender HER-id, receiver HER-ids (receiver first, then copies),
# business namespace suffix
CASES = [
    ("dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml",
     "MsgHead", "1.2", "DIALOG_HELSEFAGLIG", "de1a95c0-4d0c-11e7-9598-0800200c9a66", "258521", ["90998"],
     "dialog/2013-01-23"),
    ("dialogmelding/navikt-padm2/dialogmelding_dialog_notat.xml",
     "MsgHead", "1.2", "DIALOG_NOTAT", "37340D30-FE14-42B5-985F-A8FF8FFA0CB5", "1234", ["79768"],
     "dialog/2006-10-11"),
    ("svarrapport/sarepta-test/svarrapport/Testcase-mikrobiologisvar-20120203/case6-24.xml",
     "Svarrapport", "1.3", "S", "bcf9c380-4e79-11e1-b86c-0800200c9a66", None, ["369.767"], "labsvar/2008-12-01"),
    ("apprec/ks-no-fiks-nhn-client/app-rec/1.1/all-data.xml",
     "AppRec", "1.1", "APPREC", "f6d24037-a43f-4509-8dfa-88b578554858", "123456", ["9512"], "apprec/2012-02-15"),
    ("apprec/ks-no-fiks-nhn-client/app-rec/1.0/all-data.xml",
     "AppRec", "1.0", "APPREC", "a761e9b9-3495-4f5a-a964-c13d544d2ceb", "123456", ["9512"], "apprec/2004-11-21"),
    ("epikrise/sarepta-eksempel/Epikrise/Epikrise_v1-2/epikrise_v1.2_n.xml",
     "Epikrise", "1.2", "EPIKRISE", "f022ccd0-4567-11e7-9598-0800200c9a66", "94866", ["91439", "95136"],
     "epikrise/2012-02-15"),
    ("epikrise/sarepta-eksempel/Epikrise/Epikrise_v1-1/epikrise_v1.1_n.xml",
     "Epikrise", "1.1", "E", "e3332f10-46ca-11e7-9598-0800200c9a66", "94866", ["91439", "95136"],
     "epikrise/2006-09-23"),
    ("henvisning/sarepta-eksempel/Henvisning/Henvisning_v1-1/henvisning_strukturert_v1.1_n.xml",
     "Henvisning", "1.1", "HENVISNING", "1a7d9b00-b07f-11e1-afa6-0800200c9a66", "258521", ["90998"],
     "henvisning/2012-02-15"),
    ("henvisning/sarepta-eksempel/Henvisning/Henvisning_v2-0/Henvisning_ny_tilstand_v2-0_Endring.xml",
     "MsgHead", "1.2", "HENVISNING_NYTILSTAND", "0b28bfe4-c3a8-43b6-b915-7f11cfc6a093", "91100", ["90998"],
     "henvisning/2017-11-30"),
    ("other/sarepta-eksempel/Rekvisisjon/Rekvisisjon-v-1-6/Rekvisisjon_lab_v1-6_Kansellering.xml",
     "Rekvisisjon", "1.6", "REQ_LAB", "a7b1c470-0c12-11e8-b566-0800200c9a66", "91101", ["94673"],
     "rekvisisjon/2012-02-15"),
    ("other/sarepta-eksempel/Rekvisisjon/Rekvisisjon-v-1-5/Rekvisisjon_lab_v1-5_Kansellering.xml",
     "Rekvisisjon", "1.5", "R", "3dd39f18-4c4f-4409-b329-97d330df32e4", "91101", ["94673"],
     "rekvisisjon/2008-12-01"),
    ("other/sarepta-eksempel/plo/1_5/Innleggelsesrapport-v1_5/Innleggelsesrapport_v1-5_Endring.xml",
     "MsgHead", "1.2", "INNLEGGELSESRAPPORT", "467edb30-0671-11e8-b566-0800200c9a66", "5078", ["91090"],
     "po/Innleggelsesrapport/2009-06-30"),
    ("other/navikt-syfosmmottak/fellesformat-behandlingsdager.xml",
     "MsgHead", "1.2", "SYKMELD", "302D0CF2-65B4-4C7F-897E-B3CAE6DB36C8", "123456", ["79768"],
     "HelseOpplysningerArbeidsuforhet/2013-10-01"),
    ("other/sarepta-eksempel/KommunikasjonAvEPJ-innhold/Overforing_legemiddelopplysninger.xml",
     "MsgHead", "1.2", "EPJ-EKSTRAKT", "72b07ae0-6287-11dc-8314-0800200c9a66", "91100", ["5078"],
     "epj/EPJEkstrakt/2008-02-20"),
]


@pytest.mark.parametrize(
    ("relative", "standard", "version", "type_code", "msg_id", "sender", "receivers", "namespace"), CASES,
    ids=[c[0].rsplit("/", 1)[-1] for c in CASES],
)
def test_header_values(relative: str, standard: str, version: str, type_code: str, msg_id: str,
                       sender: str | None, receivers: list[str], namespace: str) -> None:
    header = header_of(relative)
    assert (header.standard, header.version) == (standard, version)
    assert header.message_type is not None and header.message_type.code == type_code
    assert header.msg_id == msg_id
    assert header.sender_her_id == sender
    assert header.receiver_her_ids == receivers
    assert header.business_namespace.endswith(namespace)


def test_msghead_organisation_hierarchy_gives_the_effective_her_id() -> None:
    header = header_of("dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml")
    assert header.receiver is not None and header.sender is not None
    assert [(lv.kind, lv.name, lv.her_id) for lv in header.receiver.levels] == [
        (LevelKind.ORGANISATION, "ST OLAVS HOSPITAL HF", "59"),
        (LevelKind.DEPARTMENT, "Ortopedisk kirurgi", "90998"),
    ]
    assert header.receiver.organisation_her_id == "59"
    assert [(lv.kind, lv.her_id) for lv in header.sender.levels] == [
        (LevelKind.ORGANISATION, "56704"), (LevelKind.HEALTHCARE_PROFESSIONAL, "258521"),
    ]
    assert header.mig_version == "v1.2 2006-05-24"
    assert header.gen_date == "2017-06-12T09:35:22"
    assert header.conversation_ref is not None
    assert header.conversation_ref.ref_to_parent == "d14ea2f3-d796-4d7b-8271-a4480d2b4035"
    assert header.conversation_ref.ref_to_conversation == "d14ea2f3-d796-4d7b-8271-a4480d2b4035"
    assert header.message_type is not None and header.message_type.display_name == "Helsefaglig dialog"


def test_svarrapport_copy_receivers_and_lab_discipline() -> None:
    header = header_of("svarrapport/sarepta-test/svarrapport/Testcase-mikrobiologisvar-20120203/case6-24.xml")
    assert header.service_description is not None and header.service_description.code == "MBIO"
    assert header.receiver is not None and header.receiver.name == "Balsam sykehus"
    assert len(header.copy_receivers) == 1
    copy = header.copy_receivers[0]
    assert copy.name == "Kattskinnet legesenter"
    assert copy.her_id == "369.767"  # as written in the test case; the numeric rule reports it
    assert [lv.kind for lv in copy.levels] == [LevelKind.ORGANISATION, LevelKind.HEALTHCARE_PROFESSIONAL]


def test_epikrise_copy_receiver_is_addressed_too() -> None:
    header = header_of("epikrise/sarepta-eksempel/Epikrise/Epikrise_v1-2/epikrise_v1.2_n.xml")
    assert header.receiver is not None and header.receiver.her_id == "91439"
    assert [c.her_id for c in header.copy_receivers] == ["95136"]


def test_msghead_with_file_reference_and_inline_attachments() -> None:
    header = header_of("dialogmelding/helsenorge-Helsenorge.Messaging/MetadataTestsDialogmelding11.xml")
    docs = header.documents
    assert [(d.index, d.msg_type) for d in docs] == [(1, "XML"), (2, "A"), (3, "A"), (4, "A")]
    assert docs[0].content_namespace == "http://www.kith.no/xmlstds/dialog/2013-01-23"
    reference = docs[2]
    assert reference.file_reference == "https://someurl.com/myfile.pdf" and not reference.inline
    assert (reference.mime_type, reference.description, reference.issue_date) == (
        "application/pdf", "EKG-2017-06-12", "2017-06-12T10:45:11")
    inline = docs[1]
    assert inline.inline and inline.content_namespace == "http://www.kith.no/xmlstds/base64container"
    assert inline.size == 33  # decoded bytes of the base64 text


def test_apprec_status_and_original_id() -> None:
    header = header_of("apprec/ks-no-fiks-nhn-client/app-rec/1.1/all-data.xml")
    assert header.apprec_status is not None and header.apprec_status.code == "1"
    assert header.original_msg_id == "5d79bd68-a58c-4599-a4e7-9db28ea20099"


def test_wrapped_apprec_in_nav_fellesformat_is_found() -> None:
    header = header_of("apprec/navikt-isdialogmelding/apprecOK.xml")
    assert header.standard == "AppRec"
    assert header.msg_id


def test_patient_identifiers_never_appear_in_repr() -> None:
    header = header_of("dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml")
    assert header.patient is not None and header.patient.idents[0].id == "13116900216"
    assert "13116900216" not in repr(header) and "Danser" not in repr(header)
    assert "13116900216" not in str(header)


def test_every_well_formed_sample_with_a_header_yields_it_or_says_what_is_missing() -> None:
    from edi.core.catalog import SchemaCatalog
    from edi.core.validation import Validator

    validator = Validator(SchemaCatalog())
    for path in sorted(SAMPLES.rglob("*.xml")):
        report = validator.validate(path.read_bytes())
        if report.header is None:
            codes = {p.code for p in report.problems}
            assert codes & {"EDI-XML-003", "EDI-HDR-001"}, path  # not well-formed, or no header: said so
            continue
        header = report.header
        missing = {p.code for p in report.problems} & {"EDI-RUL-001", "EDI-RUL-004", "EDI-RUL-005", "EDI-SCH-001"}
        complete = header.msg_id and header.sender_her_id and header.receiver_her_ids
        assert complete or missing, f"{path}: incomplete header without a problem saying why"
