"""The v2 contract, operation by operation: what a sender and a receiver see, every response checked against
msh-api-v2.json (by the `caller` fixture), and the served OpenAPI document compared with NHN's."""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

import httpx
from fastapi import FastAPI

from tests.gateway.conftest import Caller
from tests.gateway.contract import contract, operation_for, operations
from tests.gateway.documents import dialogmelding

SENDER, RECEIVER, COPY = 111, 222, 333


def post_body(document: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "businessDocument": base64.b64encode(document).decode(), "contentType": "application/xml",
        "contentTransferEncoding": "base64", **extra,
    }


async def test_every_operation_of_the_contract(caller: Caller) -> None:
    exercised: set[str] = set()

    async def record(response: httpx.Response) -> None:
        operation = operation_for(response.request.method, response.request.url.path)
        if operation is not None:
            exercised.add(operation["operationId"])

    sender, receiver = caller(SENDER), caller(RECEIVER)
    for client in (sender, receiver):
        client.event_hooks["response"].append(record)
    document = dialogmelding(SENDER, RECEIVER, gen_date="2025-06-10T10:55:20+02:00")

    posted = await sender.post("/Messages", json=post_body(document))
    assert posted.status_code == 201
    message_id = UUID(posted.json())
    assert posted.headers["location"] == f"http://gateway.test/Messages/{message_id}"

    listed = await receiver.get("/Messages", params={"ReceiverHerIds": RECEIVER})
    assert listed.json() == [{"id": str(message_id), "receiverHerId": RECEIVER}]
    with_metadata = await receiver.get("/Messages", params={"ReceiverHerIds": RECEIVER, "IncludeMetadata": "true"})
    assert with_metadata.json()[0]["senderHerId"] == SENDER
    assert with_metadata.json()[0]["isAppRec"] is False

    message = (await receiver.get(f"/Messages/{message_id}")).json()
    assert message["receiverHerId"] == RECEIVER
    assert message["businessDocumentGenDate"].startswith("2025-06-10T10:55:20")
    fetched = (await receiver.get(f"/Messages/{message_id}/business-document")).json()
    assert base64.b64decode(fetched["businessDocument"]) == document
    assert (fetched["contentType"], fetched["contentTransferEncoding"]) == ("application/xml", "base64")

    assert (await sender.get(f"/Messages/{message_id}/status")).json() == [
        {"receiverHerId": RECEIVER, "transportDeliveryState": "Unconfirmed", "appRecStatus": None},
    ]
    marked = await receiver.put(f"/Messages/{message_id}/read/{RECEIVER}")
    assert marked.status_code == 204
    assert (await receiver.get("/Messages", params={"ReceiverHerIds": RECEIVER})).json() == []
    assert (await sender.get(f"/Messages/{message_id}/status")).json()[0]["transportDeliveryState"] == "Acknowledged"

    answered = await receiver.post(
        f"/Messages/{message_id}/apprec/{RECEIVER}",
        json={"appRecStatus": "Rejected", "appRecErrorList": [{"errorCode": "E10", "details": "Ugyldig MsgId"}]},
    )
    assert answered.status_code == 201
    apprec_id = UUID(answered.json())
    assert (await sender.get(f"/Messages/{message_id}/apprec")).json() == [{
        "receiverHerId": RECEIVER, "appRecStatus": "Rejected",
        "appRecErrorList": [{
            "errorCode": "E10", "details": "Ugyldig MsgId", "description": "Ugyldig meldingsidentifikator",
            "oid": "2.16.578.1.12.4.1.1.8221",
        }],
    }]
    assert (await sender.get(f"/Messages/{message_id}/status")).json()[0]["appRecStatus"] == "Rejected"
    inbox = (await sender.get("/Messages", params={"ReceiverHerIds": SENDER, "IncludeMetadata": "true"})).json()
    assert [(m["id"], m["isAppRec"], m["senderHerId"]) for m in inbox] == [(str(apprec_id), True, RECEIVER)]

    assert exercised == set(operations())


async def test_messages_are_listed_by_gen_date_in_either_order_and_filtered(caller: Caller) -> None:
    sender, receiver = caller(SENDER), caller(RECEIVER)
    dates = ["2025-03-01T10:00:00+01:00", "2025-01-01T10:00:00+01:00", "2025-02-01T10:00:00+01:00"]
    ids = []
    for date in dates:
        posted = await sender.post("/Messages", json=post_body(dialogmelding(SENDER, RECEIVER, gen_date=date)))
        ids.append(posted.json())
    by_date = [ids[1], ids[2], ids[0]]

    async def listed(**params: Any) -> list[str]:
        response = await receiver.get("/Messages", params={"ReceiverHerIds": RECEIVER, **params})
        assert response.status_code == 200
        return [m["id"] for m in response.json()]

    assert await listed() == by_date
    assert await listed(OrderBy="Descending") == by_date[::-1]
    assert await listed(OrderBy="2") == by_date[::-1]
    assert await listed(OrderBy="1", MessagesToFetch=2) == by_date[:2]
    assert await listed(SenderHerId=999) == []
    assert await listed(SenderHerId=SENDER) == by_date


