"""Business rules beyond the schemas, each shown on a real message changed in one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edi.core.catalog import SchemaCatalog
from edi.core.validation import ValidationReport, Validator, ValidatorOptions
from tests.shared_samples import SAMPLES, STANDARDS

DIALOG = (SAMPLES / "dialogmelding/sarepta-eksempel/Dialogmelding/Dialogmelding-v1-1/Helsefaglig_dialog.xml"
          ).read_bytes()
SVAR = (SAMPLES / "svarrapport/sarepta-test/svarrapport/Testcase-mikrobiologisvar-20120203/case6-24.xml").read_bytes()


def codes(report: ValidationReport) -> dict[str, str]:
    return {p.code: p.severity.value for p in report.problems}


def test_the_unchanged_message_is_valid(validator: Validator) -> None:
    report = validator.validate(DIALOG)
    assert report.valid is True, report.problems
    assert report.problems == ()


# Rules the published schemas do not enforce are warnings by default: a backbone must not refuse what the schemas
# accept, since the sender cannot fix it. A deployment that wants them refused lists them in EDI_ERROR_CODES.


def test_msgid_longer_than_100_characters(validator: Validator) -> None:
    report = validator.validate(DIALOG.replace(b"de1a95c0-4d0c-11e7-9598-0800200c9a66", b"x" * 101))
    assert report.valid is True
    warning = next(p for p in report.warnings if p.code == "EDI-RUL-002")
    assert warning.apprec_code == "E10" and "101 characters" in warning.message
    assert warning.path == "/MsgHead/MsgInfo/MsgId"


def test_gendate_in_the_future_beyond_the_clock_skew(validator: Validator) -> None:
    now = datetime(2017, 6, 12, 7, 0, tzinfo=UTC)  # 09:00 in Oslo; the message says 09:35
    report = validator.validate(DIALOG, now=now)
    assert codes(report).get("EDI-RUL-003") == "warning"
    assert "EDI-RUL-003" not in codes(validator.validate(DIALOG, now=now + timedelta(minutes=31)))  # inside the skew


def test_receiver_her_id_missing_and_not_numeric_are_reported(validator: Validator) -> None:
    no_her = DIALOG.replace(b"<Id>59</Id>", b"<Id>5x9</Id>").replace(b"<Id>90998</Id>", b"<Id>90x998</Id>")
    report = validator.validate(no_her)
    assert codes(report)["EDI-RUL-006"] == "warning"
    assert any("90x998" in p.message for p in report.problems)
    dropped = DIALOG.replace(b'<TypeId V="HER" DN="HER-id" S="2.16.578.1.12.4.1.1.9051"/>',
                             b'<TypeId V="ENH" DN="Organisasjonsnummer" S="2.16.578.1.12.4.1.1.9051"/>')
    report = validator.validate(dropped)
    assert {"EDI-RUL-005"} <= set(codes(report))
    assert next(p for p in report.problems if p.code == "EDI-RUL-005").apprec_code == "E21"


def test_an_operator_can_promote_a_warning_to_an_error() -> None:
    strict = Validator(SchemaCatalog([STANDARDS]), ValidatorOptions(error_codes=frozenset({"EDI-RUL-006"})))
    report = strict.validate(DIALOG.replace(b"<Id>90998</Id>", b"<Id>90.998</Id>"))
    assert report.valid is False and codes(report)["EDI-RUL-006"] == "error"


def test_message_type_must_be_a_code_in_8279(validator: Validator) -> None:
    report = validator.validate(DIALOG.replace(b'V="DIALOG_HELSEFAGLIG"', b'V="DIALOG_SLADDER"'))
    warning = next(p for p in report.warnings if p.code == "EDI-RUL-007")
    assert warning.apprec_code == "T10" and "DIALOG_SLADDER" in warning.message
    assert report.valid is True  # a code the project's 8279 list lacks may be newer than the list


def test_migversion_edition_must_match_the_namespace(validator: Validator) -> None:
    report = validator.validate(DIALOG.replace(b"v1.2 2006-05-24", b"v1.2 2012-02-15"))
    assert codes(report)["EDI-RUL-009"] == "warning"  # the published MsgHead schema accepts any MIGversion
    report = validator.validate(DIALOG.replace(b"v1.2 2006-05-24", b"v1.1 2006-05-24"))
    assert codes(report)["EDI-RUL-008"] == "warning"


def test_a_deployment_can_refuse_every_rule_finding() -> None:
    codes_ = frozenset({"EDI-RUL-002", "EDI-RUL-003", "EDI-RUL-007", "EDI-RUL-009"})
    strict = Validator(SchemaCatalog([STANDARDS]), ValidatorOptions(error_codes=codes_))
    broken = (DIALOG.replace(b"de1a95c0-4d0c-11e7-9598-0800200c9a66", b"x" * 101)
              .replace(b'V="DIALOG_HELSEFAGLIG"', b'V="DIALOG_SLADDER"')
              .replace(b"v1.2 2006-05-24", b"v1.2 2012-02-15"))
    report = strict.validate(broken, now=datetime(2017, 6, 12, 7, 0, tzinfo=UTC))
    assert report.valid is False
    assert codes_ <= {code for code, severity in codes(report).items() if severity == "error"}


def test_base64_attachments_must_decode(validator: Validator) -> None:
    start = DIALOG.index(b"<Base64Container")
    body = DIALOG.index(b">", start) + 1
    broken = DIALOG[:body] + b"@@not*base64@@" + DIALOG[body:]
    report = validator.validate(broken)
    error = next(p for p in report.errors if p.code == "EDI-RUL-010")
    assert error.apprec_code == "T99" and "Attachment 2" in error.message


def test_national_identity_number_mod11(validator: Validator) -> None:
    report = validator.validate(DIALOG.replace(b"13116900216", b"13116900217"))
    finding = next(p for p in report.problems if p.code == "EDI-RUL-011")
    assert finding.apprec_code == "E31"
    assert "13116900217" not in finding.message  # the number itself is never echoed


def test_standalone_report_rules(validator: Validator) -> None:
    report = validator.validate(SVAR)
    assert report.valid is True
    # case6-24 names no HER-id for the lab or the requester, and 369.767 for the copy receiver
    assert codes(report) == {"EDI-RUL-004": "warning", "EDI-RUL-005": "warning", "EDI-RUL-006": "warning"}


@pytest.mark.parametrize("value", [b"", b"   \n"])
def test_empty_documents(validator: Validator, value: bytes) -> None:
    report = validator.validate(value)
    assert report.valid is False and report.errors[0].code == "EDI-XML-001"


def test_schema_errors_say_where(validator: Validator) -> None:
    report = validator.validate(
        DIALOG.replace(b"<GenDate>2017-06-12T09:35:22</GenDate>", b"<GenDate>yesterday</GenDate>"))
    error = next(p for p in report.errors if p.code == "EDI-SCH-001")
    assert error.apprec_code == "T02"
    assert error.line == 7 and error.path == "/MsgHead/MsgInfo/GenDate"
    assert "GenDate" in error.message and "{" not in error.message  # plain names, no {namespace}
    assert error.message_nb.startswith("MsgHead-konvolutten validerer ikke")
