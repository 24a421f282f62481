"""Replaying the change records from an empty view reproduces exactly the store's answers (property-based)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edi.kapabilitetsregister.import_export import PartyEntry
from edi.kapabilitetsregister.model import Direction, OverrideEffect, PartyKind, UnknownPartyError
from edi.kapabilitetsregister.store import RegistryStore
from edi.kapabilitetsregister.view import CapabilityPolicy, RegistryView

HER_IDS = [1001, 1002, 1003, 1004]
UNKNOWN_HER_ID = 9999
SPECS = [12, 16, 19, 20]  # Dialogmelding 1.0 and 1.1, AppRec 1.0 and 1.1: other versions of each other
T = [datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)]
CHECK_TIMES = [
    datetime(2024, 6, 1, tzinfo=UTC), T[1], datetime(2026, 6, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC),
]
PERIODS: list[tuple[datetime | None, datetime | None]] = [(None, None), (T[1], None), (None, T[1]), (T[0], T[2])]

her_ids = st.sampled_from(HER_IDS)
specs = st.sampled_from(SPECS)
directions = st.sampled_from(list(Direction))
periods = st.sampled_from(PERIODS)

operations = st.one_of(
    st.tuples(st.just("party"), her_ids, st.booleans(), periods, st.none() | her_ids,
              st.sampled_from(list(PartyKind))),
    st.tuples(st.just("grant"), her_ids, specs, directions, periods),
    st.tuples(st.just("revoke"), her_ids, specs, directions),
    st.tuples(st.just("override"), her_ids, specs, st.sampled_from(list(OverrideEffect))),
    st.tuples(st.just("clear"), her_ids, specs),
    st.tuples(st.just("import"), her_ids, st.lists(st.tuples(specs, directions), max_size=4)),
)


async def _apply(store: RegistryStore, operation: tuple[Any, ...]) -> None:
    kind, her_id, *rest = operation
    actor = f"op-{kind}"
    if kind == "party":
        active, (start, end), parent, party_kind = rest
        entry = PartyEntry(her_id=her_id, active=active, valid_from=start, valid_to=end,
                           parent_her_id=None if parent == her_id else parent, kind=party_kind)
        await store.import_parties([entry], actor)
    elif kind == "grant":
        spec, direction, (start, end) = rest
        await store.grant(her_id, spec, direction, actor, start, end)
    elif kind == "revoke":
        await store.revoke(her_id, rest[0], rest[1], actor)
    elif kind == "override":
        await store.set_override(her_id, rest[0], rest[1], f"reason {rest[1]}", actor)
    elif kind == "clear":
        await store.clear_override(her_id, rest[0], actor)
    else:
        supported = [f"{direction.value}{store.specification(spec).capability_name}" for spec, direction in rest[0]]
        await store.import_parties([PartyEntry(her_id=her_id, supported=supported)], actor)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """Makes a fresh, migrated database per example (SQLite: a copy of a migrated template file)."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        return lambda: str(server.create_database())
    directory = tmp_path_factory.mktemp("replay")
    template = directory / "template.db"
    with ThreadPoolExecutor(1) as thread:  # its own event loop: the session's may be running
        thread.submit(asyncio.run, _migrate(f"sqlite+aiosqlite:///{template}")).result()

    def copy() -> str:
        target = directory / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(template, target)
        return f"sqlite+aiosqlite:///{target}"

    return copy


async def _migrate(url: str) -> None:
    store = await RegistryStore.open(url)
    await store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(operations, max_size=25))
async def test_replayed_view_answers_every_check_as_the_store(
    new_database: Callable[[], str], history: list[tuple[Any, ...]],
) -> None:
    store = await RegistryStore.open(new_database())
    try:
        for operation in history:
            with contextlib.suppress(UnknownPartyError):  # a grant to a party not yet registered changes nothing
                await _apply(store, operation)
        records = await store.changes()
        replayed = RegistryView(store.catalogue)
        replayed.apply_all(records)
        tables = await store.load_view()
        assert list(replayed.entities()) == list(tables.entities())

        # A compacted topic keeps only each key's latest record: that alone rebuilds the same view.
        latest = {record.key: record for record in records}
        compacted = RegistryView(store.catalogue)
        compacted.apply_all(sorted(latest.values(), key=lambda r: r.seq))
        assert list(compacted.entities()) == list(tables.entities())

        for policy in CapabilityPolicy:
            store.policy = policy
            for her_id in [*HER_IDS, UNKNOWN_HER_ID]:
                for spec_id in SPECS:
                    spec = store.specification(spec_id)
                    for at in CHECK_TIMES:
                        answer = await store.check(her_id, spec_id, at, sender=her_id)
                        assert answer.receiver == replayed.check_with_policy(
                            her_id, spec, Direction.CONSUME, at, policy)
                        assert answer.sender == replayed.check_with_policy(
                            her_id, spec, Direction.PRODUCE, at, policy)
    finally:
        await store.close()
