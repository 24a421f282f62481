"""structlog set up once: JSON lines in production, readable console output in development.

Every line carries the same correlation keys (absent ones as null), so an operator can filter one message's
journey across services. Payloads never reach a log: fields that hold documents are dropped, and anything that
looks like a Norwegian national identity number is masked, whatever field it hides in.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

CORRELATION_KEYS = (
    "service", "request_id", "message_id", "msg_id", "sender_her_id", "receiver_her_id", "topic", "partition",
    "offset",
)
# Fields that would carry a message or attachment if someone passed one to a log call.
PAYLOAD_KEYS = frozenset({"document", "payload", "body", "content", "value", "business_document", "xml", "data"})
_NATIONAL_ID = re.compile(r"(?<!\d)\d{6}\s?\d{5}(?!\d)")
MASK = "***********"

Format = Literal["json", "console"]


def fixed_keys(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in CORRELATION_KEYS:
        event.setdefault(key, None)
    return event


def scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop payload fields and mask national identity numbers in every remaining string value."""
    for key in [k for k in event if k in PAYLOAD_KEYS]:
        event[key] = "[payload withheld]"
    for key, value in event.items():
        if isinstance(value, str) and _NATIONAL_ID.search(value):
            event[key] = _NATIONAL_ID.sub(MASK, value)
    return event


def configure_logging(*, format: Format = "console", level: str = "INFO", service: str | None = None) -> None:
    """Configure structlog and the standard library's logging (used by aiokafka, uvicorn, SQLAlchemy) alike."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub,
    ]
    if format == "json":
        shared.insert(1, fixed_keys)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer,
    ]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if service:
        structlog.contextvars.bind_contextvars(service=service)
