"""The client's models read what NHN's service sends: the example bodies KS's fiks-nhn-client tests against."""

from __future__ import annotations

import base64
import json
from uuid import UUID

import pytest
from pydantic import TypeAdapter

from edi.client.models import (
    ApprecInfo,
    AppRecStatus,
    DeliveryState,
    GetBusinessDocumentResponse,
    Message,
    StatusInfo,
)
from tests.gateway.contract import EXAMPLES

MODELS: dict[str, TypeAdapter[object]] = {
    "get-apprecinfo-multi.json": TypeAdapter(list[ApprecInfo]),
    "get-apprecinfo-ok.json": TypeAdapter(list[ApprecInfo]),
    "get-apprecinfo-okerrorinmessagepart.json": TypeAdapter(list[ApprecInfo]),
    "get-apprecinfo-rejected.json": TypeAdapter(list[ApprecInfo]),
    "get-business-document-apprec-response.json": TypeAdapter(GetBusinessDocumentResponse),
    "get-business-document-response.json": TypeAdapter(GetBusinessDocumentResponse),
    "get-message-apprec-response.json": TypeAdapter(Message),
    "get-message-response-with-unknown-property.json": TypeAdapter(Message),
    "get-message-response.json": TypeAdapter(Message),
    "get-messages-response.json": TypeAdapter(list[Message]),
    "get-status-acked.json": TypeAdapter(list[StatusInfo]),
    "get-status.json": TypeAdapter(list[StatusInfo]),
}


def test_every_example_has_a_model() -> None:
    assert {p.name for p in EXAMPLES.glob("*.json")} == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_example_parses_and_round_trips(name: str) -> None:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    adapter = MODELS[name]
    parsed = adapter.validate_json(text)
    original = json.loads(text)
    again = json.loads(adapter.dump_json(parsed, by_alias=True, exclude_unset=True))
    if isinstance(original, dict):
        original.pop("unknownProperty", None)
    assert again == original or _same_times(again, original)


def _same_times(ours: object, theirs: object) -> bool:
    """Datetimes come back in ISO form with the same instant (the examples use .NET's 7-digit fractions)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_same_times(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, str) and isinstance(theirs, str) and ours != theirs:
        return ours[:19] == theirs[:19]
    return ours == theirs


def test_example_values() -> None:
    message = Message.model_validate_json((EXAMPLES / "get-message-apprec-response.json").read_text())
    assert message.id == UUID("0c8f3d36-f9e7-4e3f-9d5c-c820fa9b5773")
    assert (message.receiver_her_id, message.sender_her_id, message.is_app_rec) == (8143060, 8094866, True)
    info = TypeAdapter(list[ApprecInfo]).validate_json((EXAMPLES / "get-apprecinfo-multi.json").read_text())
    assert [i.app_rec_status for i in info] == [AppRecStatus.REJECTED, AppRecStatus.OK]
    assert info[0].app_rec_error_list and info[0].app_rec_error_list[0].error_code == "E10"
    status = TypeAdapter(list[StatusInfo]).validate_json((EXAMPLES / "get-status.json").read_text())
    assert status[0].transport_delivery_state is DeliveryState.UNCONFIRMED and status[0].app_rec_status is None
    document = GetBusinessDocumentResponse.model_validate_json(
        (EXAMPLES / "get-business-document-apprec-response.json").read_text()
    )
    assert base64.b64decode(document.business_document).startswith(b'<?xml version="1.0" encoding="utf-8"?>')
