"""Business documents for the API tests: a real dialogmelding (KS's fiks-nhn-client sample), re-addressed."""

from __future__ import annotations

import uuid

from tests.shared_samples import SAMPLES

DIALOGMELDING = (
    SAMPLES / "dialogmelding/ks-no-fiks-nhn-client/dialogmelding/1.0/foresporsel-og-svar/dialog-notat-webmed-test.xml"
)
_TEXT = DIALOGMELDING.read_text(encoding="utf-8")
SAMPLE_SENDER = "8143025"  # the sending physician (under WebMed Feature PPS, 8142952)
SAMPLE_RECEIVER = "8143060"  # SvarUt meldingsformidler (under KS-Digitale Fellestjenester, 8142987)
SAMPLE_MSG_ID = "a748bb20-4e0f-4922-9b06-ec2c101eb9c1"
SAMPLE_GEN_DATE = "2025-06-10T10:55:20+03:00"


def dialogmelding(
    sender: int | str = SAMPLE_SENDER, receiver: int | str = SAMPLE_RECEIVER, *, msg_id: str | None = None,
    gen_date: str | None = None, pad_to: int | None = None,
) -> bytes:
    """The sample from `sender` to `receiver` with its own MsgId (a fresh one unless given); `pad_to` grows it
    to about that many bytes with an XML comment (for the benchmark's 8 KB documents)."""
    text = (
        _TEXT.replace(SAMPLE_SENDER, str(sender)).replace(SAMPLE_RECEIVER, str(receiver))
        .replace(SAMPLE_MSG_ID, msg_id or str(uuid.uuid4()))
    )
    if gen_date is not None:
        text = text.replace(SAMPLE_GEN_DATE, gen_date)
    if pad_to is not None and len(text) < pad_to:
        text = text.replace("<MsgInfo>", f"<!--{'x' * (pad_to - len(text) - 7)}--><MsgInfo>", 1)
    return text.encode("utf-8")
