"""Log lines: fixed correlation keys, JSON in production, and never a payload or a national identity number."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from edi.observability.logging import (
    CORRELATION_KEYS,
    bind_record_context,
    configure_logging,
    reset_record_context,
)


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = []


def lines(captured: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


def test_json_lines_carry_every_correlation_key(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(format="json", service="router")
    with structlog.contextvars.bound_contextvars(message_id="m-1", topic="edi.accepted", partition=2, offset=41):
        structlog.get_logger("t").info("delivered", receiver_her_id="90998")
    [line] = lines(capsys.readouterr().err)
    assert set(CORRELATION_KEYS) <= set(line)
    assert (line["service"], line["message_id"], line["receiver_her_id"], line["offset"]) == (
        "router", "m-1", "90998", 41)
    assert line["msg_id"] is None and line["event"] == "delivered" and line["level"] == "info"


def test_payloads_and_national_identity_numbers_never_reach_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(format="json")
    log = structlog.get_logger("t")
    log.info("received", document="<MsgHead>13116900216</MsgHead>", size=1234)
    log.warning("odd patient 13116900216 in header", detail="fnr 131169 00216")
    logging.getLogger("aiokafka").error("library line with 15076500565")
    out = capsys.readouterr().err
    assert "13116900216" not in out and "131169 00216" not in out and "15076500565" not in out
    assert "<MsgHead>" not in out
    first, second, third = lines(out)
    assert first["document"] == "[payload withheld]" and first["size"] == 1234
    assert second["event"] == "odd patient *********** in header"
    assert third["event"] == "library line with ***********"


def test_console_format_for_development(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(format="console", level="debug")
    structlog.get_logger("t").debug("hello", her_id="90998")
    err = capsys.readouterr().err
    assert "hello" in err and "her_id=90998" in err and not err.lstrip().startswith("{")


def test_a_handled_records_keys_reach_its_lines_and_the_calls_own_keys_win(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(format="json", service="edi")
    token = bind_record_context({"service": "router", "topic": "edi.accepted", "offset": 7, "msg_id": "from-record"})
    try:
        structlog.get_logger("t").info("routed", msg_id="from-call")
    finally:
        reset_record_context(token)
    structlog.get_logger("t").info("idle")
    handling, idle = lines(capsys.readouterr().err)
    assert (handling["service"], handling["topic"], handling["offset"], handling["msg_id"]) == (
        "router", "edi.accepted", 7, "from-call")
    assert (idle["service"], idle["topic"], idle["offset"]) == ("edi", None, None)


def test_a_line_that_cannot_be_rendered_or_written_never_fails_the_code_that_logged_it() -> None:
    stream = io.StringIO()
    configure_logging(format="json", stream=stream)
    log = structlog.get_logger("t")
    log.info("odd", by_pair={("a", 1): "x"})  # a key JSON cannot hold
    [line] = lines(stream.getvalue())
    assert (line["event"], line["error"], line["level"]) == ("a log line could not be rendered", "TypeError", "info")
    stream.close()
    log.info("after the stream was closed")  # dropped, as the standard library's handlers drop it
