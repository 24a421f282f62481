"""The v2 contract's /Messages operations, as msh-api-v2.json describes them."""

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from edi.client.models import (
    MAX_INT32,
    AppRecError,
    ApprecInfo,
    AppRecStatus,
    DeliveryState,
    GetBusinessDocumentResponse,
    Int32,
    Message,
    OrderBy,
    PostAppRecRequest,
    PostMessageRequest,
    StatusInfo,
)
from edi.core import apprec
from edi.core.errors import APPREC_CODE_TEXT
from edi.core.problems import Problem
from edi.events import TransportState
from edi.services.gateway.access import Caller
from edi.services.gateway.errors import (
    ERROR_RESPONSES,
    ERROR_RESPONSES_WITH_404,
    ApiError,
    ErrorCode,
    invalid,
    not_authorised_for_message,
    not_found,
)
from edi.services.messaging import DocumentUnavailable, MailboxEntry, Messaging, RefusalKind, Refused

API_VERSIONS = frozenset({"2", "2.0"})
# The contract's document must declare UTF-8 in its first line: `<?xml version="1.0" encoding="UTF-8"?>`.
_UTF8_DECLARATION = re.compile(rb"\A(?:\xef\xbb\xbf)?<\?xml[^\n>]*\sencoding\s*=\s*[\"']utf-8[\"']", re.IGNORECASE)
_WHITESPACE = re.compile(rb"[\t\n\r ]+")
_XML_TYPES = frozenset({"application/xml", "text/xml"})
_ERROR_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}")
_NOT_XML_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")  # XML 1.0's Char

_STATUS_CODES = {  # the contract's AppRecStatus names and the core's code system 8220
    AppRecStatus.OK: apprec.AppRecStatus.OK,
    AppRecStatus.REJECTED: apprec.AppRecStatus.AVVIST,
    AppRecStatus.OK_ERROR_IN_MESSAGE_PART: apprec.AppRecStatus.OK_FEIL_I_DELMELDING,
}
_STATUS_NAMES = {code: name for name, code in _STATUS_CODES.items()}
# The contract knows three delivery states; a message that expired unread will never be delivered either.
_DELIVERY = {
    TransportState.UNCONFIRMED: DeliveryState.UNCONFIRMED,
    TransportState.ACKNOWLEDGED: DeliveryState.ACKNOWLEDGED,
    TransportState.REJECTED: DeliveryState.REJECTED,
    TransportState.ABANDONED: DeliveryState.REJECTED,
}
_REFUSALS: dict[RefusalKind, tuple[int, ErrorCode]] = {
    RefusalKind.INVALID_DOCUMENT: (400, ErrorCode.INVALID_REQUEST),
    RefusalKind.DUPLICATE_MSGID: (400, ErrorCode.INVALID_REQUEST),
    RefusalKind.APPREC_TO_APPREC: (400, ErrorCode.APPREC_TO_APPREC),
    RefusalKind.APPREC_FROM_NON_RECEIVER: (403, ErrorCode.APPREC_FROM_NON_RECEIVER),
    RefusalKind.NO_RECEIVERS: (400, ErrorCode.RECEIVERS_UNKNOWN),
    RefusalKind.SENDER_NOT_AUTHORISED: (403, ErrorCode.NOT_AUTHORISED_FOR_MESSAGE),
}

MessageId = Annotated[UUID, Path(alias="id", description="Id of message (must be a valid Guid)")]


async def api_version_2(  # async: FastAPI runs a plain def on a worker thread, a hop per request
    api_version: Annotated[str, Header(alias="api-version", examples=["2"])],
    nhn_source_system: Annotated[str, Header(
        alias="nhn-source-system", description="Name and version for the client system",
        examples=["MyApplication, v1.337"],
    )],
) -> None:
    if api_version.strip() not in API_VERSIONS:
        raise invalid("header api-version: this server implements API version 2")
    if not nhn_source_system.strip():
        raise invalid("header nhn-source-system: name and version of the client system are required")


V2 = Annotated[None, Depends(api_version_2)]


