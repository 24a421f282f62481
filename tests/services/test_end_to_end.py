"""Every shared sample through the whole backbone, on the embedded bus and on real Kafka, as real traffic.

The published schemas are configured (EDI_SCHEMA_DIRS=../shared/standards) and every sender and receiver is
registered as the example party of `../shared/specs` (its 29 capabilities), as a deployment that imported its
address register would have them. For each MsgId, the first sample whose receivers all have numeric HER-ids
counts (a file holding several messages is left out: a conversation extract is not one message). The samples are
written raw to edi.inbound, as a trusted internal producer would. Then, as a user sees it:

- every sample the published schemas accept, or have no schema for, reaches every receiver's mailbox exactly
  once; under the default policy (registered) a kind the registry does not govern is delivered and recorded as
  unchecked, and the coverage report and the metric count those deliveries;
- every sample they reject is refused with T01 (not well-formed) or T02 (schema), and reaches no mailbox;
- every refused message whose sender can be answered gets exactly one negative AppRec, which validates against
  the published AppRec schema;
- under `strict`, the kinds the registry does not govern are refused with T10 instead.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from edi.core.errors import Code
from edi.core.header import RoutingHeader
from edi.core.kinds import MessageKind
from edi.events import Rejection, default_codec
from edi.kapabilitetsregister.model import InvalidHerIdError, parse_her_id
from edi.kapabilitetsregister.specifications import default_catalogue
from edi.kapabilitetsregister.view import CheckOutcome
from edi.observability import metrics
from edi.schemas.topics import INBOUND, REJECTED
from edi.services.receipts.service import receipt_id
from edi.services.store import tables as t
from edi.services.validator.admission import content_message_id
from edi.settings import ValidationSettings
from tests.services.conftest import party, running_backbone, seed_registry
from tests.shared_samples import SAMPLES, SHARED, published_verdicts

pytestmark = pytest.mark.heavy
SETTLE_TIMEOUT_S = 240.0
KAFKA_RECORD_LIMIT = 1_000_000
EXAMPLE_PARTY = json.loads((SHARED / "specs" / "example-party-capabilities.json").read_text(encoding="utf-8"))


@dataclass
class Sample:
    name: str
    data: bytes
    message_id: uuid.UUID
    header: RoutingHeader | None


@dataclass
class Expectation:
    samples: list[Sample] = field(default_factory=list)  # the ones that count, in the order sent
    deliveries: dict[tuple[uuid.UUID, str], tuple[str, str | None]] = field(default_factory=dict)  # -> kind, unchecked
    refused: dict[uuid.UUID, str] = field(default_factory=dict)  # message id -> the AppRec code it must carry
    receipts: set[tuple[uuid.UUID, str]] = field(default_factory=set)  # (refused message id, its sender)
    outcome: Counter[str] = field(default_factory=Counter)


def numeric(her_id: str | None) -> bool:
    try:
        parse_her_id(her_id)
    except InvalidHerIdError:
        return False
    return True


def answerable(header: RoutingHeader | None) -> bool:
    """Whether the receipts service can answer a refused message: a sender to send to (numeric, so the registry
    knows it), a receiver to send from, and not an AppRec itself."""
    return (header is not None and numeric(header.sender_her_id) and header.receiver is not None
            and header.receiver.her_id is not None and not header.is_apprec)


def expectations(samples: list[tuple[str, bytes]], *, strict: bool) -> tuple[Expectation, list[dict[str, Any]]]:
    """What the backbone must do with each sample, from the published schemas' verdicts (VALIDATION.md), and the
    registry: every numeric HER-id the counted samples name, registered as the example party."""
    validator = ValidationSettings().validator()
    catalogue = default_catalogue()
    verdicts = published_verdicts()
    expected = Expectation()
    her_ids: set[str] = set()
    seen_msg_ids: set[tuple[str | None, str]] = set()
    for name, data in samples:
        report = validator.validate(data)
        header = report.header
        if any(p.code == Code.SEVERAL_MESSAGES.value for p in report.problems):
            expected.outcome["left out: a file holding several messages"] += 1
            continue
        verdict = verdicts[name]
        if header is not None:
            receivers = header.receiver_her_ids
            if not receivers or not all(numeric(r) for r in receivers):
                expected.outcome["left out: a receiver without a numeric HER-id"] += 1
                continue
            key = (header.sender_her_id, header.msg_id or "")
            if key in seen_msg_ids:
                expected.outcome["left out: a later sample with the same MsgId"] += 1
                continue
            seen_msg_ids.add(key)
            her_ids.update(receivers)
            if numeric(header.sender_her_id):
                her_ids.add(header.sender_her_id or "")
        elif verdict.well_formed:
            expected.outcome["left out: no routing header, so no receiver"] += 1
            continue
        sample = Sample(name, data, content_message_id(data), header)
        expected.samples.append(sample)
        if not verdict.well_formed or verdict.envelope is False or any(part is False for part in verdict.parts):
            code = "T02" if verdict.well_formed else "T01"
            expected.refused[sample.message_id] = code
            expected.outcome[f"invalid by the published schemas: refused ({code})"] += 1
            if answerable(header):
                assert header is not None and header.sender_her_id is not None
                expected.receipts.add((sample.message_id, header.sender_her_id))
            continue
        assert header is not None
        kind = MessageKind.of(header)
        governed = catalogue.recognise(kind) is not None
        if strict and not governed:
            expected.refused[sample.message_id] = "T10"
            expected.outcome["a kind the registry does not govern: refused (T10, strict)"] += 1
            if answerable(header):
                assert header.sender_her_id is not None
                expected.receipts.add((sample.message_id, header.sender_her_id))
            continue
        unchecked = None if governed else CheckOutcome.UNCHECKED_NOT_GOVERNED.value
        for receiver in header.receiver_her_ids:
            expected.deliveries[(sample.message_id, receiver)] = (kind.name, unchecked)
        schema = "valid" if verdict.all_parts_have_schema else "no schema for some part"
        expected.outcome[f"{schema} by the published schemas, "
                         f"{'governed: delivered, checked' if governed else 'not governed: delivered unchecked'}"] += 1
    registry = [party(her_id, *EXAMPLE_PARTY["supported"]) for her_id in sorted(her_ids, key=int)]
    return expected, registry


def unchecked_counts() -> Counter[tuple[str, str]]:
    """edi_deliveries_unchecked_total by (reason, kind)."""
    return Counter({(s.labels["reason"], s.labels["kind"]): int(s.value) for m in metrics.DELIVERIES_UNCHECKED.collect()
                    for s in m.samples if s.name.endswith("_total")})


@pytest.mark.parametrize("policy", ["registered", "strict"])
async def test_every_shared_sample_gets_the_published_verdict(
    installation: dict[str, str], bus_kind: str, policy: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDI_CAPABILITY_POLICY", policy)
    samples = [(str(path.relative_to(SAMPLES)), path.read_bytes()) for path in sorted(SAMPLES.rglob("*.xml"))]
    if bus_kind == "kafka":
        # A Kafka record holds at most 1 MB (the broker's default message.max.bytes): larger documents travel by
        # claim check through the blob store, not inline on the topics.
        too_large = [name for name, data in samples if len(data) > KAFKA_RECORD_LIMIT]
        samples = [(name, data) for name, data in samples if len(data) <= KAFKA_RECORD_LIMIT]
        print(f"\nleft out on Kafka, larger than a record may be: {too_large}")
    expected, registry = expectations(samples, strict=policy == "strict")
    await seed_registry(registry)
    codec = default_codec()
    unchecked_before = unchecked_counts()
    async with running_backbone() as (backbone, parts):
        bus = await parts.bus()
        watcher = await bus.subscribe(f"test-rejections-{uuid.uuid4().hex[:8]}", [REJECTED])
        for sample in expected.samples:
            key = sample.header.sender_her_id or sample.header.msg_id if sample.header else None
            await bus.produce(INBOUND, sample.data, key=key.encode() if key else None)

        refusals: dict[uuid.UUID, set[str]] = defaultdict(set)
        store = await parts.store()

        async def mailbox() -> dict[tuple[uuid.UUID, str], tuple[str | None, str | None]]:
            m = t.mailbox.c
            async with store.engine.connect() as connection:
                rows = list(await connection.execute(
                    sa.select(m.message_id, m.receiver_her_id, m.kind, m.unchecked_reason)))
            assert len(rows) == len({(r.message_id, r.receiver_her_id) for r in rows}), "a message arrived twice"
            return {(r.message_id, r.receiver_her_id): (r.kind, r.unchecked_reason) for r in rows}

        def take(records: list[Any]) -> None:
            for record in records:
                rejection = codec.decode(record.value, Rejection)
                refusals[rejection.message_id].update(e.apprec_code for e in rejection.errors)

        wanted = len(expected.deliveries) + len(expected.receipts)
        deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
        while asyncio.get_running_loop().time() < deadline:
            take(await watcher.poll(max_records=500, timeout_s=0.2))
            if len(await mailbox()) >= wanted and set(expected.refused) <= set(refusals):
                break
        await asyncio.sleep(1.0)  # anything more that was going to come would come now
        take(await watcher.poll(max_records=500, timeout_s=0.5))
        await watcher.close()
        rows = await mailbox()
        receipts = {(receipt_id(message_id), sender) for message_id, sender in expected.receipts}
        delivered = {key: value for key, value in rows.items() if key not in receipts}

        unchecked = sum(1 for _, reason in expected.deliveries.values() if reason)
        print(f"\n{bus_kind} bus, policy {policy}: {len(samples)} samples, {len(expected.samples)} counted")
        for outcome, count in sorted(expected.outcome.items()):
            print(f"  {count:4d}  {outcome}")
        print(f"  deliveries: {len(delivered)} of {len(expected.deliveries)} expected ({unchecked} unchecked); "
              f"negative AppRecs: {len(rows) - len(delivered)} of {len(receipts)}; "
              f"refused: {len(set(expected.refused) & set(refusals))} of {len(expected.refused)}")

        # Every accepted sample reached every receiver, once, named by its kind and recorded as checked or not.
        assert delivered == expected.deliveries
        # Every rejected sample was refused with its code, and nothing else was refused (but the negative AppRecs
        # the router cannot deliver: to a sender the registry does not know).
        missing = {m: code for m, code in expected.refused.items() if code not in refusals.get(m, set())}
        assert not missing, f"{len(missing)} refusals lack their code: {missing}"
        undeliverable = {receipt_id(m) for m in expected.refused}
        assert not set(refusals) - set(expected.refused) - undeliverable, "a message was refused that should not be"
        assert set(rows) - set(delivered) == receipts
        published = ValidationSettings().validator()
        for apprec_id, sender in sorted(receipts):
            document = await backbone.business_document(apprec_id, sender)
            assert document is not None
            report = published.validate(document)
            assert report.valid is True, (apprec_id, report.problems)

        # The coverage report lists exactly the unchecked pairs of this run, and the metric counts them.
        coverage = await store.coverage()
        pairs = Counter((receiver, kind) for (_, receiver), (kind, reason) in expected.deliveries.items() if reason)
        assert {(e.receiver_her_id, e.kind): e.count for e in coverage} == dict(pairs)
        # By kind, each a name from the project's code lists: the same kinds the mailbox recorded.
        by_kind = Counter(("not_governed", kind) for kind, reason in expected.deliveries.values() if reason)
        assert unchecked_counts() - unchecked_before == by_kind
        print(f"  coverage: {len(coverage)} (receiver, kind) pairs delivered unchecked; "
              f"edi_deliveries_unchecked_total +{unchecked}")
