"""The in-memory view: rules of the check that the CLI tests do not reach, and how it takes change records."""

from __future__ import annotations

from datetime import UTC, datetime

from edi.kapabilitetsregister.changes import ChangeRecord, new_record
from edi.kapabilitetsregister.model import (
    Capability,
    Direction,
    Override,
    OverrideEffect,
    Party,
    PartyKind,
)
from edi.kapabilitetsregister.specifications import default_catalogue
from edi.kapabilitetsregister.view import CheckOutcome, RegistryView

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
CATALOGUE = default_catalogue()
EPIKRISE = CATALOGUE.resolve("Epikrise1.2")
APPREC_11 = CATALOGUE.resolve("Applikasjonskvittering1.1")


def party(her_id: int, parent: int | None = None) -> Party:
    kind = PartyKind.ORGANISATION if parent is None else PartyKind.SERVICE
    return Party(her_id=her_id, kind=kind, parent_her_id=parent, updated_by="t", updated_at=NOW)


def capability(her_id: int, spec_id: int, **period: datetime) -> Capability:
    return Capability(her_id=her_id, specification_id=spec_id, direction=Direction.CONSUME, registered_by="t",
                      registered_at=NOW, **period)


def override(her_id: int, spec_id: int, effect: OverrideEffect) -> Override:
    return Override(her_id=her_id, specification_id=spec_id, effect=effect, reason=f"{effect} {her_id}", set_by="t",
                    set_at=NOW)


def outcome(view: RegistryView, her_id: int, spec_id: int, at: datetime = NOW) -> CheckOutcome:
    spec = CATALOGUE.get(spec_id)
    assert spec is not None
    return view.check(her_id, spec, Direction.CONSUME, at).outcome


def test_a_service_inherits_until_it_has_entries_of_its_own() -> None:
    view = RegistryView(CATALOGUE)
    for entity in (party(1), party(2, parent=1), capability(1, EPIKRISE.id)):
        view.put(entity)
    assert outcome(view, 2, EPIKRISE.id) is CheckOutcome.ALLOWED
    view.put(capability(2, APPREC_11.id))
    assert outcome(view, 2, EPIKRISE.id) is CheckOutcome.NO_CAPABILITY
    assert outcome(view, 2, APPREC_11.id) is CheckOutcome.ALLOWED


def test_overrides_win_and_the_service_own_override_beats_its_organisations() -> None:
    view = RegistryView(CATALOGUE)
    for entity in (party(1), party(2, parent=1), capability(1, EPIKRISE.id),
                   override(1, EPIKRISE.id, OverrideEffect.DENY)):
        view.put(entity)
    assert outcome(view, 1, EPIKRISE.id) is CheckOutcome.DENIED_BY_OVERRIDE
    assert outcome(view, 2, EPIKRISE.id) is CheckOutcome.DENIED_BY_OVERRIDE
    view.put(override(2, EPIKRISE.id, OverrideEffect.ALLOW))
    assert outcome(view, 2, EPIKRISE.id) is CheckOutcome.ALLOWED


def test_validity_includes_the_start_and_excludes_the_end() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    view = RegistryView(CATALOGUE)
    view.put(party(1))
    view.put(capability(1, EPIKRISE.id, valid_from=start, valid_to=end))
    assert outcome(view, 1, EPIKRISE.id, start) is CheckOutcome.ALLOWED
    assert outcome(view, 1, EPIKRISE.id, end) is CheckOutcome.OUTSIDE_VALIDITY


def test_a_redelivered_or_stale_record_is_ignored() -> None:
    granted = new_record(5, NOW, "t", None, capability(1, EPIKRISE.id))
    revoked = new_record(6, NOW, "t", capability(1, EPIKRISE.id), None)
    view = RegistryView(CATALOGUE)
    assert view.apply(new_record(1, NOW, "t", None, party(1)))
    assert view.apply(revoked)
    assert not view.apply(granted)  # older than what the view holds for this key: no resurrection
    assert not view.apply(revoked)
    assert outcome(view, 1, EPIKRISE.id) is CheckOutcome.NO_CAPABILITY
    assert view.last_seq == 6


def test_a_change_record_survives_json() -> None:
    record = new_record(7, NOW, "alice", None, override(1, EPIKRISE.id, OverrideEffect.DENY))
    assert ChangeRecord.from_json(record.to_json()) == record
    assert record.key == f"override/1/{EPIKRISE.id}"