def messages_router(
    messaging: Messaging, authenticate: Callable[[Request], Awaitable[Caller]], *, max_message_bytes: int,
) -> APIRouter:
    router = APIRouter(tags=["MessagesController"])
    Who = Annotated[Caller, Depends(authenticate)]  # local: it binds this router's `authenticate`

    async def entries_for(message_id: UUID, who: Caller, *, allow_sender: bool) -> list[MailboxEntry]:
        """The message's entries the caller may see: those addressed to its HER-ids, or all of them when it is the
        sender and `allow_sender`. Unknown: 404; the caller's neither: 403 (1201)."""
        entries = await messaging.entries(message_id)
        if not entries:
            raise not_found()
        own = [e for e in entries if e.receiver_her_id in who.her_ids]
        if own:
            return own
        if allow_sender and entries[0].sender_her_id in who.her_ids:
            return entries
        raise not_authorised_for_message()

    async def require_sender(message_id: UUID, who: Caller) -> None:
        sender = await messaging.sender_of(message_id)
        if sender is None:
            raise not_found()
        if sender not in who.her_ids:
            raise not_authorised_for_message()

    @router.get(
        "/Messages/{id}/apprec", operation_id="GetApprecInfo", responses=ERROR_RESPONSES_WITH_404,
        summary="Get ApprecInfo for the message's ApplicationReceipt, if any (the sender's view).",
    )
    async def get_apprec_info(who: Who, _: V2, message_id: MessageId) -> list[ApprecInfo]:
        await require_sender(message_id, who)
        return [
            ApprecInfo(
                receiver_her_id=int(info.receiver_her_id),
                app_rec_status=_STATUS_NAMES[info.apprec_status] if info.apprec_status else None,
                app_rec_error_list=[
                    AppRecError(error_code=e.code, details=e.details, description=e.description, oid=e.oid)
                    for e in info.errors
                ],
            )
            for info in await messaging.apprec_info(message_id)
        ]

    @router.get(
        "/Messages", operation_id="GetMessages", responses=ERROR_RESPONSES, response_model_exclude_unset=True,
        summary="Get a list of unread messages",
    )
    async def get_messages(
        who: Who,
        _: V2,
        receiver_her_ids: Annotated[list[Int32], Query(
            alias="ReceiverHerIds", description="Which messages sent to given HER-ids (one or more) to fetch.",
            json_schema_extra={"uniqueItems": True},
        )],
        sender_her_id: Annotated[Int32 | None, Query(alias="SenderHerId")] = None,
        business_document_id: Annotated[str | None, Query(
            alias="BusinessDocumentId", min_length=0, max_length=100,
        )] = None,
        include_metadata: Annotated[bool, Query(alias="IncludeMetadata")] = False,
        messages_to_fetch: Annotated[int, Query(
            alias="MessagesToFetch", ge=1, le=100, json_schema_extra={"format": "int32"},
        )] = 10,
        order_by: Annotated[OrderBy, Query(alias="OrderBy")] = OrderBy.ASCENDING,
    ) -> list[Message]:
        receivers = [str(h) for h in dict.fromkeys(receiver_her_ids)]
        who.require(receivers)
        unread = await messaging.unread(
            receivers, sender_her_id=None if sender_her_id is None else str(sender_her_id),
            msg_id=business_document_id, limit=messages_to_fetch, newest_first=order_by is OrderBy.DESCENDING,
        )
        if include_metadata:
            return [_message(entry) for entry in unread]
        return [Message(id=entry.message_id, receiver_her_id=int(entry.receiver_her_id)) for entry in unread]

    @router.post(
        "/Messages", operation_id="PostMessage", status_code=201, response_model=UUID, responses=ERROR_RESPONSES,
        summary="Send a message with business document", description="The request has a max limit of 35 MB",
    )
    async def post_message(request: Request, who: Who, _: V2, body: PostMessageRequest) -> JSONResponse:
        document = _business_document(body, max_message_bytes)
        subset = body.receiver_her_ids_subset
        if subset is not None and not subset:
            raise invalid("receiverHerIdsSubset: name at least one receiver, or leave it out")
        try:
            submitted = await messaging.submit(
                document, allowed_sender_her_ids=who.her_ids,
                receiver_subset=None if subset is None else [str(h) for h in subset],
                request_id=request.state.request_id,
            )
        except Refused as refused:
            raise _refusal(refused) from None
        return _created(request, submitted.message_id)

    @router.get(
        "/Messages/{id}", operation_id="GetMessage", responses=ERROR_RESPONSES_WITH_404,
        summary="Get message with given id",
    )
    async def get_message(who: Who, _: V2, message_id: MessageId) -> Message:
        return _message((await entries_for(message_id, who, allow_sender=True))[0])

    @router.get(
        "/Messages/{id}/business-document", operation_id="GetBusinessDocument", responses=ERROR_RESPONSES_WITH_404,
        summary="Get business document for message",
    )
    async def get_business_document(who: Who, _: V2, message_id: MessageId) -> GetBusinessDocumentResponse:
        entry = (await entries_for(message_id, who, allow_sender=True))[0]
        try:
            document = await messaging.business_document(message_id, entry.receiver_her_id)
        except DocumentUnavailable as exc:
            raise ApiError(404, str(exc), ErrorCode.NOT_FOUND) from exc
        if document is None:
            raise not_found()
        return GetBusinessDocumentResponse(
            business_document=base64.b64encode(document).decode("ascii"), content_type=entry.content_type,
            content_transfer_encoding="base64",
        )

    @router.get(
        "/Messages/{id}/status", operation_id="GetStatus", responses=ERROR_RESPONSES_WITH_404,
        summary="Get the status of a sent message, per receiver",
        description="When id refers to an application receipt, only StatusInfo.Acknowledged is relevant",
    )
    async def get_status(who: Who, _: V2, message_id: MessageId) -> list[StatusInfo]:
        await require_sender(message_id, who)
        return [
            StatusInfo(
                receiver_her_id=int(status.receiver_her_id), transport_delivery_state=_DELIVERY[status.transport_state],
                app_rec_status=_STATUS_NAMES[status.apprec_status] if status.apprec_status else None,
            )
            for status in await messaging.status(message_id)
        ]

    @router.post(
        "/Messages/{id}/apprec/{appRecSenderHerId}", operation_id="PostAppRec", status_code=201,
        response_model=UUID, responses=ERROR_RESPONSES_WITH_404, summary="Send an application receipt for a message",
        description="AppRecErrorList must be populated unless the status is Ok",
    )
    async def post_apprec(
        request: Request, who: Who, _: V2, message_id: MessageId,
        apprec_sender_her_id: Annotated[int, Path(
            alias="appRecSenderHerId", ge=1, le=MAX_INT32, json_schema_extra={"format": "int32"},
            description="The HER-id of the sender of the application receipt",
        )],
        body: PostAppRecRequest,
    ) -> JSONResponse:
        sender = str(apprec_sender_her_id)
        who.require([sender])
        entries = await messaging.entries(message_id)
        if not entries:
            raise not_found()
        if sender not in {e.receiver_her_id for e in entries}:
            raise ApiError(
                403, f"HerId {sender} is not a receiver of the message, so it cannot answer it",
                ErrorCode.APPREC_FROM_NON_RECEIVER,
            )
        status, errors = _apprec(body)
        try:
            submitted = await messaging.send_apprec(message_id, sender, status, errors)
        except Refused as refused:
            raise _refusal(refused) from None
        except apprec.AppRecNotAllowed as refused:
            raise invalid(str(refused)) from None
        return _created(request, submitted.message_id)

    @router.put(
        "/Messages/{id}/read/{herId}", operation_id="MarkMessageAsRead", status_code=204,
        responses=ERROR_RESPONSES_WITH_404, summary="Mark message as read", response_class=Response,
    )
    async def mark_message_as_read(
        who: Who, _: V2, message_id: MessageId,
        her_id: Annotated[int, Path(
            alias="herId", ge=1, le=MAX_INT32, json_schema_extra={"format": "int32"},
            description="HER-id of the receiver/copy receiver of the message",
        )],
    ) -> Response:
        receiver = str(her_id)
        who.require([receiver])
        entries = await messaging.entries(message_id)
        if not entries:
            raise not_found()
        if receiver not in {e.receiver_her_id for e in entries}:
            raise not_authorised_for_message()
        if not await messaging.mark_read(message_id, receiver):
            raise not_found()
        return Response(status_code=204)

    return router


