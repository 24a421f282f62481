"""The registry's store: SQLAlchemy (async) over SQLite or PostgreSQL, migrated by Alembic.

Every write runs in one transaction that first locks the single `registry_head` row. That serialises writers on
both databases (a row lock on PostgreSQL, the database write lock on SQLite), so concurrent operators never lose
a change, and each change gets the next sequence number in commit order: the change stream has no gaps and no
reordering. The change rows double as the audit history (who, when, before, after).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from edi.adapters.sql import make_engine, migrate_to_head
from edi.kapabilitetsregister import tables as t
from edi.kapabilitetsregister.changes import ChangeRecord, describe_change, new_record
from edi.kapabilitetsregister.import_export import (
    PARTY_FIELDS,
    CapabilityEntry,
    ExportDocument,
    OverrideEntry,
    PartyEntry,
)
from edi.kapabilitetsregister.model import (
    Capability,
    Direction,
    InvalidInputError,
    Override,
    OverrideEffect,
    Party,
    UnknownPartyError,
    UnknownSpecificationError,
)
from edi.kapabilitetsregister.model import Entity as TaggedEntity
from edi.kapabilitetsregister.specifications import Catalogue, Specification, default_catalogue
from edi.kapabilitetsregister.view import CapabilityPolicy, CheckResult, RegistryView

Entity = Party | Capability | Override
E = TypeVar("E", Party, Capability, Override)
SEARCH_LIMIT = 200


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PartyDetails(_Out):
    """A party with the capabilities that answer checks for it (`inherited_from`: its organisation's)."""

    party: Party
    supported: list[str]  # compact capability names, as the registry publishes them
    capabilities: list[Capability]
    inherited_from: int | None
    overrides: list[Override]


class PlannedChange(_Out):
    key: str
    her_id: int
    summary: str
    seq: int | None  # None in a dry run: nothing was written
    before: TaggedEntity | None
    after: TaggedEntity | None


class ImportResult(_Out):
    dry_run: bool
    changes: list[PlannedChange]


@dataclass
class _Write:
    """One write transaction: its connection, time, actor, and the sequence numbers it has used."""

    connection: AsyncConnection
    at: datetime
    actor: str
    seq: int
    records: list[ChangeRecord] = field(default_factory=list)


_TABLES: dict[type[BaseModel], sa.Table] = {Party: t.parties, Capability: t.capabilities, Override: t.overrides}


class RegistryStore:
    def __init__(
        self, engine: AsyncEngine, catalogue: Catalogue | None = None,
        policy: CapabilityPolicy = CapabilityPolicy.REGISTERED,
    ) -> None:
        self.engine = engine
        self.catalogue = catalogue or default_catalogue()
        self.policy = policy  # what `check` applies, as the routers do (EDI_CAPABILITY_POLICY)

    @classmethod
    async def open(
        cls, url: str, catalogue: Catalogue | None = None, policy: CapabilityPolicy = CapabilityPolicy.REGISTERED,
    ) -> RegistryStore:
        """Connect, creating and migrating the database on first use."""
        store = cls(make_engine(url), catalogue, policy)
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    async def migrate(self) -> None:
        await migrate_to_head(self.engine, "edi.kapabilitetsregister:migrations")

    async def specifications(self) -> list[Specification]:
        return list(self.catalogue)

    def specification(self, specification_id: int) -> Specification:
        spec = self.catalogue.get(specification_id)
        if spec is None:
            raise UnknownSpecificationError(f"unknown message specification id {specification_id}")
        return spec

    async def list_parties(self) -> list[Party]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(sa.select(t.parties).order_by(t.parties.c.her_id))
            return [_party(row) for row in rows]

    async def search_parties(self, text: str) -> list[Party]:
        """Parties whose name, source system, HER-id or organisation number matches the text."""
        cleaned = text.strip()
        pattern = f"%{cleaned}%"
        conditions: list[sa.ColumnElement[bool]] = [
            t.parties.c.name.ilike(pattern), t.parties.c.source_system.ilike(pattern),
            t.parties.c.organisation_number == cleaned,
        ]
        if cleaned.isdigit() and int(cleaned) < 2**63:
            conditions.append(t.parties.c.her_id == int(cleaned))
        query = sa.select(t.parties).where(sa.or_(*conditions)).order_by(t.parties.c.her_id).limit(SEARCH_LIMIT)
        async with self.engine.connect() as connection:
            return [_party(row) for row in await connection.execute(query)]

    async def party_details(self, her_id: int) -> PartyDetails:
        view = await self.load_view([her_id])
        party = view.party(her_id)
        if party is None:
            raise UnknownPartyError(f"HER-id {her_id} is not a registered communication party")
        capabilities, inherited_from = view.effective_capabilities(her_id)
        now = datetime.now(UTC)
        return PartyDetails(
            party=party,
            supported=[
                self.specification(c.specification_id).capability(c.direction)
                for c in capabilities if c.valid_at(now)
            ],
            capabilities=capabilities,
            inherited_from=inherited_from,
            overrides=view.overrides(her_id),
        )

    async def check(
        self, receiver: int, specification_id: int | None, at: datetime, sender: int | None = None,
        kind_name: str = "",
    ) -> CheckResult:
        spec = None if specification_id is None else self.specification(specification_id)
        view = await self.load_view([receiver] if sender is None else [receiver, sender])
        return view.check_delivery(receiver, spec, at, sender, policy=self.policy, kind_name=kind_name)

    async def load_view(self, her_ids: Iterable[int] | None = None) -> RegistryView:
        """A view of the current tables: of the given parties and their organisations, or of everything."""
        async with self.engine.connect() as connection:
            return await _load_view(connection, self.catalogue, None if her_ids is None else set(her_ids))

    async def history(self, her_id: int) -> list[ChangeRecord]:
        async with self.engine.connect() as connection:
            rows = list(await connection.execute(
                sa.select(t.changes).where(t.changes.c.her_id == her_id).order_by(t.changes.c.seq)
            ))
            if not rows and await _get(connection, Party, her_id) is None:
                raise UnknownPartyError(f"HER-id {her_id} is not a registered communication party and has no history")
        return [_record(row) for row in rows]

    async def changes(self, after: int = 0, limit: int | None = None) -> list[ChangeRecord]:
        """The change records after a sequence number, in order: the stream that feeds the views."""
        query = sa.select(t.changes).where(t.changes.c.seq > after).order_by(t.changes.c.seq)
        if limit is not None:
            query = query.limit(limit)
        async with self.engine.connect() as connection:
            return [_record(row) for row in await connection.execute(query)]

    async def export(self) -> ExportDocument:
        view = await self.load_view()
        entries = []
        for party in view.parties():
            stated = party.model_dump(include=set(PARTY_FIELDS))
            entries.append(PartyEntry.model_validate({
                "her_id": party.her_id,
                **stated,
                "supported": [self._capability_entry(c) for c in view.own_capabilities(party.her_id)],
                "overrides": [
                    OverrideEntry(specification=self.specification(o.specification_id).capability_name,
                                  effect=o.effect, reason=o.reason, valid_from=o.valid_from, valid_to=o.valid_to)
                    for o in view.overrides(party.her_id)
                ],
            }))
        return ExportDocument(parties=entries)

    def _capability_entry(self, capability: Capability) -> str | CapabilityEntry:
        name = self.specification(capability.specification_id).capability(capability.direction)
        if capability.valid_from is None and capability.valid_to is None:
            return name
        return CapabilityEntry(capability=name, valid_from=capability.valid_from, valid_to=capability.valid_to)

    # --- writing ----------------------------------------------------------------------------------------------

    async def grant(
        self, her_id: int, specification_id: int, direction: Direction, actor: str,
        valid_from: datetime | None = None, valid_to: datetime | None = None,
    ) -> list[ChangeRecord]:
        """Register a capability (or change its validity); nothing is written when it is already so."""
        self.specification(specification_id)
        async with self._writing(actor) as write:
            await _require_party(write.connection, her_id)
            before = await _get(write.connection, Capability, her_id, specification_id, direction)
            after = _new(Capability, her_id, specification_id=specification_id, direction=direction,
                         valid_from=valid_from, valid_to=valid_to, registered_by=actor, registered_at=write.at)
            if not after.same_content(before):
                await _write(write, before, after)
        return write.records

    async def revoke(self, her_id: int, specification_id: int, direction: Direction, actor: str) -> list[ChangeRecord]:
        self.specification(specification_id)
        async with self._writing(actor) as write:
            await _require_party(write.connection, her_id)
            before = await _get(write.connection, Capability, her_id, specification_id, direction)
            if before is not None:
                await _write(write, before, None)
        return write.records

    async def set_override(
        self, her_id: int, specification_id: int, effect: OverrideEffect, reason: str, actor: str,
    ) -> list[ChangeRecord]:
        self.specification(specification_id)
        if not reason.strip():
            raise InvalidInputError("an override needs a reason (--reason TEXT)")
        async with self._writing(actor) as write:
            await _require_party(write.connection, her_id)
            before = await _get(write.connection, Override, her_id, specification_id)
            after = _new(Override, her_id, specification_id=specification_id, effect=effect,
                         reason=reason.strip(), set_by=actor, set_at=write.at)
            if not after.same_content(before):
                await _write(write, before, after)
        return write.records

    async def clear_override(self, her_id: int, specification_id: int, actor: str) -> list[ChangeRecord]:
        self.specification(specification_id)
        async with self._writing(actor) as write:
            await _require_party(write.connection, her_id)
            before = await _get(write.connection, Override, her_id, specification_id)
            if before is not None:
                await _write(write, before, None)
        return write.records

    async def import_parties(self, entries: list[PartyEntry], actor: str, *, dry_run: bool = False) -> ImportResult:
        """Make the registry say what the entries say; idempotent. A dry run plans the changes and writes none."""
        resolved = [self._resolve(entry) for entry in entries]  # every name checked before anything is written
        if dry_run:
            async with self.engine.connect() as connection:
                plan = await _plan(connection, self.catalogue, resolved, actor, datetime.now(UTC))
            return ImportResult(dry_run=True, changes=[self._planned(before, after, None) for before, after in plan])
        async with self._writing(actor) as write:
            for before, after in await _plan(write.connection, self.catalogue, resolved, actor, write.at):
                await _write(write, before, after)
        return ImportResult(dry_run=False, changes=[
            self._planned(r.before, r.after, r.seq) for r in write.records
        ])

    def _resolve(self, entry: PartyEntry) -> _Resolved:
        capabilities: dict[tuple[int, Direction], CapabilityEntry] = {}
        for item in entry.capability_entries():
            direction, spec = self.catalogue.parse_capability(item.capability)
            previous = capabilities.setdefault((spec.id, direction), item)
            if previous != item:
                raise InvalidInputError(f"HER-id {entry.her_id} lists {item.capability} twice, differently")
        overrides = None
        if entry.overrides is not None:
            overrides = {self.catalogue.resolve(o.specification).id: o for o in entry.overrides}
        return _Resolved(entry, None if entry.supported is None else capabilities, overrides)

    def _planned(self, before: Entity | None, after: Entity | None, seq: int | None) -> PlannedChange:
        entity = after or before
        assert entity is not None
        summary = describe_change(self.catalogue, before, after)
        return PlannedChange(key=entity.key, her_id=entity.her_id, summary=summary, seq=seq, before=before, after=after)

    @asynccontextmanager
    async def _writing(self, actor: str) -> AsyncIterator[_Write]:
        async with self.engine.begin() as connection:
            # The first statement takes the writers' lock, before anything is read (see the module docstring).
            await connection.execute(
                sa.update(t.registry_head).where(t.registry_head.c.id == 1).values(seq=t.registry_head.c.seq)
            )
            seq = (await connection.execute(sa.select(t.registry_head.c.seq))).scalar_one()
            write = _Write(connection=connection, at=datetime.now(UTC), actor=actor, seq=seq)
            yield write
            if write.seq != seq:
                await connection.execute(sa.update(t.registry_head).values(seq=write.seq))


@dataclass(frozen=True)
class _Resolved:
    entry: PartyEntry
    capabilities: dict[tuple[int, Direction], CapabilityEntry] | None  # None: the entry does not state them
    overrides: dict[int, OverrideEntry] | None


async def _plan(
    connection: AsyncConnection, catalogue: Catalogue, resolved: list[_Resolved], actor: str, at: datetime,
) -> list[tuple[Entity | None, Entity | None]]:
    """The (before, after) pairs that make the registry match the entries, parties first."""
    plan: list[tuple[Entity | None, Entity | None]] = []
    her_ids = {r.entry.her_id for r in resolved}
    view = await _load_view(connection, catalogue, her_ids, with_parents=False)
    for item in resolved:
        entry = item.entry
        before = view.party(entry.her_id)
        base = before.model_dump(exclude={"her_id"}) if before else {}
        after = _new(Party, entry.her_id, **{**base, **entry.stated_party_fields(), "updated_by": actor,
                                             "updated_at": at})
        if not after.same_content(before):
            plan.append((before, after))
        if item.capabilities is not None:
            current = {(c.specification_id, c.direction): c for c in view.own_capabilities(entry.her_id)}
            for (spec_id, direction), wanted in item.capabilities.items():
                old = current.pop((spec_id, direction), None)
                new = _new(Capability, entry.her_id, specification_id=spec_id, direction=direction,
                           valid_from=wanted.valid_from, valid_to=wanted.valid_to,
                           registered_by=actor, registered_at=at)
                if not new.same_content(old):
                    plan.append((old, new))
            plan.extend((old, None) for old in current.values())
        if item.overrides is not None:
            existing = {o.specification_id: o for o in view.overrides(entry.her_id)}
            for spec_id, wanted_override in item.overrides.items():
                old_override = existing.pop(spec_id, None)
                new_override = _new(
                    Override, entry.her_id, specification_id=spec_id, effect=wanted_override.effect,
                    reason=wanted_override.reason, valid_from=wanted_override.valid_from,
                    valid_to=wanted_override.valid_to, set_by=actor, set_at=at,
                )
                if not new_override.same_content(old_override):
                    plan.append((old_override, new_override))
            plan.extend((old, None) for old in existing.values())
    return plan


async def _write(write: _Write, before: Entity | None, after: Entity | None) -> None:
    """Apply one change to its table and record it, with the next sequence number."""
    entity = after or before
    assert entity is not None
    table = _TABLES[type(entity)]
    if before is None:
        await write.connection.execute(sa.insert(table).values(_row(entity)))
    elif after is None:
        await write.connection.execute(sa.delete(table).where(*_identity(table, before)))
    else:
        await write.connection.execute(sa.update(table).where(*_identity(table, before)).values(_row(after)))
    write.seq += 1
    record = new_record(write.seq, write.at, write.actor, before, after)
    await write.connection.execute(sa.insert(t.changes).values(
        seq=record.seq, at=record.at, actor=record.actor, key=record.key, her_id=record.her_id,
        before=_json(before), after=_json(after),
    ))
    write.records.append(record)


async def _load_view(
    connection: AsyncConnection, catalogue: Catalogue, her_ids: set[int] | None, *, with_parents: bool = True,
) -> RegistryView:
    view = RegistryView(catalogue)

    def among(table: sa.Table, ids: set[int] | None) -> sa.Select[Any]:
        query = sa.select(table)
        return query if ids is None else query.where(table.c.her_id.in_(ids))

    parties = [_party(row) for row in await connection.execute(among(t.parties, her_ids))]
    ids = her_ids
    if ids is not None and with_parents:
        ids = ids | {p.parent_her_id for p in parties if p.parent_her_id is not None}
    for party in parties:
        view.put(party)
    for row in await connection.execute(among(t.capabilities, ids)):
        view.put(Capability.model_validate(dict(row._mapping)))
    for row in await connection.execute(among(t.overrides, ids)):
        view.put(Override.model_validate(dict(row._mapping)))
    return view


def _new(model: type[E], her_id: int, /, **fields: Any) -> E:
    """An entity made from operator input: what the model refuses becomes an error the operator can correct."""
    try:
        return model.model_validate({"her_id": her_id, **fields})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) + ': ' if e['loc'] else ''}{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise InvalidInputError(f"HER-id {her_id}: {problems}") from None


async def _get(connection: AsyncConnection, kind: type[Entity], *identity: Any) -> Any:
    table = _TABLES[kind]
    keys = [c for c in table.primary_key.columns]
    row = (await connection.execute(
        sa.select(table).where(*(column == value for column, value in zip(keys, identity, strict=True)))
    )).first()
    return None if row is None else kind.model_validate(dict(row._mapping))


async def _require_party(connection: AsyncConnection, her_id: int) -> None:
    if await _get(connection, Party, her_id) is None:
        raise UnknownPartyError(
            f"HER-id {her_id} is not a registered communication party; register it first (`kapreg import`)"
        )


def _identity(table: sa.Table, entity: Entity) -> list[sa.ColumnElement[bool]]:
    return [column == getattr(entity, column.name) for column in table.primary_key.columns]


def _row(entity: Entity) -> dict[str, Any]:
    return entity.model_dump(exclude={"entity"})


def _json(entity: Entity | None) -> dict[str, Any] | None:
    return None if entity is None else entity.model_dump(mode="json", by_alias=True)


def _party(row: sa.Row[Any]) -> Party:
    return Party.model_validate(dict(row._mapping))


def _record(row: sa.Row[Any]) -> ChangeRecord:
    return ChangeRecord.model_validate(dict(row._mapping))