async def test_paths_and_parameter_names_are_matched_without_regard_to_case(caller: Caller) -> None:
    sender, receiver = caller(SENDER), caller(RECEIVER)
    posted = await sender.post("/messages", json=post_body(dialogmelding(SENDER, RECEIVER)))
    assert posted.status_code == 201
    listed = await receiver.get("/messages", params={"receiverHerIds": RECEIVER, "messagestofetch": 1})
    assert [m["id"] for m in listed.json()] == [posted.json()]


async def test_text_json_bodies_are_read_as_json(caller: Caller) -> None:
    sender = caller(SENDER)
    posted = await sender.post(
        "/Messages", content=httpx.Request("POST", "/", json=post_body(dialogmelding(SENDER, RECEIVER))).content,
        headers={"content-type": "text/json; charset=utf-8"},
    )
    assert posted.status_code == 201


async def test_resubmitting_the_same_document_returns_the_original_id(caller: Caller) -> None:
    sender = caller(SENDER)
    document = dialogmelding(SENDER, RECEIVER)
    first = await sender.post("/Messages", json=post_body(document))
    again = await sender.post("/Messages", json=post_body(document))
    assert again.status_code == 201
    assert again.json() == first.json()


async def test_receiver_subset_delivers_only_to_the_receivers_named(caller: Caller, messaging: Any) -> None:
    sender = caller(SENDER)
    document = dialogmelding(SENDER, RECEIVER)
    posted = await sender.post("/Messages", json=post_body(document, receiverHerIdsSubset=[RECEIVER]))
    assert posted.status_code == 201
    statuses = (await sender.get(f"/Messages/{posted.json()}/status")).json()
    assert [s["receiverHerId"] for s in statuses] == [RECEIVER]


def test_served_openapi_matches_the_contract_for_the_v2_paths(app: FastAPI) -> None:
    served = app.openapi()
    ours = _canonical_operations(served)
    theirs = _canonical_operations(contract())
    assert set(theirs) <= set(ours)
    for key, expected in theirs.items():
        assert ours[key] == expected, key


def test_contract_examples_validate_against_the_contract() -> None:
    """The oracle itself: the contract's own examples pass the checker's schema validation."""
    from openapi_schema_validator import OAS30Validator

    from tests.gateway.contract import inline

    checked = 0
    for methods in contract()["paths"].values():
        for operation in methods.values():
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    if "example" in media:
                        OAS30Validator(inline(media["schema"])).validate(media["example"])
                        checked += 1
    assert checked > 20


# --- comparing OpenAPI documents: what a client generator sees, not how each tool spells it ---

_KEPT = ("type", "format", "enum", "minimum", "maximum", "minLength", "maxLength", "uniqueItems")


def _canonical_operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if operation_for(method, path) is None:
                continue
            parameters = {
                (p["name"], p["in"]): (bool(p.get("required")), _canonical(document, p["schema"]))
                for p in operation.get("parameters", [])
            }
            body = operation.get("requestBody", {}).get("content", {})
            found[(method.upper(), path)] = {
                "operationId": operation["operationId"],
                "parameters": parameters,
                "body": {media: _canonical(document, content["schema"]) for media, content in body.items()},
                "responses": {
                    status: {m: _canonical(document, c.get("schema", {})) for m, c in r.get("content", {}).items()}
                    for status, r in operation["responses"].items()
                },
            }
    return found


def _canonical(document: dict[str, Any], schema: Any) -> Any:
    """Refs resolved, `allOf` of one and `anyOf` with null flattened, nullability as a flag, and only the
    keywords that constrain values."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        resolved = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        return _canonical(document, {**resolved, **{k: v for k, v in schema.items() if k != "$ref"}})
    nullable = bool(schema.get("nullable"))
    for combinator in ("allOf", "anyOf", "oneOf"):
        options = [o for o in schema.get(combinator, []) if o != {"type": "null"}]
        if len(schema.get(combinator, [])) != len(options):
            nullable = True
        if combinator in schema and len(options) == 1:
            rest = {k: v for k, v in schema.items() if k != combinator}
            inner = _canonical(document, options[0])
            return {**inner, **_canonical_fields(document, rest), "nullable": nullable or inner.get("nullable", False)}
    return {**_canonical_fields(document, schema), "nullable": nullable}


def _canonical_fields(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    result = {k: schema[k] for k in _KEPT if k in schema}
    if "properties" in schema:
        result["properties"] = {name: _canonical(document, s) for name, s in schema["properties"].items()}
        result["required"] = sorted(schema.get("required", []))
        result["additionalProperties"] = schema.get("additionalProperties", True)
    if "items" in schema:
        result["items"] = _canonical(document, schema["items"])
    return result
