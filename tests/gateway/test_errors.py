"""Bad requests get the contract's ErrorMessage with the documented code (never a 500): every response here is
also checked against msh-api-v2.json by the `caller` fixture."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from edi.auth.dev import DevIssuer
from edi.services.gateway.app import create_app
from tests.gateway.conftest import API_HEADERS, Caller, dev_settings
from tests.gateway.contract import check_response
from tests.gateway.documents import dialogmelding
from tests.gateway.memory import InMemoryMessaging
from tests.gateway.test_contract import post_body

SENDER, RECEIVER, OTHER = 111, 222, 333
UNKNOWN = uuid.uuid4()


def assert_error(response: httpx.Response, status: int, code: int, *fragments: str) -> list[str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errorCode"] == code, body
    assert body["requestId"] == response.headers["x-request-id"]
    reasons: list[str] = body["validationErrors"] or [body["error"]]
    for fragment in fragments:
        assert any(fragment in reason for reason in reasons), (fragment, reasons)
    return reasons


def encoded(text: bytes) -> str:
    return base64.b64encode(text).decode()


@pytest.mark.parametrize(("business_document", "fragment"), [
    ("not base64!", "not valid base64"),
    ("PD94bWwg", "UTF-8"),  # '<?xml ' and nothing else: no declaration of UTF-8
    (encoded(b"<MsgHead/>"), "declare it in its first line"),
    (encoded(b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<MsgHead/>'), "UTF-8"),
    (encoded(b'\n<?xml version="1.0" encoding="UTF-8"?><MsgHead/>'), "first line"),
    (encoded(b'<?xml version="1.0"?>\n<!-- encoding="UTF-8" --><MsgHead/>'), "first line"),
])
async def test_the_document_must_be_base64_utf8_xml(caller: Caller, business_document: str, fragment: str) -> None:
    response = await caller(SENDER).post("/Messages", json={**post_body(b""), "businessDocument": business_document})
    assert_error(response, 400, 1000, fragment)


async def test_not_xml_is_refused_with_the_apprec_code(caller: Caller) -> None:
    document = b'<?xml version="1.0" encoding="UTF-8"?>\nthis is not XML'
    reasons = assert_error(await caller(SENDER).post("/Messages", json=post_body(document)), 400, 1000)
    assert reasons[0].startswith("T01 Ikke XML / ikke 'well formed' / uleselig: ")
    assert reasons[0].endswith("[EDI-XML-003]")


async def test_an_invalid_document_is_refused_with_each_problem(caller: Caller) -> None:
    document = dialogmelding(SENDER, RECEIVER).replace(b"<MIGversion>", b"<Unexpected/><MIGversion>")
    reasons = assert_error(await caller(SENDER).post("/Messages", json=post_body(document)), 400, 1000)
    assert any(r.startswith("T02 XML validerer ikke: ") and "line " in r for r in reasons), reasons


@pytest.mark.parametrize("body", [
    {"contentType": "application/xml", "contentTransferEncoding": "base64"},  # no document
    {**post_body(b"x"), "businessDocument": ""},
    {**post_body(b"x"), "businessDocument": 123},
    {**post_body(b"x"), "contentType": "application/pdf"},
    {**post_body(b"x"), "contentTransferEncoding": "quoted-printable"},
    {**post_body(b"x"), "receiverHerIdsSubset": ["222"]},
    {**post_body(b"x"), "receiverHerIdsSubset": [2**31]},
    {**post_body(b"x"), "receiverHerIdsSubset": 222},
    {**post_body(b"x"), "ebXmlOverrides": {"unknown": 1}},
    {**post_body(b"x"), "unexpectedProperty": True},
    [post_body(b"x")],
    "a string",
    None,
])
async def test_wrong_shapes_and_types_are_model_errors(caller: Caller, body: Any) -> None:
    assert_error(await caller(SENDER).post("/Messages", json=body), 400, 1000)


@pytest.mark.parametrize("content", [b"{", b'{"businessDocument": ', b"\xff\xfe", b"", b"null"])
async def test_malformed_json_is_a_model_error(caller: Caller, content: bytes) -> None:
    response = await caller(SENDER).post("/Messages", content=content, headers={"content-type": "application/json"})
    assert_error(response, 400, 1000)


@pytest.mark.parametrize("params", [
    {},
    {"ReceiverHerIds": "abc"},
    {"ReceiverHerIds": RECEIVER, "MessagesToFetch": 0},
    {"ReceiverHerIds": RECEIVER, "MessagesToFetch": 101},
    {"ReceiverHerIds": RECEIVER, "MessagesToFetch": "ten"},
    {"ReceiverHerIds": RECEIVER, "OrderBy": "3"},
    {"ReceiverHerIds": RECEIVER, "IncludeMetadata": "perhaps"},
    {"ReceiverHerIds": RECEIVER, "SenderHerId": "x"},
    {"ReceiverHerIds": RECEIVER, "BusinessDocumentId": "x" * 101},
    {"ReceiverHerIds": 2**31},
])
async def test_bad_query_parameters_are_model_errors(caller: Caller, params: dict[str, Any]) -> None:
    assert_error(await caller(RECEIVER).get("/Messages", params=params), 400, 1000)


@pytest.mark.parametrize(("headers", "fragment"), [
    ({"api-version": ""}, "api-version"),
    ({"nhn-source-system": ""}, "nhn-source-system"),
    ({"api-version": "3"}, "API version 2"),
    ({"nhn-source-system": " "}, "nhn-source-system"),
])
async def test_the_api_headers_are_required(caller: Caller, headers: dict[str, str], fragment: str) -> None:
    client = caller(RECEIVER)
    for name, value in headers.items():
        if value:
            client.headers[name] = value
        else:
            del client.headers[name]
    response = await client.get("/Messages", params={"ReceiverHerIds": RECEIVER})
    assert_error(response, 400, 1000, fragment)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/Messages/{id}"), ("GET", "/Messages/{id}/business-document"), ("GET", "/Messages/{id}/status"),
    ("GET", "/Messages/{id}/apprec"), ("PUT", "/Messages/{id}/read/222"),
])
async def test_unknown_ids_are_not_found_and_bad_ids_are_model_errors(caller: Caller, method: str, path: str) -> None:
    client = caller(RECEIVER)
    assert_error(await client.request(method, path.format(id=UNKNOWN)), 404, 1010)
    assert_error(await client.request(method, path.format(id="not-a-guid")), 400, 1000, "UUID")


async def test_apprec_for_an_unknown_message_is_not_found(caller: Caller) -> None:
    response = await caller(RECEIVER).post(f"/Messages/{UNKNOWN}/apprec/{RECEIVER}", json={"appRecStatus": "Ok"})
    assert_error(response, 404, 1010)


async def test_unknown_paths_and_methods_answer_in_the_error_shape(caller: Caller) -> None:
    client = caller(RECEIVER)
    assert_error(await client.get("/Nothing"), 404, 1010)
    response = await client.delete("/Messages")
    assert_error(response, 405, 0)


async def test_oversize_documents_point_to_the_attachment_service(tmp_path: Path, messaging: InMemoryMessaging) -> None:
    settings = dev_settings(tmp_path, max_message_bytes=20_000)
    app = create_app(messaging, settings)
    token = DevIssuer.load_or_create(tmp_path).issue([SENDER], audience="nhn:msh", scope="nhn:msh/api")
    headers = {**API_HEADERS, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g", headers=headers) as http:
        fits = await http.post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER, pad_to=19_000)))
        assert fits.status_code == 201, fits.text
        big = await http.post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER, pad_to=21_000)))
        assert_error(big, 400, 1000, "attachment service")
        check_response(big)
        huge = await http.post("/Messages", content=b"x" * 200_000, headers={"content-type": "application/json"})
        assert_error(huge, 400, 1000, "attachment service")

        async def chunks() -> Any:  # no Content-Length: the limit holds while the body is read
            for _ in range(100):
                yield b"x" * 10_000

        streamed = await http.post("/Messages", content=chunks(), headers={"content-type": "application/json"})
        assert_error(streamed, 400, 1000, "attachment service")


async def test_duplicate_msgid_with_other_content_is_refused(caller: Caller) -> None:
    sender = caller(SENDER)
    msg_id = str(uuid.uuid4())
    assert (await sender.post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER, msg_id=msg_id)))).is_success
    other = dialogmelding(SENDER, RECEIVER, msg_id=msg_id, gen_date="2025-06-11T10:00:00+02:00")
    assert_error(await sender.post("/Messages", json=post_body(other)), 400, 1000, msg_id)


async def test_receivers_that_cannot_be_worked_out(caller: Caller) -> None:
    sender = caller(SENDER)
    document = dialogmelding(SENDER, RECEIVER)
    assert_error(await sender.post("/Messages", json=post_body(document, receiverHerIdsSubset=[OTHER])), 400, 1200)
    assert_error(await sender.post("/Messages", json=post_body(document, receiverHerIdsSubset=[])), 400, 1000)


async def test_apprec_rules(caller: Caller) -> None:
    sender, receiver, both = caller(SENDER), caller(RECEIVER), caller(RECEIVER, OTHER)
    message_id = (await sender.post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER)))).json()
    apprec = f"/Messages/{message_id}/apprec"
    assert_error(await receiver.post(f"{apprec}/{RECEIVER}", json={"appRecStatus": "Rejected"}), 400, 1000,
                 "at least one error")
    assert_error(await receiver.post(f"{apprec}/{RECEIVER}", json={
        "appRecStatus": "Ok", "appRecErrorList": [{"errorCode": "E10", "details": None}],
    }), 400, 1000, "no errors")
    assert_error(await receiver.post(f"{apprec}/{RECEIVER}", json={
        "appRecStatus": "Rejected", "appRecErrorList": [{"errorCode": "", "details": "x"}],
    }), 400, 1000, "errorCode")
    assert_error(await receiver.post(f"{apprec}/{RECEIVER}", json={"appRecStatus": "Maybe"}), 400, 1000)
    assert_error(await receiver.post(f"{apprec}/{RECEIVER}", json={}), 400, 1000)
    # OTHER is held by the caller but is no receiver of the message.
    assert_error(await both.post(f"{apprec}/{OTHER}", json={"appRecStatus": "Ok"}), 403, 1102)

    answered = await receiver.post(f"{apprec}/{RECEIVER}", json={"appRecStatus": 1})  # .NET also takes numbers
    assert answered.status_code == 201
    apprec_id = answered.json()
    # The AppRec went to the sender; answering it with an AppRec is refused.
    response = await sender.post(f"/Messages/{apprec_id}/apprec/{SENDER}", json={"appRecStatus": "Ok"})
    assert_error(response, 400, 1100)


async def test_the_sender_must_be_held(caller: Caller) -> None:
    response = await caller(OTHER).post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER)))
    assert_error(response, 403, 1201, str(SENDER))


class Failing(InMemoryMessaging):
    async def unread(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the store is down (and this text must not reach the caller)")


async def test_an_unexpected_failure_is_a_500_in_the_error_shape(tmp_path: Path, validator: Any) -> None:
    app = create_app(Failing(validator), dev_settings(tmp_path))
    token = DevIssuer.load_or_create(tmp_path).issue([RECEIVER], audience="nhn:msh", scope="nhn:msh/api")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {**API_HEADERS, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://g", headers=headers) as http:
        response = await http.get("/Messages", params={"ReceiverHerIds": RECEIVER})
    assert response.status_code == 500
    body = response.json()
    assert (body["error"], body["errorCode"], body["stackTrace"]) == ("An unknown error occurred", 0, None)
    assert body["requestId"] == response.headers["x-request-id"]
    check_response(response)
