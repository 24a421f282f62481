"""Validation throughput: the project's full path against a bare lxml parse-and-validate loop, same bytes, same run.

The inputs are real shared samples, padded in a free-text element to exactly 8 KB (a dialogmelding in MsgHead)
and 20 KB (a standalone Svarrapport 1.3). The bare loop does the least lxml work that yields the same verdict:
parse, validate the envelope with Content's children lifted out, validate the business document. (It takes the
schemas from the project's catalog, whose MsgHead schema skips Content; with Content emptied that is the published
schema's work exactly.) The project's path is Validator.validate as the services call it: it also finds and reads
the routing header into its pydantic model, applies the business rules and builds the report.
Run: `uv run python bench/validate.py` (BENCH_SECONDS, BENCH_ROUNDS to change how long).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from lxml import etree

from edi.core.catalog import SchemaCatalog
from edi.core.extract import MSGHEAD_TAG, content_parts, namespace_of
from edi.core.validation import Validator

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DIALOG = (SHARED / "samples/dialogmelding/ks-no-fiks-nhn-client/dialogmelding/1.0/foresporsel-og-svar"
          / "dialog-notat-webmed-test.xml")
SVAR = SHARED / "samples/svarrapport/sarepta-test/svarrapport/Testcase-patologisvar-2011-12-05/Case-2.xml"
SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SLICE = 20


def padded(path: Path, closing_tag: bytes, size: int) -> bytes:
    """The sample with filler text before the first `closing_tag`, to exactly `size` bytes."""
    data = path.read_bytes()
    at = data.index(closing_tag)
    filler = b" Lorem ipsum dolor sit amet." * (size // 28 + 1)
    result = data[:at] + filler[: size - len(data)] + data[at:]
    assert len(result) == size, (len(result), size)
    return result


def bare_loop(catalog: SchemaCatalog, data: bytes) -> Callable[[], bool]:
    """Parse and validate with lxml directly, the way VALIDATION.md computes the published verdict: the envelope
    with Content's children lifted out, then each business document."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    schemas = {namespace_of(e): catalog.schema_for(namespace_of(e)) for e in [root, *_inner(root)]}

    def once() -> bool:
        parsed = etree.fromstring(data, parser)
        inner = _inner(parsed)
        holders = [(e.getparent(), e) for e in inner]
        for holder, element in holders:
            holder.remove(element)
        valid = bool(schemas[namespace_of(parsed)].validate(parsed))  # type: ignore[union-attr]
        for holder, element in holders:
            holder.append(element)
        return valid and all(schemas[namespace_of(e)].validate(e) for e in inner)  # type: ignore[union-attr]

    assert once(), "the bare loop must reach the same verdict (valid) as the project"
    return once


def _inner(root: etree._Element) -> list[etree._Element]:
    return [element for _, element in content_parts(root)] if root.tag == MSGHEAD_TAG else []


def rates(first: Callable[[], object], second: Callable[[], object]) -> tuple[float, float]:
    """Both functions' calls per second over SECONDS, alternating in short slices so that both see the same
    machine (the machine is shared: a ratio of two runs taken one after the other says little)."""
    spent = [0.0, 0.0]
    count, deadline = 0, time.perf_counter() + SECONDS
    while time.perf_counter() < deadline:
        for which, fn in enumerate((first, second)):
            start = time.perf_counter()
            for _ in range(SLICE):
                fn()
            spent[which] += time.perf_counter() - start
        count += SLICE
    return count / spent[0], count / spent[1]


def threaded_rates(validator: Validator, data: bytes, workers: int) -> tuple[float, float]:
    """Messages per second with a pool of `workers` threads, and with one thread measured alongside it (rounds
    alternate) so that the pool's gain is read against the same machine. lxml releases the GIL while it parses
    and validates; the rest of the path (reading the header, pydantic, the rules) holds it, which bounds the gain."""
    per_worker = 1000

    def work(count: int) -> int:
        return sum(validator.validate(data).valid is True for _ in range(count))

    with ThreadPoolExecutor(max_workers=workers) as pool, ThreadPoolExecutor(max_workers=1) as single:
        list(pool.map(work, [50] * workers))  # warm every thread's parser
        single.submit(work, 50).result()
        best_pool = best_single = 0.0
        for _ in range(ROUNDS):
            start = time.perf_counter()
            done = sum(pool.map(work, [per_worker] * workers))
            best_pool = max(best_pool, done / (time.perf_counter() - start))
            start = time.perf_counter()
            done = single.submit(work, per_worker * workers).result()
            best_single = max(best_single, done / (time.perf_counter() - start))
    return best_pool, best_single


def main() -> None:
    if not SHARED.is_dir():
        sys.exit(f"needs the shared samples and schemas at {SHARED}")
    catalog = SchemaCatalog([SHARED / "standards"])
    validator = Validator(catalog)
    inputs = {"8k": padded(DIALOG, b"</TekstNotatInnhold>", 8192), "20k": padded(SVAR, b"</TextResultValue>", 20480)}
    figures: dict[str, float] = {}
    for name, data in inputs.items():
        report = validator.validate(data)
        assert report.valid is True, [p.message for p in report.errors]
        bare = bare_loop(catalog, data)
        rounds = [rates(partial(validator.validate, data), bare) for _ in range(ROUNDS)]
        ours, bare_rate = max(rounds, key=lambda pair: pair[1])  # the round the machine disturbed least
        ratios = [o / b for o, b in rounds]
        figures[f"validate_{name}_per_s"] = round(ours)
        figures[f"bare_{name}_per_s"] = round(bare_rate)
        figures[f"ratio_{name}"] = round(ours / bare_rate, 3)
        print(f"{name:>4}: project {ours:8.0f}/s   bare lxml {bare_rate:8.0f}/s   ratio {ours / bare_rate:.2f} "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f})")
    workers = len(os.sched_getaffinity(0))  # the CPUs this process may run on, not the machine's count
    pool_rate, single_rate = threaded_rates(validator, inputs["8k"], workers)
    figures["threads_8k_per_s"] = round(pool_rate)
    print(f"  8k: project with a pool of {workers} threads {pool_rate:.0f}/s, {pool_rate / single_rate:.2f}x one "
          f"thread measured alongside ({single_rate:.0f}/s)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
