"""Record headers: the correlation ids that follow a message through every hop, W3C trace context, and what
the runtime adds to a dead letter.

Correlation travels in headers, not in the event bodies, so that every record (raw envelopes on edi.inbound
included) carries it the same way and logs and traces can pick it up without decoding a payload.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, replace

from edi.adapters.bus.port import Headers

MESSAGE_ID = "edi-message-id"  # the backbone's own id of a message, assigned at ingress
MSG_ID = "edi-msg-id"  # MsgHead MsgId as the sender set it
SENDER_HER_ID = "edi-sender-her-id"
RECEIVER_HER_ID = "edi-receiver-her-id"
REQUEST_ID = "edi-request-id"  # the HTTP request that brought the message in
TRACEPARENT = "traceparent"  # W3C Trace Context, https://www.w3.org/TR/trace-context/

# Added to a record moved to a dead-letter topic (the original's headers are kept alongside).
DLQ_REASON = "edi-dlq-reason"
DLQ_ATTEMPTS = "edi-dlq-attempts"
DLQ_SERVICE = "edi-dlq-service"
DLQ_TOPIC = "edi-dlq-original-topic"
DLQ_PARTITION = "edi-dlq-original-partition"
DLQ_OFFSET = "edi-dlq-original-offset"
DLQ_PREFIX = "edi-dlq-"  # every header above; a re-drive leaves them off
# Added to a record an operator re-drives from a dead-letter topic: where it was (`<service>@<offset>`).
REDRIVEN_FROM = "edi-redriven-from"

_TRACEPARENT = re.compile(r"00-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})")
_SAMPLED = "01"
_INVALID_TRACE_ID, _INVALID_SPAN_ID = "0" * 32, "0" * 16  # all zeros: invalid, by the W3C recommendation


def new_traceparent() -> str:
    """The start of a new trace (sampled)."""
    return f"00-{_random_id(128)}-{_random_id(64)}-{_SAMPLED}"


_IDS = random.Random()  # its own: a test or library that seeds the global generator must not repeat our ids
os.register_at_fork(after_in_child=_IDS.seed)


def _random_id(bits: int) -> str:
    # Trace and span ids need to be unique, not secret: the fast generator, as OpenTelemetry's SDK uses (the
    # system's, for every record of every service, costs a system call each). Never all zeros, which is invalid.
    return f"{_IDS.getrandbits(bits) or 1:0{bits // 4}x}"


def child_traceparent(parent: str | None) -> str:
    """A new span in the parent's trace, or a new trace when there is no valid parent."""
    match = _TRACEPARENT.fullmatch(parent or "")
    if match is None:
        return new_traceparent()
    trace, span, flags = match.groups()
    if trace == _INVALID_TRACE_ID or span == _INVALID_SPAN_ID:
        return new_traceparent()
    return f"00-{trace}-{_random_id(64)}-{flags}"


def header(headers: Headers, name: str) -> bytes | None:
    """The last value of header `name` (Kafka allows repeats; the last one wins), or None."""
    for key, value in reversed(headers):
        if key == name:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Correlation:
    """The ids that tie records, logs and traces of one message together."""

    message_id: str | None = None
    msg_id: str | None = None
    sender_her_id: str | None = None
    receiver_her_id: str | None = None
    request_id: str | None = None
    traceparent: str | None = None

    @classmethod
    def from_headers(cls, headers: Headers) -> Correlation:
        present = dict(headers)  # one pass; of repeated headers the last one wins, as in `header`
        values = {}
        for name, header_name in _HEADER_NAMES.items():
            raw = present.get(header_name)
            if raw is not None:
                values[name] = raw.decode("utf-8", errors="replace")
        return cls(**values)

    def to_headers(self) -> Headers:
        return tuple(
            (header_name, value.encode())
            for name, header_name in _HEADER_NAMES.items()
            if (value := getattr(self, name)) is not None
        )

    def child(self, **changes: str | None) -> Correlation:
        """The correlation of a record produced while handling this one: a new span in the same trace, and
        `changes` (e.g. the receiver of one delivery)."""
        return replace(self, traceparent=child_traceparent(self.traceparent), **changes)

    def log_context(self) -> dict[str, str]:
        """The fixed structlog keys, for the ids that are known."""
        return {name: value for name in _HEADER_NAMES if (value := getattr(self, name)) is not None}


_HEADER_NAMES = {
    "message_id": MESSAGE_ID,
    "msg_id": MSG_ID,
    "sender_her_id": SENDER_HER_ID,
    "receiver_her_id": RECEIVER_HER_ID,
    "request_id": REQUEST_ID,
    "traceparent": TRACEPARENT,
}
