"""The capability policy (EDI_CAPABILITY_POLICY): the table of cases in docs/capability-policy.md, one row each.

The registry is a pilot still being filled in. Under `registered` (the default) it enforces what it knows: a
governed specification, for a receiver that has registered capabilities (its own or its organisation's). What it
does not know is delivered, with the reason it was not checked. `strict` delivers only what the registry allows;
`address-only` only checks that the receiver is a registered party. Overrides apply under every policy.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from edi.core.kinds import MessageKind
from edi.kapabilitetsregister.model import Capability, Direction, OverrideEffect
from edi.kapabilitetsregister.settings import CapabilityPolicySettings
from edi.kapabilitetsregister.view import CapabilityPolicy, CheckOutcome, RegistryView
from edi.services.router.routing import route
from tests.kapabilitetsregister.test_view import CATALOGUE, NOW, capability, override, party

REGISTERED, STRICT, ADDRESS_ONLY = CapabilityPolicy.REGISTERED, CapabilityPolicy.STRICT, CapabilityPolicy.ADDRESS_ONLY
DIALOG_10 = CATALOGUE.resolve("DialogmeldingForesporselSvar1.0")
DIALOG_11 = CATALOGUE.resolve("DialogmeldingHelsefagligDialog1.1")
EPIKRISE = CATALOGUE.resolve("Epikrise1.2")
HELSEFAGLIG = MessageKind("http://www.kith.no/xmlstds/dialog/2013-01-23", "DIALOG_HELSEFAGLIG")
EKONTAKT = MessageKind("http://www.kith.no/xmlstds/dialog/2013-01-23", "DIALOG_INNBYGGER_EKONTAKT")
UNKNOWN = 999

# The parties of the table: HER-id -> what it has registered.
GP_DIALOG_10 = 1  # a GP system registered for Dialogmelding 1.0 only
EPIKRISE_ONLY = 2  # registered capabilities, none of Dialogmelding
NOTHING = 3  # a registered party with no capabilities at all
PRODUCE_ONLY = 4  # only a Produce capability: that registers nothing it can receive
EXPIRED = 5  # its one Consume capability ended yesterday
ORGANISATION = 6  # an organisation registered for Epikrise
SERVICE = 7  # a service of that organisation, with nothing of its own: it inherits the organisation's
DENIED = 8  # can take Helsefaglig dialog, but an operator override denies it
ALLOWED_BY_OVERRIDE = 9  # has nothing registered, but an operator override allows Helsefaglig dialog
INACTIVE = 10
SENDING_SERVICE = 11  # a service of GP_DIALOG_10's organisation that registered only what it sends


def build_view() -> RegistryView:
    view = RegistryView(CATALOGUE)
    for her_id in (GP_DIALOG_10, EPIKRISE_ONLY, NOTHING, PRODUCE_ONLY, EXPIRED, ORGANISATION, DENIED,
                   ALLOWED_BY_OVERRIDE):
        view.put(party(her_id))
    view.put(party(SERVICE, parent=ORGANISATION))
    view.put(party(INACTIVE).model_copy(update={"active": False}))
    view.put(party(SENDING_SERVICE, parent=GP_DIALOG_10))
    view.put(capability(SENDING_SERVICE, DIALOG_11.id).model_copy(update={"direction": Direction.PRODUCE}))
    view.put(capability(GP_DIALOG_10, DIALOG_10.id))
    view.put(capability(EPIKRISE_ONLY, EPIKRISE.id))
    view.put(capability(PRODUCE_ONLY, DIALOG_11.id).model_copy(update={"direction": Direction.PRODUCE}))
    view.put(capability(EXPIRED, DIALOG_11.id, valid_to=NOW - timedelta(days=1)))
    view.put(capability(ORGANISATION, EPIKRISE.id))
    view.put(capability(DENIED, DIALOG_11.id))
    view.put(override(DENIED, DIALOG_11.id, OverrideEffect.DENY))
    view.put(override(ALLOWED_BY_OVERRIDE, DIALOG_11.id, OverrideEffect.ALLOW))
    return view


T10, E21, OK = "T10", "E21", "delivered"
NOT_GOVERNED, NO_CAPS, BY_POLICY = "unchecked_not_governed", "unchecked_no_capabilities", "unchecked_by_policy"

# (receiver, kind) -> what each policy does: registered, strict, address-only.
TABLE: list[tuple[str, int, MessageKind, tuple[str, str, str]]] = [
    ("GP registered for 1.0 only gets no 1.1 helsefaglig dialog", GP_DIALOG_10, HELSEFAGLIG, (T10, T10, BY_POLICY)),
    ("registered capabilities without the specification", EPIKRISE_ONLY, HELSEFAGLIG, (T10, T10, BY_POLICY)),
    ("a kind the registry does not govern", GP_DIALOG_10, EKONTAKT, (NOT_GOVERNED, T10, BY_POLICY)),
    ("a receiver with no capabilities at all", NOTHING, HELSEFAGLIG, (NO_CAPS, T10, BY_POLICY)),
    ("Produce-only entries do not count", PRODUCE_ONLY, HELSEFAGLIG, (NO_CAPS, T10, BY_POLICY)),
    ("expired entries do not count", EXPIRED, HELSEFAGLIG, (NO_CAPS, T10, BY_POLICY)),
    ("a service inherits its organisation's capabilities", SERVICE, HELSEFAGLIG, (T10, T10, BY_POLICY)),
    ("a service inherits them for what they allow", SERVICE, MessageKind(EPIKRISE.namespace, "EPIKRISE"),
     (OK, OK, BY_POLICY)),
    ("a service that registered only what it sends receives as its organisation", SENDING_SERVICE, HELSEFAGLIG,
     (T10, T10, BY_POLICY)),
    ("an override denies under every policy", DENIED, HELSEFAGLIG, (T10, T10, T10)),
    ("an override allows under every policy", ALLOWED_BY_OVERRIDE, HELSEFAGLIG, (OK, OK, OK)),
    ("override-only entries do not count as capabilities", ALLOWED_BY_OVERRIDE, EKONTAKT,
     (NOT_GOVERNED, T10, BY_POLICY)),
    ("a receiver not in the registry", UNKNOWN, HELSEFAGLIG, (E21, E21, E21)),
    ("... also for a kind the registry does not govern", UNKNOWN, EKONTAKT, (E21, E21, E21)),
    ("an inactive party takes nothing", INACTIVE, EKONTAKT, (T10, T10, T10)),
]


def verdict_of(view: RegistryView, her_id: int, kind: MessageKind, policy: CapabilityPolicy) -> str:
    """What the router does with the receiver, as its sender would see it: the AppRec code, or delivered (and
    why it was not checked)."""
    routing = route(view, kind, [str(her_id)], NOW, policy)
    if routing.refused:
        return routing.refused[0].problem.apprec_code.value
    (receiving,) = routing.receivers
    return OK if receiving.unchecked is None else receiving.unchecked.value


@pytest.mark.parametrize(("case", "her_id", "kind", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_each_policy_gives_the_documented_verdict(
    case: str, her_id: int, kind: MessageKind, expected: tuple[str, str, str],
) -> None:
    view = build_view()
    found = tuple(verdict_of(view, her_id, kind, policy) for policy in (REGISTERED, STRICT, ADDRESS_ONLY))
    assert found == expected, case


def test_a_refusal_names_what_the_receiver_supports() -> None:
    view = build_view()
    refused = route(view, HELSEFAGLIG, [str(GP_DIALOG_10), str(EPIKRISE_ONLY), str(SERVICE)], NOW, REGISTERED).refused
    reasons = {r.receiver_her_id: r.problem.message for r in refused}
    assert "of Dialogmelding it supports only: Dialogmelding 1.0, Forespørsel og svar" in reasons[str(GP_DIALOG_10)]
    assert reasons[str(EPIKRISE_ONLY)].endswith("it can receive: ConsumeEpikrise1.2.")
    assert reasons[str(SERVICE)].endswith("it can receive: ConsumeEpikrise1.2.")


def test_an_unchecked_delivery_says_why() -> None:
    verdict = build_view().check_with_policy(GP_DIALOG_10, None, Direction.CONSUME, NOW, REGISTERED, EKONTAKT.name)
    assert verdict.allowed and verdict.unchecked
    assert verdict.outcome is CheckOutcome.UNCHECKED_NOT_GOVERNED
    assert verdict.reason == "delivered without a capability check: kind not governed by the registry"


def test_a_capability_valid_later_does_not_count_yet() -> None:
    view = build_view()
    view.put(Capability(her_id=NOTHING, specification_id=DIALOG_11.id, direction=Direction.CONSUME,
                        registered_by="t", registered_at=NOW, valid_from=NOW + timedelta(days=1)))
    assert verdict_of(view, NOTHING, HELSEFAGLIG, REGISTERED) == NO_CAPS
    tomorrow = NOW + timedelta(days=2)
    assert route(view, HELSEFAGLIG, [str(NOTHING)], tomorrow, REGISTERED).receivers[0].unchecked is None


def test_the_policy_setting_defaults_to_registered_and_reads_every_value(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CapabilityPolicySettings().capability_policy is REGISTERED
    for value in ("registered", "strict", "address-only"):
        monkeypatch.setenv("EDI_CAPABILITY_POLICY", value)
        assert CapabilityPolicySettings().capability_policy.value == value
    monkeypatch.setenv("EDI_CAPABILITY_POLICY", "lenient")
    with pytest.raises(ValueError, match="registered"):
        CapabilityPolicySettings()



def test_an_organisations_override_applies_to_its_services() -> None:
    view = build_view()
    view.put(override(ORGANISATION, EPIKRISE.id, OverrideEffect.DENY))
    epikrise = MessageKind(EPIKRISE.namespace, "EPIKRISE")
    assert [verdict_of(view, SERVICE, epikrise, policy) for policy in CapabilityPolicy] == [T10, T10, T10]


@pytest.mark.parametrize(("policy", "expected"), [
    (REGISTERED, CheckOutcome.UNCHECKED_NO_CAPABILITIES), (STRICT, CheckOutcome.NO_CAPABILITY),
    (ADDRESS_ONLY, CheckOutcome.UNCHECKED_BY_POLICY),
])
def test_the_sender_check_follows_the_same_policy(policy: CapabilityPolicy, expected: CheckOutcome) -> None:
    """EDI_REGISTRY_CHECK_SENDER_PRODUCE: a sender that has registered nothing it sends."""
    result = build_view().check_delivery(GP_DIALOG_10, DIALOG_11, NOW, sender=NOTHING, policy=policy)
    assert result.sender is not None and result.sender.outcome is expected
    if expected is CheckOutcome.UNCHECKED_NO_CAPABILITIES:
        assert result.sender.reason == "sent without a capability check: sender has registered no capabilities"
