"""Which AppRec version a party gets: the newest it can Consume, by the registry."""

from __future__ import annotations

from datetime import datetime

from edi.core.apprec import AppRecVersion
from edi.core.standards import APPREC_10_NS, APPREC_11_NS
from edi.kapabilitetsregister.model import Direction, InvalidHerIdError, parse_her_id
from edi.kapabilitetsregister.view import RegistryView

VERSIONS: tuple[tuple[AppRecVersion, str], ...] = (("1.1", "Applikasjonskvittering1.1"),
                                                   ("1.0", "Applikasjonskvittering1.0"))
NAMESPACES: dict[AppRecVersion, str] = {"1.0": APPREC_10_NS, "1.1": APPREC_11_NS}
# What a party gets when the registry says it can Consume neither: the version every AppRec reader takes.
FALLBACK: AppRecVersion = "1.0"


def apprec_version(view: RegistryView, her_id: str, at: datetime) -> AppRecVersion:
    try:
        party = parse_her_id(her_id)
    except InvalidHerIdError:
        return FALLBACK
    for version, name in VERSIONS:
        if view.check(party, view.catalogue.resolve(name), Direction.CONSUME, at).allowed:
            return version
    return FALLBACK
