"""structlog set up once: JSON lines in production, readable console output in development.

Every line carries the same correlation keys (absent ones as null), so an operator can filter one message's
journey across services. Payloads never reach a log: fields that hold documents are dropped, and anything that
looks like a Norwegian national identity number is masked, whatever field it hides in.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import Any, Literal, TextIO

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


# The keys of the record a service is handling (topic, partition, offset, correlation ids): one context variable
# set once per record, merged into a line only when one is logged. Binding each key with structlog's contextvars
# costs more per record than the rest of the runtime's bookkeeping, and almost no record logs anything.
_record_context: ContextVar[Mapping[str, Any] | None] = ContextVar("edi_record_context", default=None)


def bind_record_context(context: Mapping[str, Any]) -> Token[Mapping[str, Any] | None]:
    """Set the keys of the record being handled, for the current task; undo with `reset_record_context`."""
    return _record_context.set(context)


def reset_record_context(token: Token[Mapping[str, Any] | None]) -> None:
    _record_context.reset(token)


def merge_record_context(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in (_record_context.get() or {}).items():
        event.setdefault(key, value)  # a key given to the log call itself wins, as with bound contextvars
    return event


def fixed_keys(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in CORRELATION_KEYS:
        event.setdefault(key, None)
    return event


def scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop payload fields and mask national identity numbers in every remaining string value."""
    for key in PAYLOAD_KEYS & event.keys():
        event[key] = "[payload withheld]"
    # One search over all the line's strings for the usual case, nothing to mask (no match spans the separator).
    if _NATIONAL_ID.search("\0".join(value for value in event.values() if isinstance(value, str))):
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = _NATIONAL_ID.sub(MASK, value)
    return event


class _Lines(structlog.WriteLogger):
    """Writes each rendered line to the stream. As the standard library's handlers do, a line that cannot be
    written (a closed or broken stream) is dropped rather than raised into the code that logged it: a request
    whose message is already on the bus must not fail for its log line."""

    def msg(self, message: str) -> None:
        with contextlib.suppress(Exception):
            super().msg(message)

    log = debug = info = warn = warning = fatal = failure = err = error = critical = exception = msg


def _never_raising(renderer: structlog.typing.Processor) -> structlog.typing.Processor:
    """The renderer, with a short line in place of one it cannot render (a value JSON cannot hold, say)."""

    def render(logger: Any, name: str, event: MutableMapping[str, Any]) -> Any:
        try:
            return renderer(logger, name, event)
        except Exception as exc:
            return renderer(logger, name, {"event": "a log line could not be rendered", "level": name,
                                           "error": type(exc).__name__})

    return render


def configure_logging(
    *, format: Format = "console", level: str = "INFO", service: str | None = None, stream: TextIO | None = None,
) -> None:
    """Configure structlog and the standard library's logging (used by aiokafka, uvicorn, SQLAlchemy) alike, both
    writing to `stream` (standard error by default). The project's own lines go straight from structlog to the
    stream: through the standard library each line cost a LogRecord, a handler lock and a second formatting pass,
    which made the one line per accepted message a tenth to a fifth of the API's CPU per request."""
    stream = stream or sys.stderr
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        merge_record_context,  # before: a record's keys win over the process's bound ones, as they did when bound
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub,
    ]
    if format == "json":
        shared.insert(2, fixed_keys)  # after both merges: it fills in only the keys neither gave
    lines = _Lines(stream)  # one for every logger: it holds only the stream and its lock
    structlog.configure(
        processors=[*shared, _never_raising(renderer)],
        logger_factory=lambda *_: lines,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer,
    ]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if service:
        structlog.contextvars.bind_contextvars(service=service)
