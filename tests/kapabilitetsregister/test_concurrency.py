"""Two operators granting and revoking at the same time: no change is lost, and the history shows both."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from edi.kapabilitetsregister.import_export import PartyEntry
from edi.kapabilitetsregister.model import Direction
from edi.kapabilitetsregister.store import RegistryStore
from edi.kapabilitetsregister.view import RegistryView
from tests.kapabilitetsregister.conftest import Kapreg

HER_ID = 700001


async def _operator(store: RegistryStore, name: str, specs: list[int]) -> None:
    for spec in specs:
        await store.grant(HER_ID, spec, Direction.CONSUME, name)
        await store.grant(HER_ID, 20, Direction.PRODUCE, name)  # both want the same capability
    for spec in specs[::2]:
        await store.revoke(HER_ID, spec, Direction.CONSUME, name)


async def test_two_concurrent_sessions_lose_no_change(kapreg: Kapreg) -> None:
    setup = await RegistryStore.open(kapreg.database_url)
    await setup.import_parties([PartyEntry(her_id=HER_ID, name="Felles legekontor")], "setup")
    alice = await RegistryStore.open(kapreg.database_url)
    bob = await RegistryStore.open(kapreg.database_url)
    alice_specs, bob_specs = list(range(1, 14)), list(range(14, 28))
    try:
        await asyncio.gather(_operator(alice, "alice", alice_specs), _operator(bob, "bob", bob_specs))
        view = await setup.load_view()
        records = await setup.changes()
    finally:
        for store in (setup, alice, bob):
            await store.close()

    expected = {(s, Direction.CONSUME) for s in alice_specs[1::2] + bob_specs[1::2]} | {(20, Direction.PRODUCE)}
    assert {(c.specification_id, c.direction) for c in view.own_capabilities(HER_ID)} == expected
    # Every change has its own sequence number, gap-free, in commit order; the shared grant was made once.
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    by_actor = {name: [r for r in records if r.actor == name] for name in ("alice", "bob")}
    assert len(by_actor["alice"]) + len(by_actor["bob"]) == 13 + 7 + 14 + 7 + 1
    assert len(by_actor["alice"]) >= 20 and len(by_actor["bob"]) >= 21
    replayed = RegistryView(view.catalogue)
    replayed.apply_all(records)
    assert list(replayed.entities()) == list(view.entities())

    history = await asyncio.to_thread(kapreg.ok, "history", str(HER_ID))  # the CLI runs its own event loop
    assert "alice" in history and "bob" in history


_WORKER = textwrap.dedent("""
    import asyncio, pathlib, sys, time
    from edi.kapabilitetsregister.model import Direction
    from edi.kapabilitetsregister.store import RegistryStore

    async def main(url, name, first, go):
        store = await RegistryStore.open(url)
        while not pathlib.Path(go).exists():  # start together
            time.sleep(0.01)
        specs = range(first, first + 10)
        for spec in specs:
            await store.grant(700001, spec, Direction.PRODUCE, name)
        for spec in list(specs)[:5]:
            await store.revoke(700001, spec, Direction.PRODUCE, name)
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
""")


def test_two_operator_processes_lose_no_change(kapreg: Kapreg, tmp_path: Path) -> None:
    kapreg.ok("import", _party_file(tmp_path))
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, kapreg.database_url, name, str(first), str(go)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, first in (("carol", 1), ("dave", 11))
    ]
    time.sleep(0.5)
    go.touch()
    for worker in workers:
        _, errors = worker.communicate(timeout=300)
        assert worker.returncode == 0, errors

    details = kapreg.json("parties", "show", str(HER_ID))
    assert sorted(c["specificationId"] for c in details["capabilities"]) == [*range(6, 11), *range(16, 21)]
    history = kapreg.json("history", str(HER_ID))
    assert [h["seq"] for h in history] == list(range(1, 32))
    assert sum(h["actor"] == "carol" for h in history) == 15 and sum(h["actor"] == "dave" for h in history) == 15
    table = kapreg.ok("history", str(HER_ID))
    assert "carol" in table and "dave" in table


def _party_file(tmp_path: Path) -> Path:
    path = tmp_path / "party.json"
    path.write_text(f'{{"herId": {HER_ID}, "name": "Felles legekontor"}}', encoding="utf-8")
    return path
