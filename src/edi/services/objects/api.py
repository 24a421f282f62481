"""The object API, in the shape of Norsk helsenett's DEFT: upload a file, get a URL to put in MsgHead's
RefDoc/FileReference, let each receiver fetch it and confirm.

    POST   /objects                                      streamed multipart/form-data: SenderHerId, ReceiverHerIds
                                                         (repeated), then the file
    POST   /objects/initialization                       start an upload in parts (JSON)
    POST   /objects/{key}/part?partNumber=N              one part, the raw bytes; answers its ETag
    POST   /objects/{key}/completion                     join the parts (JSON: partNumber and eTag of each)
    POST   /objects/{key}/cancellation                   drop an upload in parts
    GET    /objects/{key}                                the bytes (sender and receivers)
    DELETE /objects/{key}                                delete now (sender)
    PUT    /objects/{key}/download-receipt/{markerHerId} a receiver confirms; the last confirmation deletes it
    GET    /objects/{key}/download-status                who has confirmed (sender and receivers)

Who calls is the `caller_her_ids` dependency's answer (the HER-ids the caller's token holds), so the gateway's
authentication plugs in unchanged. Only an object's sender and receivers may touch it (403 otherwise); a caller
may upload only as a sender it holds. Bodies stream both ways: an object never sits in memory whole.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException

from edi.adapters.blobs import BlobNotFound, BlobStoreError, BlobStoreUnavailable, IntegrityError, InvalidUpload
from edi.services.objects.forms import FormError, FormFile, read_form
from edi.services.objects.service import (
    DeletedReason,
    InvalidObjectRequest,
    ObjectConflict,
    ObjectError,
    ObjectGone,
    ObjectNotFound,
    ObjectRecord,
    ObjectService,
    ObjectTooLarge,
    State,
    unavailable,
)

log = structlog.get_logger("edi.objects")

CallerHerIds = Callable[..., Awaitable[frozenset[str]]] | Callable[..., frozenset[str]]
RETRY_AFTER_S = 5  # what a client is told to wait when the blob store is unreachable


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class ReceiverStatus(_Camel):
    her_id: str
    download_confirmed: bool
    confirmed_at: datetime | None


class ObjectStatus(_Camel):
    key: str
    url: str = Field(description="The object's URL, for RefDoc/FileReference")
    sender_her_id: str
    receivers: list[ReceiverStatus]
    content_type: str
    file_name: str | None
    size: int | None = Field(description="Bytes; null until an upload in parts is complete")
    sha256: str | None = Field(description="Lower-case hex; null until an upload in parts is complete")
    state: State
    created: datetime
    deleted_at: datetime | None
    deleted_reason: DeletedReason | None


class InitiateRequest(_Camel):
    sender_her_id: str
    receiver_her_ids: list[str]
    content_type: str = "application/octet-stream"
    file_name: str | None = None


class PartResult(_Camel):
    part_number: int
    e_tag: str = Field(alias="eTag")


class CompleteRequest(_Camel):
    parts: list[PartResult] = Field(min_length=1)


def objects_router(service: ObjectService, caller_her_ids: CallerHerIds) -> APIRouter:
    """The object API's routes, for the gateway to include (under its authentication and error handlers)."""
    router = APIRouter(tags=["objects"], route_class=_ObjectRoute)
    # A default rather than Annotated: these annotations are strings, resolved where no local name is visible.
    held = Depends(caller_her_ids)

    def status(record: ObjectRecord) -> ObjectStatus:
        return ObjectStatus(
            key=record.key, url=service.url_for(record.key), sender_her_id=record.sender_her_id,
            receivers=[ReceiverStatus(her_id=r.her_id, download_confirmed=r.confirmed_at is not None,
                                      confirmed_at=r.confirmed_at) for r in record.receivers],
            content_type=record.content_type, file_name=record.file_name, size=record.size, sha256=record.sha256,
            state=record.state, created=record.created_at, deleted_at=record.deleted_at,
            deleted_reason=record.deleted_reason,
        )

    async def authorised(key: str, her_ids: frozenset[str], *, sender_only: bool = False) -> ObjectRecord:
        record = await service.record(key)
        allowed = record.sender_her_id in her_ids if sender_only else record.concerns(her_ids)
        if not allowed:
            who = "its sender" if sender_only else "its sender or one of its receivers"
            raise HTTPException(403, f"Not authorized for object {key}: only {who} may do this")
        return record

    @router.post("/objects", status_code=201, response_model=ObjectStatus, response_model_by_alias=True)
    async def upload(request: Request, response: Response, her_ids: frozenset[str] = held) -> ObjectStatus:
        """The form's SenderHerId and ReceiverHerIds fields must come before its file part."""
        sender: str | None = None
        receivers: list[str] = []
        record: ObjectRecord | None = None
        async for item in read_form(request.stream(), request.headers.get("content-type", "")):
            if isinstance(item, FormFile):
                if record is not None:
                    raise HTTPException(400, "one file per object")
                if sender is None:
                    raise HTTPException(400, "SenderHerId (and ReceiverHerIds) must come before the file part")
                _require_held(her_ids, sender)
                record = await service.put(sender=sender, receivers=receivers, data=item.chunks,
                                           content_type=item.content_type, file_name=item.file_name)
            elif item.name == "SenderHerId":
                sender = item.value.strip()
            elif item.name == "ReceiverHerIds":
                receivers.extend(part for part in item.value.replace(",", " ").split())
        if record is None:
            raise HTTPException(400, "the form has no file part")
        response.headers["Location"] = service.url_for(record.key)
        return status(record)

    @router.post("/objects/initialization", status_code=201, response_model=ObjectStatus,
                 response_model_by_alias=True)
    async def initiate(body: InitiateRequest, response: Response, her_ids: frozenset[str] = held) -> ObjectStatus:
        _require_held(her_ids, body.sender_her_id)
        record = await service.initiate(sender=body.sender_her_id, receivers=body.receiver_her_ids,
                                        content_type=body.content_type, file_name=body.file_name)
        response.headers["Location"] = service.url_for(record.key)
        return status(record)

    @router.post("/objects/{key}/part", response_model=PartResult, response_model_by_alias=True)
    async def upload_part(
        key: str, request: Request, response: Response,
        part_number: Annotated[int, Query(alias="partNumber", ge=1, le=10_000)], her_ids: frozenset[str] = held,
    ) -> PartResult:
        await authorised(key, her_ids, sender_only=True)
        part = await service.upload_part(key, part_number, request.stream())
        response.headers["ETag"] = part.etag
        return PartResult(part_number=part.part_number, e_tag=part.etag)

    @router.post("/objects/{key}/completion", response_model=ObjectStatus, response_model_by_alias=True)
    async def complete(key: str, body: CompleteRequest, her_ids: frozenset[str] = held) -> ObjectStatus:
        await authorised(key, her_ids, sender_only=True)
        parts = {part.part_number: part.e_tag for part in body.parts}
        if len(parts) != len(body.parts):
            raise HTTPException(400, "a part number is listed twice")
        return status(await service.complete(key, parts))

    @router.post("/objects/{key}/cancellation", status_code=204)
    async def cancel(key: str, her_ids: frozenset[str] = held) -> None:
        record = await authorised(key, her_ids, sender_only=True)
        if record.state is State.STORED:
            raise HTTPException(409, f"object {key} is complete; delete it instead")
        await service.delete(key, DeletedReason.CANCELLED)

    @router.get("/objects/{key}", response_class=StreamingResponse)
    async def download(key: str, her_ids: frozenset[str] = held) -> StreamingResponse:
        record = await authorised(key, her_ids)
        if (reason := unavailable(record)) is not None:
            raise reason
        assert record.size is not None and record.sha256 is not None
        chunks = await _checked_ahead(key, service.read(key))
        headers = {
            "Content-Length": str(record.size),
            "ETag": f'"{record.sha256}"',
            "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(record.sha256)).decode()}:",
        }
        if record.file_name:
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(record.file_name, safe='')}"
        return StreamingResponse(chunks, media_type=record.content_type, headers=headers)

    @router.delete("/objects/{key}", status_code=204)
    async def delete(key: str, her_ids: frozenset[str] = held) -> None:
        await authorised(key, her_ids, sender_only=True)
        await service.delete(key)

    @router.put("/objects/{key}/download-receipt/{marker_her_id}", response_model=ObjectStatus,
                response_model_by_alias=True)
    async def confirm(key: str, marker_her_id: str, her_ids: frozenset[str] = held) -> ObjectStatus:
        record = await authorised(key, her_ids)
        _require_held(her_ids, marker_her_id)
        if marker_her_id not in record.receiver_her_ids:
            raise HTTPException(403, f"{marker_her_id} is not a receiver of object {key}")
        return status(await service.confirm(key, marker_her_id))

    @router.get("/objects/{key}/download-status", response_model=ObjectStatus, response_model_by_alias=True)
    async def download_status(key: str, her_ids: frozenset[str] = held) -> ObjectStatus:
        return status(await authorised(key, her_ids))

    return router


