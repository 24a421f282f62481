"""The pure parts: which documents are admitted and as what, and which receivers a message reaches and why not."""

from __future__ import annotations

from datetime import UTC, datetime

from edi.core.kinds import MessageKind
from edi.core.validation import ValidationReport
from edi.kapabilitetsregister.import_export import parse_import
from edi.kapabilitetsregister.model import Capability, Party
from edi.kapabilitetsregister.specifications import default_catalogue, read_routing_header
from edi.kapabilitetsregister.view import CapabilityPolicy, CheckOutcome, RegistryView
from edi.services.messaging import RefusalKind
from edi.services.router.routing import Receiving, route
from edi.services.validator.admission import Admitted, Refusal, admit, content_message_id
from edi.settings import ValidationSettings
from tests.services.documents import RECEIVER, SENDER, dialog
from tests.shared_samples import SAMPLES, STANDARDS

NOW = datetime.now(UTC)
HENVISNING_20 = SAMPLES / "henvisning/sarepta-eksempel/Henvisning/Henvisning_v2-0/Henvisning_ny_tilstand_v2-0_Ny.xml"
TIMERESERVASJON = SAMPLES / (
    "dialogmelding/sarepta-eksempel/DigitalDialogImplementasjonsguideStandarder/"
    "SystemdokumentasjonKommunikasjonsprosesser-verifiserbare/DIALOG_INNBYGGER_TIMER/1.1/"
    "Timereservasjon_-_Innbygger_-_Timereservasjon_bekreftet.xml")


def report(document: bytes, *, schemas: bool = True) -> ValidationReport:
    return ValidationSettings(schema_dirs=[STANDARDS] if schemas else []).validator().validate(document)


def test_a_valid_dialogmelding_is_admitted_with_its_sender_receivers_and_type() -> None:
    admission = admit(report(dialog("m-1")), require_schemas=False)
    assert isinstance(admission, Admitted)
    assert (admission.sender_her_id, admission.msg_id, admission.receiver_her_ids) == (SENDER, "m-1", (RECEIVER,))
    assert admission.message_type == "DIALOG_NOTAT" and not admission.is_apprec


def test_a_part_of_a_known_standard_without_its_schema_is_admitted_unless_schemas_are_required() -> None:
    without = report(HENVISNING_20.read_bytes(), schemas=False)  # the built-in set has no Henvisning 2.0
    assert without.valid is None
    assert isinstance(admit(without, require_schemas=False), Admitted)
    refused = admit(without, require_schemas=True)
    assert isinstance(refused, Refusal) and refused.kind is RefusalKind.INVALID_DOCUMENT
    [missing] = refused.problems
    assert (missing.code, missing.apprec_code.value, missing.is_error) == ("EDI-SCH-002", "T10", True)
    assert "http://ehelse.no/xmlstds/henvisning/2017-11-30" in missing.message
    assert "Henvisning 2.0" in missing.message  # the part and its standard


def test_a_part_that_no_published_schema_covers_is_never_refused_for_it() -> None:
    # Helsenorge's appointment dialog carries an iCalendar part; no published schema covers its namespace.
    with_icalendar = report(TIMERESERVASJON.read_bytes())
    assert with_icalendar.valid is None
    assert [p.namespace for p in with_icalendar.parts if p.valid is None] == ["urn:ietf:params:xml:ns:icalendar-2.0"]
    admitted = admit(with_icalendar, require_schemas=True)
    assert isinstance(admitted, Admitted)
    assert [w.code for w in admitted.warnings if w.code == "EDI-SCH-002"] == ["EDI-SCH-002"]


def test_what_cannot_be_read_addressed_or_validated_is_refused_with_its_apprec_code() -> None:
    not_xml = admit(report(b"<MsgHead><unclosed>"), require_schemas=False)
    no_header = admit(report(b"<Note xmlns='urn:x'>hei</Note>"), require_schemas=False)
    unaddressed = dialog().replace(f"<Id>{RECEIVER}</Id>".encode(), b"<Id></Id>").replace(
        b"<Id>8142987</Id>", b"<Id></Id>")  # the receiver and its organisation
    no_receiver = admit(report(unaddressed), require_schemas=False)
    assert isinstance(not_xml, Refusal) and not_xml.apprec_code == "T01"
    assert isinstance(no_header, Refusal) and no_header.apprec_code == "T10"
    assert isinstance(no_receiver, Refusal) and no_receiver.kind is RefusalKind.NO_RECEIVERS


def test_the_same_bytes_always_get_the_same_message_id() -> None:
    assert content_message_id(dialog("a")) == content_message_id(dialog("a")) != content_message_id(dialog("b"))


def view_of(*parties: str) -> RegistryView:
    view = RegistryView(default_catalogue())
    for entry in parse_import(f"[{','.join(parties)}]".encode(), "view.json"):
        view.put(Party(her_id=entry.her_id, updated_by="test", updated_at=NOW))
        for item in entry.capability_entries():
            direction, spec = view.catalogue.parse_capability(item.capability)
            view.put(Capability(her_id=entry.her_id, specification_id=spec.id, direction=direction,
                                registered_by="test", registered_at=NOW))
    return view


def test_receivers_that_can_consume_the_specification_get_it_the_others_e21_or_t10_with_the_reason() -> None:
    header = read_routing_header(dialog(), "dialog")
    view = view_of(
        '{"herId": 1, "supported": ["ConsumeDialogmeldingForesporselSvar1.0"]}',
        '{"herId": 2, "supported": ["ConsumeDialogmeldingHelsefagligDialog1.1"]}',
        '{"herId": 3, "supported": ["ConsumeEpikrise1.2"]}',
        '{"herId": 5, "supported": []}',
    )
    routing = route(view, MessageKind.of(header), ["1", "2", "3", "4", "369.767", "5"], NOW,
                    CapabilityPolicy.REGISTERED)
    assert routing.receivers == (Receiving("1", None), Receiving("5", CheckOutcome.UNCHECKED_NO_CAPABILITIES))
    refused = {r.receiver_her_id: r.problem for r in routing.refused}
    assert {her_id: p.apprec_code.value for her_id, p in refused.items()} == {
        "2": "T10", "3": "T10", "4": "E21", "369.767": "E21"}
    assert "of Dialogmelding it supports only: Dialogmelding 1.1, Helsefaglig dialog" in refused["2"].message
    assert refused["3"].message.endswith("it can receive: ConsumeEpikrise1.2.")
    assert "not a registered communication party" in refused["4"].message
    assert "a HER-id is a positive whole number" in refused["369.767"].message


def test_a_message_that_is_none_of_the_registrys_specifications_is_delivered_unchecked_or_strictly_refused() -> None:
    header = read_routing_header(dialog(), "dialog").model_copy(update={"namespace": "urn:unknown", "documents": ()})
    view = view_of('{"herId": 1, "supported": ["ConsumeDialogmeldingForesporselSvar1.0"]}')
    kind = MessageKind.of(header)
    assert kind.name == "unknown"
    registered = route(view, kind, ["1", "2"], NOW, CapabilityPolicy.REGISTERED)
    assert registered.receivers == (Receiving("1", CheckOutcome.UNCHECKED_NOT_GOVERNED),)
    assert [r.problem.apprec_code.value for r in registered.refused] == ["E21"]
    strict = route(view, kind, ["1"], NOW, CapabilityPolicy.STRICT)
    assert strict.receivers == ()
    assert [r.problem.apprec_code.value for r in strict.refused] == ["T10"]
    assert "none of the registry's message specifications" in strict.refused[0].problem.message


