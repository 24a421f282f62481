"""AppRecs built for real messages validate against the published AppRec schemas and answer the sender."""

from __future__ import annotations

import pytest

from edi.core.apprec import AppRecError, AppRecNotAllowed, AppRecStatus, build_apprec
from edi.core.extract import find_headers, read_header
from edi.core.header import RoutingHeader
from edi.core.parsing import parse_xml
from edi.core.validation import Validator
from tests.shared_samples import SAMPLES

ORIGINALS = [
    "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml",
    "dialogmelding/navikt-padm2/dialogmelding_dialog_notat.xml",
    "svarrapport/sarepta-test/svarrapport/Testcase-mikrobiologisvar-20120203/case6-24.xml",
    "epikrise/sarepta-eksempel/Epikrise/Epikrise_v1-2/epikrise_v1.2_n.xml",
    "henvisning/sarepta-eksempel/Henvisning/Henvisning_v2-0/Henvisning_ny_tilstand_v2-0_Endring.xml",
    "other/sarepta-eksempel/Rekvisisjon/Rekvisisjon-v-1-6/Rekvisisjon_lab_v1-6_Kansellering.xml",
]


def original(relative: str) -> RoutingHeader:
    return read_header(find_headers(parse_xml((SAMPLES / relative).read_bytes()))[0])


@pytest.mark.parametrize("relative", ORIGINALS)
@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("status", list(AppRecStatus))
def test_apprec_validates_against_the_published_schema(
    validator: Validator, builtin_validator: Validator, relative: str, version: str, status: AppRecStatus
) -> None:
    header = original(relative)
    errors = [] if status is AppRecStatus.OK else [AppRecError("T02", "Element 'GenDate' er ugyldig.")]
    document = build_apprec(header, status, errors, version=version)  # type: ignore[arg-type]
    report = validator.validate(document)
    assert report.valid is True, report.errors
    assert builtin_validator.validate(document).valid is True
    apprec = report.header
    assert apprec is not None and (apprec.standard, apprec.version) == ("AppRec", version)
    assert apprec.apprec_status is not None and apprec.apprec_status.code == status.value
    assert apprec.original_msg_id == header.msg_id
    assert apprec.receiver_her_ids[:1] == ([header.sender_her_id] if header.sender_her_id else [])
    assert apprec.sender_her_id == (header.receiver.her_id if header.receiver else None)


def test_apprec_from_validation_problems_names_code_and_text(validator: Validator) -> None:
    data = (SAMPLES / ORIGINALS[0]).read_bytes().replace(
        b"<GenDate>2017-06-12T09:35:22", b"<GenDate>2017-13-12T09:35:22")
    report = validator.validate(data)
    assert report.header is not None and report.errors
    document = build_apprec(report.header, AppRecStatus.AVVIST, [AppRecError.from_problem(p) for p in report.errors])
    text = document.decode()
    assert 'V="T02"' in text and 'DN="XML validerer ikke"' in text and "S=\"2.16.578.1.12.4.1.1.8221\"" in text
    assert "MsgHead-konvolutten validerer ikke" in text  # the Norwegian text goes to the sender's user
    assert "<MsgType V=\"DIALOG_HELSEFAGLIG\" DN=\"Helsefaglig dialog\"/>" in text
    assert validator.validate(document).valid is True  # the unreadable GenDate does not stop the receipt


def test_a_message_without_msgid_still_gets_its_receipt(validator: Validator) -> None:
    data = (SAMPLES / ORIGINALS[0]).read_bytes().replace(b"<MsgId>de1a95c0-4d0c-11e7-9598-0800200c9a66</MsgId>", b"")
    report = validator.validate(data)
    assert report.header is not None and "E10" in report.apprec_codes
    document = build_apprec(report.header, AppRecStatus.AVVIST, [AppRecError.from_problem(p) for p in report.errors])
    assert validator.validate(document).valid is True


def test_original_details_are_carried() -> None:
    header = original(ORIGINALS[0])
    text = build_apprec(header, AppRecStatus.OK, version="1.0", apprec_id="a-1").decode()
    assert "<Id>a-1</Id>" in text
    assert "<IssueDate>2017-06-12T09:35:22+02:00</IssueDate>" in text  # Norwegian summer time
    assert "<Id>de1a95c0-4d0c-11e7-9598-0800200c9a66</Id>" in text
    assert "<MIGversion>v1.0 2004-11-21</MIGversion>" in text


def test_never_an_apprec_to_an_apprec() -> None:
    with pytest.raises(AppRecNotAllowed, match="never answered with an AppRec"):
        build_apprec(original("apprec/ks-no-fiks-nhn-client/app-rec/1.1/all-data.xml"), AppRecStatus.OK)


def test_ok_has_no_errors_and_not_ok_has_some() -> None:
    header = original(ORIGINALS[0])
    with pytest.raises(AppRecNotAllowed, match="carries no errors"):
        build_apprec(header, AppRecStatus.OK, [AppRecError("X99", "x")])
    for status in (AppRecStatus.AVVIST, AppRecStatus.OK_FEIL_I_DELMELDING):
        with pytest.raises(AppRecNotAllowed, match="at least one error"):
            build_apprec(header, status)
