"""Every shared sample through the backbone with JSON logs at DEBUG: no line carries a national identity number
from the samples, nor any of their free text (notes, names, addresses, results).

The samples go in as the end-to-end test sends them (raw on edi.inbound, the registry knowing every receiver), so
every path is taken: accepted and delivered, refused by the validator (T01, T02, E10) or the router (E21, T10), and
answered with a negative AppRec; one more goes through the API's submit and is read.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import structlog

from edi.core.national_id import is_valid_national_id
from edi.observability.logging import configure_logging
from edi.schemas.topics import INBOUND
from edi.services.store import tables as t
from edi.settings import ValidationSettings
from tests.services.conftest import eventually, running_backbone, seed_registry
from tests.services.documents import RECEIVER, dialog
from tests.services.test_end_to_end import expectations
from tests.shared_samples import SAMPLES

pytestmark = pytest.mark.heavy
# A patient's national identity number in a note, in a dialogmelding sent through the API.
API_ID = "13116900216"
API_NOTE = f" Pasient {API_ID[:6]} {API_ID[6:]} har vondt i ryggen, fnr {API_ID}."
SETTLE_TIMEOUT_S = 240.0
_ELEVEN_DIGITS = re.compile(rb"(?<!\d)\d{11}(?!\d)")
# Free text between tags: a dozen characters with at least two words in it (ids, codes and dates are not free text;
# MsgIds and HER-ids are logged on purpose, as correlation keys).
_FREE_TEXT = re.compile(rb">([^<>]{12,})<")


@pytest.fixture
def json_logs_at_debug() -> Iterator[io.StringIO]:
    """What the process logs, as `edi run` logs it (JSON lines), at DEBUG, libraries included."""
    logged = io.StringIO()
    configure_logging(format="json", level="DEBUG", service="test", stream=logged)
    yield logged
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = []
    logging.getLogger().setLevel(logging.WARNING)


def national_ids(data: bytes) -> set[str]:
    return {n.decode() for n in _ELEVEN_DIGITS.findall(data) if is_valid_national_id(n.decode())}


def free_text(data: bytes) -> set[str]:
    found = set()
    for raw in _FREE_TEXT.findall(data):
        text = " ".join(raw.decode("utf-8", errors="ignore").split())
        if len(text) >= 12 and len([w for w in text.split() if re.fullmatch(r"[^\W\d_]{2,}[.,:;]?", w)]) >= 2:
            found.add(text)
    return found


@pytest.mark.parametrize("bus_kind", ["embedded"])
async def test_no_log_line_of_a_run_of_every_shared_sample_carries_a_payload_or_a_national_id(
    installation: dict[str, str], json_logs_at_debug: io.StringIO,
) -> None:
    samples = [(str(path.relative_to(SAMPLES)), path.read_bytes()) for path in sorted(SAMPLES.rglob("*.xml"))]
    expected, registry = expectations(samples, strict=False)
    await seed_registry(registry)
    submitted = dialog(note=API_NOTE)
    ids = set().union(*(national_ids(data) for _, data in [*samples, ("api", submitted)]))
    texts = set().union(*(free_text(data) for _, data in [*samples, ("api", submitted)]))
    assert API_ID in ids and any(API_ID[:6] in text for text in texts)
    assert len(ids) >= 10 and len(texts) >= 100, "the samples should hold identity numbers and free text to look for"

    async with running_backbone() as (backbone, parts):
        through_api = await backbone.submit(submitted, allowed_sender_her_ids=None)
        bus = await parts.bus()
        validator = ValidationSettings().validator()
        for _, data in samples:
            header = validator.validate(data).header
            key = header.sender_her_id or header.msg_id if header else None
            await bus.produce(INBOUND, data, key=key.encode() if key else None)
        store = await parts.store()
        wanted = len(expected.deliveries) + len(expected.receipts)
        deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
        while asyncio.get_running_loop().time() < deadline:
            async with store.engine.connect() as connection:
                rows = (await connection.execute(sa.select(sa.func.count()).select_from(t.mailbox))).scalar_one()
            if rows >= wanted:
                break
            await asyncio.sleep(0.5)
        assert rows >= wanted, f"{rows} of {wanted} mailbox rows within {SETTLE_TIMEOUT_S:.0f}s"
        assert await eventually(lambda: backbone.unread([RECEIVER], msg_id=None, limit=1000))
        assert await backbone.mark_read(through_api.message_id, RECEIVER)
        await asyncio.sleep(1.0)  # the last hops (status, notifications) log too

    logged = json_logs_at_debug.getvalue()
    lines = [line for line in logged.splitlines() if line.startswith("{")]
    assert len(lines) > len(samples), "the run should have logged (JSON lines at DEBUG)"
    assert '"event": "message accepted"' in logged, "the project's own lines should be among them"
    for line in lines:
        json.loads(line)
    leaked_ids = sorted(n for n in ids if n in logged)
    leaked_texts = sorted(text for text in texts if text in logged)
    print(f"\n{len(samples)} samples, {len(lines)} log lines scanned for {len(ids)} national identity numbers and "
          f"{len(texts)} free-text fragments")
    assert not leaked_ids, f"national identity numbers in the logs: {leaked_ids[:5]}"
    assert not leaked_texts, f"{len(leaked_texts)} payload fragments in the logs, e.g. {leaked_texts[:5]}"
