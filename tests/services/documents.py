"""Test documents made from shared samples: a dialogmelding with the MsgId, sender, receiver and note a test
needs, and an epikrise with a copy receiver."""

from __future__ import annotations

import uuid

from tests.shared_samples import SAMPLES

_DIALOG_DIR = SAMPLES / "dialogmelding/ks-no-fiks-nhn-client/dialogmelding/1.0/foresporsel-og-svar"
DIALOG = _DIALOG_DIR / "dialog-notat-webmed-test.xml"
EPIKRISE = SAMPLES / "epikrise/sarepta-eksempel/Epikrise/Epikrise_v1-2/epikrise_v1.2_c.xml"
# The dialogmelding's parties and specification (Dialogmelding 1.0, DIALOG_NOTAT).
SENDER, RECEIVER = "8143025", "8143060"
DIALOG_SPEC = "ConsumeDialogmeldingForesporselSvar1.0"
# The epikrise's sender, receiver and copy receiver.
EPIKRISE_SENDER, EPIKRISE_RECEIVER, EPIKRISE_COPY = "94866", "91439", "95136"
EPIKRISE_SPEC = "ConsumeEpikrise1.2"

_DIALOG = DIALOG.read_bytes()
_MSG_ID = b"a748bb20-4e0f-4922-9b06-ec2c101eb9c1"
_NOTE = b"Innkommende melding vises OK."


def dialog(msg_id: str | None = None, *, sender: str = SENDER, receiver: str = RECEIVER, note: str = "",
           size: int | None = None) -> bytes:
    """The dialogmelding with a new MsgId (or the one given), other parties, an extra note, and padded in the
    note to exactly `size` bytes if asked."""
    data = (_DIALOG.replace(_MSG_ID, (msg_id or str(uuid.uuid4())).encode())
            .replace(f"<Id>{SENDER}</Id>".encode(), f"<Id>{sender}</Id>".encode())
            .replace(f"<Id>{RECEIVER}</Id>".encode(), f"<Id>{receiver}</Id>".encode())
            .replace(_NOTE, _NOTE + note.encode()))
    if size is not None:
        filler = b" Lorem ipsum dolor sit amet." * (size // 28 + 1)
        data = data.replace(_NOTE, _NOTE + filler[: size - len(data)])
        assert len(data) == size, (len(data), size)
    return data


def epikrise() -> bytes:
    return EPIKRISE.read_bytes()
