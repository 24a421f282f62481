"""Change records: one per change the store makes, numbered in commit order, each the full state of one key.

Because a record carries the whole entity after the change (None when it was removed), a reader needs only the
latest record of each key: the stream can live on a compacted Kafka topic keyed by `key`, and replaying it in
any order that keeps each key's records in sequence rebuilds the registry exactly.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from edi.kapabilitetsregister.model import Capability, Entity, Moment, Override, Party
from edi.kapabilitetsregister.specifications import Catalogue


class ChangeRecord(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    seq: int  # gap-free and in commit order across all writers
    at: Moment
    actor: str
    key: str  # party/<her>, capability/<her>/<spec>/<direction> or override/<her>/<spec>
    her_id: int
    before: Entity | None
    after: Entity | None

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> ChangeRecord:
        return cls.model_validate_json(data)


def new_record(
    seq: int, at: datetime, actor: str, before: Party | Capability | Override | None,
    after: Party | Capability | Override | None,
) -> ChangeRecord:
    entity = after or before
    assert entity is not None, "a change has a before or an after"
    return ChangeRecord(seq=seq, at=at, actor=actor, key=entity.key, her_id=entity.her_id, before=before, after=after)


def describe_change(
    catalogue: Catalogue, before: Party | Capability | Override | None, after: Party | Capability | Override | None,
) -> str:
    """One line for an operator: what the change does."""
    entity = after or before
    if isinstance(entity, Party):
        if before is None:
            return f"register party {entity.her_id}" + (f" ({entity.name})" if entity.name else "")
        if after is None:
            return f"remove party {entity.her_id}"
        changed = [
            f"{name}: {_show(getattr(before, name))} -> {_show(getattr(after, name))}"
            for name in Party.model_fields
            if name not in ("updated_by", "updated_at") and getattr(before, name) != getattr(after, name)
        ]
        return f"update party {entity.her_id}: " + "; ".join(changed)
    spec = catalogue.get(entity.specification_id) if entity is not None else None
    spec_name = spec.capability_name if spec else f"specification {entity.specification_id if entity else '?'}"
    if isinstance(entity, Capability):
        capability = f"{entity.direction.value}{spec_name}"
        if after is None:
            return f"revoke {capability}"
        period = "" if after.valid_from is None and after.valid_to is None else f" (valid {after.period})"
        return f"{'grant' if before is None else 'change'} {capability}{period}"
    assert isinstance(entity, Override)
    if after is None:
        return f"clear override of {spec_name}"
    assert isinstance(after, Override)
    return f"override {spec_name}: {after.effect.value} ({after.reason})"


def _show(value: object) -> str:
    return "-" if value is None else str(getattr(value, "value", value))