def create_objects_app(service: ObjectService, caller_her_ids: CallerHerIds) -> FastAPI:
    """The object API as an application of its own (tests, benchmarks, a separate deployment). Closes the
    service when it shuts down."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(title="EDI objects", description=__doc__, lifespan=lifespan)
    app.include_router(objects_router(service, caller_her_ids))
    return app


class _ObjectRoute(APIRoute):
    """Turns the object service's and blob store's errors into HTTP errors where they are raised, so that the
    routes answer the same in any application that includes them (its HTTPException handler shapes the body)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def translated(request: Request) -> Response:
            try:
                return await handler(request)
            except (ObjectError, BlobStoreError, FormError) as exc:
                status_code = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
                if isinstance(exc, IntegrityError):
                    log.error("corrupt object not delivered", key=exc.key, error=str(exc))
                headers = {"Retry-After": str(RETRY_AFTER_S)} if isinstance(exc, BlobStoreUnavailable) else None
                raise HTTPException(status_code, str(exc), headers) from None

        return translated


_STATUS: list[tuple[type[Exception], int]] = [
    (ObjectNotFound, 404),
    (BlobNotFound, 404),
    (ObjectGone, 410),
    (ObjectConflict, 409),
    (InvalidObjectRequest, 400),
    (InvalidUpload, 400),
    (FormError, 400),
    (ObjectTooLarge, 413),
    (BlobStoreUnavailable, 503),
]


def _require_held(her_ids: frozenset[str], her_id: str) -> None:
    if her_id not in her_ids:
        raise HTTPException(403, f"Not authorized for HerId(s): {her_id}")


async def _checked_ahead(key: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks, one behind the store: each is sent only once the next has been read, so the store's checks
    run before the last chunk leaves. A corrupt object thus never reaches a client complete (it sees a transfer
    cut short, never a whole wrong file), and one that fits in a chunk is refused with a clean error status."""
    held = await anext(chunks, None)
    following = await anext(chunks, None)

    async def stream() -> AsyncIterator[bytes]:
        current, upcoming = held, following
        try:
            while current is not None:
                yield current
                current, upcoming = upcoming, await anext(chunks, None)
        except IntegrityError as exc:
            log.error("corrupt object not delivered", key=key, error=str(exc))
            raise

    return stream()
