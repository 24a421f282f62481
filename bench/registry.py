"""Cached capability checks: the in-memory view a router keeps, answering without touching the database.

The view is built the way a router builds it, by replaying change records: 30,000 parties (two organisations for
each service, as in AR), organisations with a random part of the example party's 29 capabilities, services
inheriting them, a few operator overrides. The checks are a fixed random mix of receivers (own capabilities,
inherited ones, unknown HER-ids) and specifications, so allowed and every kind of refusal are all measured.
One thread, one core. Run: `uv run python bench/registry.py` (BENCH_SECONDS, BENCH_ROUNDS to change the length).
Ends with one JSON line: {"checks_per_s": ...}.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections import Counter
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
from edi.kapabilitetsregister.specifications import Specification, default_catalogue
from edi.kapabilitetsregister.view import RegistryView

PARTIES = int(os.environ.get("BENCH_PARTIES", "30000"))
CHECKS = 100_000
SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
FIRST_HER_ID = 100_000
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def change_records(rng: random.Random) -> list[ChangeRecord]:
    catalogue = default_catalogue()
    specs = list(catalogue)
    records: list[ChangeRecord] = []

    def emit(entity: Party | Capability | Override) -> None:
        records.append(new_record(len(records) + 1, NOW, "bench", None, entity))

    organisation = FIRST_HER_ID
    for her_id in range(FIRST_HER_ID, FIRST_HER_ID + PARTIES):
        is_service = her_id % 3 == 2
        if not is_service:
            organisation = her_id
        kind = PartyKind.SERVICE if is_service else PartyKind.ORGANISATION
        emit(Party(her_id=her_id, name=f"Party {her_id}", kind=kind, parent_her_id=organisation if is_service else None,
                   updated_by="bench", updated_at=NOW))
        if is_service:
            continue
        for spec in rng.sample(specs, rng.randint(5, len(specs))):
            emit(Capability(her_id=her_id, specification_id=spec.id, direction=Direction.CONSUME,
                            registered_by="bench", registered_at=NOW))
        if rng.random() < 0.01:
            emit(Override(her_id=her_id, specification_id=rng.choice(specs).id, effect=OverrideEffect.DENY,
                          reason="bench", set_by="bench", set_at=NOW))
    return records


def queries(rng: random.Random) -> list[tuple[int, Specification, Direction, datetime]]:
    specs = list(default_catalogue())
    end = FIRST_HER_ID + PARTIES + PARTIES // 50  # ~2% of the receivers are unknown HER-ids
    her_ids = [rng.randrange(FIRST_HER_ID, end) for _ in range(CHECKS)]
    return [(her_id, rng.choice(specs), Direction.CONSUME, NOW) for her_id in her_ids]


def checks_per_second(view: RegistryView, work: list[tuple[int, Specification, Direction, datetime]]) -> float:
    check = view.check
    count, start = 0, time.perf_counter()
    deadline = start + SECONDS
    while time.perf_counter() < deadline:
        for her_id, spec, direction, at in work:
            check(her_id, spec, direction, at)
        count += len(work)
    return count / (time.perf_counter() - start)


def main() -> None:
    rng = random.Random(2026)
    records = change_records(rng)
    view = RegistryView(default_catalogue())
    started = time.perf_counter()
    view.apply_all(records)
    rebuild = time.perf_counter() - started
    print(f"view rebuilt from {len(records):,} change records ({PARTIES:,} parties) in {rebuild:.2f} s "
          f"({len(records) / rebuild:,.0f} records/s)")

    work = queries(rng)
    outcomes = Counter(view.check(*query).outcome.value for query in work)
    print("check mix: " + ", ".join(f"{name} {count / len(work):.0%}" for name, count in outcomes.most_common()))
    rates = [checks_per_second(view, work) for _ in range(ROUNDS)]
    median = statistics.median(rates)
    print(f"cached checks, one thread: median {median:,.0f}/s over {ROUNDS} rounds of {SECONDS:g} s "
          f"(min {min(rates):,.0f}, max {max(rates):,.0f}); {1e6 / median:.2f} µs per check")
    allowed = [q for q in work if view.check(*q).allowed]
    allowed_rate = statistics.median(checks_per_second(view, allowed) for _ in range(ROUNDS))
    print(f"allowed checks only: {allowed_rate:,.0f}/s; {1e6 / allowed_rate:.2f} µs per check")
    print(json.dumps({"checks_per_s": round(median)}))


if __name__ == "__main__":
    main()
