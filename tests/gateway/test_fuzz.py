"""Property-based fuzzing of the request schemas: bodies and parameters drawn from the contract's own schemas (and
outside them) never get a 500, and every answer is one the contract documents."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edi.auth.dev import DevIssuer
from edi.services.gateway.app import create_app
from tests.gateway.conftest import API_HEADERS, dev_settings
from tests.gateway.contract import check_response, contract
from tests.gateway.documents import dialogmelding
from tests.gateway.memory import InMemoryMessaging

SENDER, RECEIVER = 111, 222
# The gateway fixture is built once per test and shared by its examples, on purpose (state accumulates).
FUZZ = settings(
    max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def from_contract(schema: Any) -> st.SearchStrategy[Any]:
    """Values for one of the contract's (OpenAPI 3.0) schemas: every property combination, each value of its
    type within its bounds and at them, nulls where the schema allows them."""
    if "$ref" in schema:
        return from_contract(contract()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    if "allOf" in schema:
        strategy = from_contract(schema["allOf"][0])
    elif "enum" in schema:
        strategy = st.sampled_from(schema["enum"])
    elif schema.get("type") == "object":
        properties = {name: from_contract(s) for name, s in schema.get("properties", {}).items()}
        required = set(schema.get("required", []))
        strategy = st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in required},
            optional={k: v for k, v in properties.items() if k not in required},
        )
    elif schema.get("type") == "array":
        strategy = st.lists(from_contract(schema.get("items", {})), max_size=4)
    else:
        strategy = {
            "string": st.text(min_size=schema.get("minLength", 0), max_size=40),
            "integer": st.one_of(st.integers(-(2**33), 2**33), st.sampled_from([0, 1, 2**31 - 1, 2**31])),
            "boolean": st.booleans(),
        }.get(schema.get("type", ""), ANY_JSON)
    return st.one_of(st.none(), strategy) if schema.get("nullable") else strategy


ANY_JSON: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=20), inner, max_size=3)),
    max_leaves=20,
)
REQUEST = "#/components/schemas/"


@pytest.fixture
def call(tmp_path: Path, validator: Any) -> Iterator[Callable[..., httpx.Response]]:
    """call(method, path, **httpx arguments) on a development gateway, run to completion on a private loop (so
    that hypothesis drives a plain function); asserts no 500 and a documented answer."""
    app = create_app(InMemoryMessaging(validator), dev_settings(tmp_path))
    token = DevIssuer.load_or_create(tmp_path).issue([SENDER, RECEIVER], audience="nhn:msh", scope="nhn:msh/api")
    loop = asyncio.new_event_loop()
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://g",
        headers={**API_HEADERS, "Authorization": f"Bearer {token}"},
    )

    def run(method: str, path: str, **arguments: Any) -> httpx.Response:
        response = loop.run_until_complete(http.request(method, path, **arguments))
        assert response.status_code < 500, (method, path, arguments, response.text)
        check_response(response)
        return response

    yield run
    loop.run_until_complete(http.aclose())
    loop.close()


def _documents() -> st.SearchStrategy[bytes]:
    """Real documents, cut short or with bytes flipped: what reaches the core after the request checks."""
    document = dialogmelding(SENDER, RECEIVER)
    declaration = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    return st.one_of(
        st.integers(0, len(document)).map(lambda n: document[:n]),
        st.tuples(st.integers(0, len(document) - 1), st.integers(0, 255)).map(
            lambda flip: document[:flip[0]] + bytes([flip[1]]) + document[flip[0] + 1:]
        ),
        st.binary(max_size=300).map(lambda tail: declaration + tail),
    )


_POST_BODIES = st.one_of(
    from_contract({"$ref": REQUEST + "PostMessageRequest"}),
    _documents().map(lambda d: {
        "businessDocument": base64.b64encode(d).decode(), "contentType": "application/xml",
        "contentTransferEncoding": "base64",
    }),
    ANY_JSON,
)


@FUZZ
@given(body=_POST_BODIES)
def test_post_message_never_fails(call: Callable[..., httpx.Response], body: Any) -> None:
    assert call("POST", "/Messages", json=body).status_code in (201, 400, 403)


@FUZZ
@given(body=st.one_of(from_contract({"$ref": REQUEST + "PostAppRecRequest"}), ANY_JSON))
def test_post_apprec_never_fails(call: Callable[..., httpx.Response], body: Any) -> None:
    posted = call("POST", "/Messages", json={
        "businessDocument": base64.b64encode(dialogmelding(SENDER, RECEIVER)).decode(),
        "contentType": "application/xml", "contentTransferEncoding": "base64",
    })
    message_id = posted.json()
    assert call("POST", f"/Messages/{message_id}/apprec/{RECEIVER}", json=body).status_code in (201, 400, 403)


def _path_safe(text: str) -> str:
    return quote(text, safe="")


def _header_safe(text: str) -> bool:
    return text.isascii() and text.isprintable() and text == text.strip()


_TEXT = st.text(max_size=30)
_VALUES = st.one_of(_TEXT, st.integers(-(2**40), 2**40).map(str), st.sampled_from(["", "1", "2", "true", "null"]))


@FUZZ
@given(params=st.lists(st.tuples(
    st.sampled_from(["ReceiverHerIds", "SenderHerId", "BusinessDocumentId", "IncludeMetadata", "MessagesToFetch",
                     "OrderBy", "receiverherids", "Other"]),
    _VALUES,
), max_size=8))
def test_get_messages_never_fails(call: Callable[..., httpx.Response], params: list[tuple[str, str]]) -> None:
    assert call("GET", "/Messages", params=params).status_code in (200, 400, 403)


@FUZZ
@given(
    segment=st.one_of(_TEXT, st.uuids().map(str)),
    her_id=st.one_of(_TEXT, st.integers(-(2**40), 2**40).map(str)),
    operation=st.sampled_from([
        ("GET", "/Messages/{id}"), ("GET", "/Messages/{id}/business-document"), ("GET", "/Messages/{id}/status"),
        ("GET", "/Messages/{id}/apprec"), ("PUT", "/Messages/{id}/read/{her}"),
    ]),
)
def test_paths_never_fail(
    call: Callable[..., httpx.Response], segment: str, her_id: str, operation: tuple[str, str],
) -> None:
    method, template = operation
    path = template.format(id=_path_safe(segment), her=_path_safe(her_id))
    assert call(method, path).status_code in (200, 204, 400, 403, 404, 405)


@FUZZ
@given(headers=st.dictionaries(st.sampled_from(["api-version", "nhn-source-system"]), _TEXT.filter(_header_safe)))
def test_api_headers_never_fail(call: Callable[..., httpx.Response], headers: dict[str, str]) -> None:
    assert call("GET", "/Messages", params={"ReceiverHerIds": RECEIVER}, headers=headers).status_code in (200, 400)
