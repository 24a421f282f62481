"""The wire models of the EDI 2.0 API: NHN's v2 contract (msh-api-v2.json) and the v3-style notifications.

One set serves both ends. The gateway validates requests with them (strictly, as the contract's
`additionalProperties: false` says) and builds its responses from them; the client parses responses with them
(leniently: a property a newer server adds is ignored, as NHN's own clients do). Field names are snake_case in
Python and camelCase on the wire.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

MAX_INT32 = 2**31 - 1


def _int32(value: int) -> int:
    if not -MAX_INT32 - 1 <= value <= MAX_INT32:
        raise ValueError("must fit in a 32-bit integer")
    return value


# The contract's `integer, format int32`: HER-ids and counts. Range-checked like the .NET server does, with the
# contract's own schema (no minimum or maximum) in the OpenAPI document.
Int32 = Annotated[int, AfterValidator(_int32), WithJsonSchema({"type": "integer", "format": "int32"})]


class _Response(BaseModel):
    # The server sends exactly these properties (so the schema says additionalProperties: false, as the
    # contract's does); the client ignores any others a newer server adds.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True,
        json_schema_extra={"additionalProperties": False},
    )


class _Request(BaseModel):
    # strict: a HER-id sent as "123" or 1.0 is a wrong type, as it is for NHN's server.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True)


class AppRecStatus(StrEnum):
    """Application receipt status (code system 8220). The .NET server also takes the numbers 1, 2 and 3."""

    OK = "Ok"
    REJECTED = "Rejected"
    OK_ERROR_IN_MESSAGE_PART = "OkErrorInMessagePart"

    @classmethod
    def _missing_(cls, value: object) -> AppRecStatus | None:
        return _APPREC_NUMBERS.get(str(value))


_APPREC_NUMBERS = {"1": AppRecStatus.OK, "2": AppRecStatus.REJECTED, "3": AppRecStatus.OK_ERROR_IN_MESSAGE_PART}


class DeliveryState(StrEnum):
    UNCONFIRMED = "Unconfirmed"
    ACKNOWLEDGED = "Acknowledged"
    REJECTED = "Rejected"


class OrderBy(StrEnum):
    """By the business document's GenDate. The contract documents 1 and 2 as well as the names."""

    ASCENDING = "Ascending"
    DESCENDING = "Descending"

    @classmethod
    def _missing_(cls, value: object) -> OrderBy | None:
        text = str(value).strip().lower()
        return {"1": cls.ASCENDING, "2": cls.DESCENDING, "ascending": cls.ASCENDING,
                "descending": cls.DESCENDING}.get(text)


class AppRecError(_Response):
    """Information about an error in the application receipt."""

    error_code: str | None
    details: str | None
    description: str | None = None
    oid: str | None = None


class AppRecErrorIn(AppRecError):
    """An AppRecError in a request: checked as strictly as the rest of the request."""

    model_config = ConfigDict(extra="forbid", strict=True, title="AppRecError")


class EbXmlInfo(_Request):
    """ebXML overrides. Accepted for compatibility; this backbone carries no ebXML, so they have no effect."""

    cpa_id: str | None = None
    conversation_id: str | None = None
    service: str | None = None
    service_type: str | None = None
    action: str | None = None
    sender_role: str | None = None
    use_sender_level1_her_id: bool | None = Field(default=None, alias="useSenderLevel1HerId")
    receiver_role: str | None = None
    application_name: str | None = None
    application_version: str | None = None
    middleware_name: str | None = None
    middleware_version: str | None = None
    compress_payload: bool | None = None


class PostMessageRequest(_Request):
    business_document: str = Field(min_length=1)
    content_type: str = Field(min_length=1)
    content_transfer_encoding: str = Field(min_length=1)
    eb_xml_overrides: EbXmlInfo | None = None
    receiver_her_ids_subset: list[Int32] | None = None


class PostAppRecRequest(_Request):
    app_rec_status: Annotated[AppRecStatus, Field(strict=False)]  # lax, so that 1, 2 and 3 are taken too
    app_rec_error_list: list[AppRecErrorIn] | None = None
    eb_xml_overrides: EbXmlInfo | None = None


class Message(_Response):
    id: UUID | None = None
    content_type: str | None = None
    receiver_her_id: Int32 | None = None
    sender_her_id: Int32 | None = None
    business_document_id: str | None = None
    business_document_gen_date: datetime | None = None
    is_app_rec: bool | None = None


class GetBusinessDocumentResponse(_Response):
    business_document: str = Field(min_length=1)
    content_type: str = Field(min_length=1)
    content_transfer_encoding: str = Field(min_length=1)


class StatusInfo(_Response):
    receiver_her_id: Int32
    transport_delivery_state: DeliveryState
    app_rec_status: AppRecStatus | None = None


class ApprecInfo(_Response):
    receiver_her_id: Int32
    app_rec_status: AppRecStatus | None = None
    app_rec_error_list: list[AppRecError] | None = None


class ErrorMessage(_Response):
    error: str | None = None
    error_code: Int32 = 0
    validation_errors: list[str] | None = None
    stack_trace: str | None = None
    request_id: str


class NotificationType(StrEnum):
    NEW_MESSAGE = "NewMessage"
    MESSAGE_SENT_STATE_UPDATED = "MessageSentStateUpdated"
    MESSAGE_APPREC_INFO_UPDATED = "MessageApprecInfoUpdated"
    REFUSED_MESSAGE = "RefusedMessage"


class Notification(_Response):
    """One notification, in the shape NHN documents for API v3."""

    id: UUID
    related_message_id: UUID
    type: NotificationType
    notification_receiver_her_id: Int32
    notification_triggered_by_her_id: Int32 | None = None
    description: str | None = None
    created_at: datetime
    offset: int


class NotificationsResponse(_Response):
    notifications: list[Notification]
