"""multipart/form-data read as it arrives: fields as strings, a file part as a stream of its bytes.

Starlette's own form parser spools a file part to a temporary file before the endpoint sees it; an object may be
gigabytes, so here python-multipart's push parser is fed the request body chunk by chunk and a file part's bytes
go straight on to the blob store. Memory: one request chunk and a field's value at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Literal

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 64 * 1024
MAX_HEADER_BYTES = 8 * 1024

_Event = tuple[Literal["part"], dict[str, str]] | tuple[Literal["data"], bytes] | tuple[Literal["end"], None]


class FormError(ValueError):
    """The body is not the multipart/form-data it claims to be."""


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class FormFile:
    """A file part. Read `chunks` to the end before asking the form for its next item."""

    name: str
    file_name: str | None
    content_type: str
    chunks: AsyncIterator[bytes]


async def read_form(body: AsyncIterable[bytes], content_type: str) -> AsyncIterator[FormField | FormFile]:
    """The form's fields and files in the order the client sent them."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise FormError("the body must be multipart/form-data with a boundary")
    events = _events(body, boundary)
    async for event in events:
        if event[0] != "part":
            raise FormError("part data outside a part")
        headers = event[1]
        _, disposition = parse_options_header(headers.get("content-disposition", ""))
        name = _text(disposition.get(b"name", b""))
        file_name = _text(disposition[b"filename"]) if b"filename" in disposition else None
        if file_name is None:
            yield FormField(name, await _field_value(events))
        else:
            file = FormFile(name, file_name or None, headers.get("content-type", "application/octet-stream"),
                            _part_data(events))
            yield file
            async for _ in file.chunks:  # whatever the consumer left unread
                pass


async def _events(body: AsyncIterable[bytes], boundary: bytes) -> AsyncIterator[_Event]:
    """The parser's callbacks as a stream of events: a part's headers, its data, its end."""
    pending: list[_Event] = []
    headers: dict[str, str] = {}
    field, value = bytearray(), bytearray()
    finished = False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field.extend(data[start:end])
        _limit(len(field) + len(value), MAX_HEADER_BYTES, "a part header")

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value.extend(data[start:end])
        _limit(len(field) + len(value), MAX_HEADER_BYTES, "a part header")

    def on_header_end() -> None:
        headers[field.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        field.clear()
        value.clear()

    def on_headers_finished() -> None:
        pending.append(("part", dict(headers)))
        headers.clear()

    def on_end() -> None:
        nonlocal finished
        finished = True

    parser = MultipartParser(boundary, {
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": lambda data, start, end: pending.append(("data", data[start:end])),
        "on_part_end": lambda: pending.append(("end", None)),
        "on_end": on_end,
    })
    async for chunk in body:
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise FormError(f"malformed multipart body: {exc}") from None
        for event in pending:
            yield event
        pending.clear()
    if not finished:
        raise FormError("the multipart body ends before its closing boundary")


async def _part_data(events: AsyncIterator[_Event]) -> AsyncIterator[bytes]:
    async for event in events:
        if event[0] == "end":
            return
        if event[0] == "data" and event[1]:
            yield event[1]
    raise FormError("the multipart body ends inside a part")


async def _field_value(events: AsyncIterator[_Event]) -> str:
    value = bytearray()
    async for chunk in _part_data(events):
        value.extend(chunk)
        _limit(len(value), MAX_FIELD_BYTES, "a form field")
    return _text(bytes(value))


def _text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _limit(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise FormError(f"{what} is longer than {limit} bytes")