def _business_document(body: PostMessageRequest, max_bytes: int) -> bytes:
    if body.content_type.split(";")[0].strip().lower() not in _XML_TYPES:
        raise invalid("contentType: the business document must be application/xml")
    if body.content_transfer_encoding.strip().lower() != "base64":
        raise invalid("contentTransferEncoding: the business document must be base64-encoded")
    encoded = body.business_document.encode("ascii", errors="replace")
    if len(encoded) // 4 * 3 > max_bytes + 2:
        raise invalid(too_large_text(max_bytes))
    try:
        document = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        # Line breaks, as MIME encoders write them, are tolerated (as .NET's decoder does); anything else is not.
        try:
            document = base64.b64decode(_WHITESPACE.sub(b"", encoded), validate=True)
        except (binascii.Error, ValueError):
            raise invalid("businessDocument: not valid base64") from None
    if len(document) > max_bytes:
        raise invalid(too_large_text(max_bytes))
    if not _UTF8_DECLARATION.match(document):
        raise invalid(
            "businessDocument: the XML document must be encoded in UTF-8 and declare it in its first line "
            "(<?xml version=\"1.0\" encoding=\"UTF-8\"?>)"
        )
    return document


def too_large_text(max_bytes: int) -> str:
    megabytes = max_bytes / (1024 * 1024)
    return (
        f"businessDocument: the message is larger than the API's limit of {megabytes:g} MB; send large "
        "attachments through the attachment service and refer to them from the document (RefDoc/FileReference)"
    )


def _apprec(body: PostAppRecRequest) -> tuple[apprec.AppRecStatus, list[apprec.AppRecError]]:
    status = _STATUS_CODES[body.app_rec_status]
    errors: list[apprec.AppRecError] = []
    for index, error in enumerate(body.app_rec_error_list or ()):
        code = (error.error_code or "").strip()
        if not _ERROR_CODE.fullmatch(code):
            raise invalid(f"appRecErrorList.{index}.errorCode: an error code (code list 8221, such as E10) is required")
        for name in ("details", "description", "oid"):
            if _NOT_XML_TEXT.search(getattr(error, name) or ""):
                raise invalid(f"appRecErrorList.{index}.{name}: holds characters an XML document cannot carry")
        text = error.details or error.description or APPREC_CODE_TEXT.get(code, code)
        errors.append(apprec.AppRecError(code=code, description=text, system=error.oid or apprec.ERROR_CODE_SYSTEM))
    if status is apprec.AppRecStatus.OK and errors:
        raise invalid("appRecErrorList: an Ok application receipt carries no errors")
    if status is not apprec.AppRecStatus.OK and not errors:
        raise invalid(f"appRecErrorList: a {body.app_rec_status.value} application receipt needs at least one error")
    return status, errors


def _message(entry: MailboxEntry) -> Message:
    return Message(
        id=entry.message_id, content_type=entry.content_type, receiver_her_id=int(entry.receiver_her_id),
        sender_her_id=int(entry.sender_her_id), business_document_id=entry.msg_id,
        business_document_gen_date=entry.gen_date, is_app_rec=entry.is_apprec,
    )


def _created(request: Request, message_id: UUID) -> JSONResponse:
    # Where GetMessage answers (under any mount prefix); built by hand, as url_for costs a route search.
    location = f"{str(request.base_url).rstrip('/')}/Messages/{message_id}"
    return JSONResponse(str(message_id), status_code=201, headers={"Location": location})


def _refusal(refused: Refused) -> ApiError:
    status, code = _REFUSALS[refused.kind]
    reasons = [describe_problem(p) for p in refused.problems] or [refused.message]
    error = "Model validation error occurred" if code is ErrorCode.INVALID_REQUEST else refused.message
    return ApiError(status, error, code, reasons)


def describe_problem(problem: Problem) -> str:
    """A validation problem as the sender's system shows it: the AppRec code and its text, what is wrong, where,
    and the backbone's own code. For example `T02 XML validerer ikke: Element 'RefToConversation': This element
    is not expected. (line 11, /MsgHead/MsgInfo/ConversationRef) [EDI-SCH-001]`."""
    where = ", ".join(part for part in (
        f"line {problem.line}" if problem.line is not None else "", problem.path or "",
    ) if part)
    severity = "" if problem.is_error else "warning: "
    text = APPREC_CODE_TEXT.get(problem.apprec_code, "")
    return (
        f"{severity}{problem.apprec_code} {text}: {problem.message}"
        + (f" ({where})" if where else "") + f" [{problem.code}]"
    )
