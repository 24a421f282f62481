"""An async client for the EDI 2.0 API (NHN's v2 contract, plus v3-style notifications), over httpx.

It speaks to NHN's service and to this backbone's gateway alike: every request carries the `api-version` and
`nhn-source-system` headers, the access token (as `DPoP <token>` with a fresh proof when the client holds a DPoP
key, else as `Bearer <token>` for a development deployment), and is retried once with the server's nonce when the
server asks for one (401 with `use_dpop_nonce`). `helseid.ClientCredentials` gets the tokens from HelseID.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from edi.auth.dpop import ProofKey, make_proof
from edi.client.models import (
    AppRecError,
    ApprecInfo,
    AppRecStatus,
    ErrorMessage,
    GetBusinessDocumentResponse,
    Message,
    Notification,
    NotificationsResponse,
    OrderBy,
    StatusInfo,
)

SOURCE_SYSTEM = "edi-backbone client, v0.1"
M = TypeVar("M", bound=BaseModel)
_MESSAGES = TypeAdapter(list[Message])
_STATUSES = TypeAdapter(list[StatusInfo])
_APPREC_INFOS = TypeAdapter(list[ApprecInfo])
_ID = TypeAdapter(UUID)


class ApiError(Exception):
    """The API refused a request; `error` is its ErrorMessage when it sent one."""

    def __init__(self, status: int, error: ErrorMessage | None) -> None:
        detail = error.error if error and error.error else f"HTTP {status}"
        reasons = "; ".join(error.validation_errors or ()) if error else ""
        super().__init__(f"{status}: {detail}" + (f" ({reasons})" if reasons else ""))
        self.status = status
        self.error = error

    @property
    def code(self) -> int | None:
        return self.error.error_code if self.error else None


class TokenSource(Protocol):
    async def access_token(self) -> str:
        """A current access token (bound to the client's DPoP key when it has one)."""
        ...


class StaticToken:
    def __init__(self, token: str) -> None:
        self._token = token

    async def access_token(self) -> str:
        return self._token


class EdiClient:
    def __init__(
        self, base_url: str, token: str | TokenSource, *, dpop_key: ProofKey | None = None,
        source_system: str = SOURCE_SYSTEM, api_version: str = "2", timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._tokens = StaticToken(token) if isinstance(token, str) else token
        self._key = dpop_key
        self._nonce: str | None = None  # the server's latest DPoP nonce, reused until it sends another
        self._headers = {"api-version": api_version, "nhn-source-system": source_system}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    async def __aenter__(self) -> EdiClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- sending ---

    async def post_message(self, document: bytes, *, receiver_subset: Sequence[int] | None = None) -> UUID:
        """Sends a business document (UTF-8 XML); returns its message id once the service holds it durably."""
        body: dict[str, Any] = {
            "businessDocument": base64.b64encode(document).decode("ascii"),
            "contentType": "application/xml", "contentTransferEncoding": "base64",
        }
        if receiver_subset is not None:
            body["receiverHerIdsSubset"] = list(receiver_subset)
        response = await self.request("POST", "/Messages", json=body, expect=201)
        return _ID.validate_python(response.json())

    async def status(self, message_id: UUID) -> list[StatusInfo]:
        """Per receiver: transport state (Unconfirmed, Acknowledged, Rejected) and AppRec status."""
        response = await self.request("GET", f"/Messages/{message_id}/status")
        return _STATUSES.validate_json(response.content)

    async def apprec_info(self, message_id: UUID) -> list[ApprecInfo]:
        response = await self.request("GET", f"/Messages/{message_id}/apprec")
        return _APPREC_INFOS.validate_json(response.content)

    # --- receiving ---

    async def messages(
        self, receiver_her_ids: Iterable[int], *, sender_her_id: int | None = None,
        business_document_id: str | None = None, include_metadata: bool = False, limit: int = 10,
        order: OrderBy = OrderBy.ASCENDING,
    ) -> list[Message]:
        """Unread messages for these HER-ids, by the document's GenDate."""
        params: dict[str, Any] = {
            "ReceiverHerIds": list(receiver_her_ids), "IncludeMetadata": str(include_metadata).lower(),
            "MessagesToFetch": limit, "OrderBy": order.value,
        }
        if sender_her_id is not None:
            params["SenderHerId"] = sender_her_id
        if business_document_id is not None:
            params["BusinessDocumentId"] = business_document_id
        response = await self.request("GET", "/Messages", params=params)
        return _MESSAGES.validate_json(response.content)

    async def message(self, message_id: UUID) -> Message:
        return _model(Message, await self.request("GET", f"/Messages/{message_id}"))

    async def business_document(self, message_id: UUID) -> bytes:
        response = await self.request("GET", f"/Messages/{message_id}/business-document")
        return base64.b64decode(_model(GetBusinessDocumentResponse, response).business_document)

    async def mark_read(self, message_id: UUID, her_id: int) -> None:
        await self.request("PUT", f"/Messages/{message_id}/read/{her_id}", expect=204)

    async def post_apprec(
        self, message_id: UUID, sender_her_id: int, status: AppRecStatus, errors: Sequence[AppRecError] = (),
    ) -> UUID:
        """Answers a received message with an application receipt from `sender_her_id` (a receiver of it)."""
        body = {
            "appRecStatus": status.value,
            "appRecErrorList": [e.model_dump(by_alias=True, exclude_none=True) for e in errors],
        }
        response = await self.request("POST", f"/Messages/{message_id}/apprec/{sender_her_id}", json=body, expect=201)
        return _ID.validate_python(response.json())

    # --- notifications ---

    async def notifications(self, her_ids: Iterable[int], *, offset: int = 0, limit: int = 100) -> list[Notification]:
        params = {"HerIds": list(her_ids), "Offset": offset, "NotificationsToFetch": limit}
        return _model(NotificationsResponse, await self.request("GET", "/notifications", params=params)).notifications

    async def stream(
        self, her_ids: Iterable[int], *, offset: int = 0, reconnect: bool = True,
    ) -> AsyncIterator[Notification]:
        """Notifications as they happen (server-sent events), after `offset`. When the connection drops, it
        reconnects after the server's retry interval and resumes after the last notification it yielded."""
        wanted = list(her_ids)
        position = offset
        retry_seconds = 3.0
        while True:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(position)}
            params = {"HerIds": wanted, "Offset": position}
            try:
                async with await self._open("GET", "/notifications/stream", params=params, headers=headers) as events:
                    async for field, value in _server_sent_events(events):
                        if field == "retry" and value.isdigit():
                            retry_seconds = int(value) / 1000
                        elif field == "data":
                            notification = Notification.model_validate_json(value)
                            position = max(position, notification.offset)
                            yield notification
            except (httpx.TransportError, httpx.RemoteProtocolError):
                if not reconnect:
                    raise
            else:
                if not reconnect:
                    return
            await asyncio.sleep(retry_seconds)

    # --- the plumbing ---

    async def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
        expect: int = 200,
    ) -> httpx.Response:
        """One API call with authentication and the nonce retry; raises ApiError unless the status is `expect`."""
        response = await self._send(method, path, params=params, json=json)
        if response.status_code != expect:
            raise _api_error(response)
        return response

    async def _send(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
        headers: Mapping[str, str] | None = None, stream: bool = False,
    ) -> httpx.Response:
        token = await self._tokens.access_token()
        for attempt in range(2):
            request = self._http.build_request(
                method, path, params=params, json=json, headers={**self._headers, **(headers or {})},
            )
            request.headers.update(self._authorization(request, token))
            response = await self._http.send(request, stream=stream)
            offered = response.headers.get("DPoP-Nonce")
            if offered:
                self._nonce = offered
            wants_nonce = "use_dpop_nonce" in response.headers.get("WWW-Authenticate", "")
            if attempt == 0 and offered and self._key is not None and response.status_code == 401 and wants_nonce:
                await response.aclose()
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _open(
        self, method: str, path: str, *, params: Mapping[str, Any], headers: Mapping[str, str],
    ) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
        response = await self._send(method, path, params=params, headers=headers, stream=True)
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            raise _api_error(response)

        @contextlib.asynccontextmanager
        async def opened() -> AsyncIterator[httpx.Response]:
            try:
                yield response
            finally:
                await response.aclose()

        return opened()

    def _authorization(self, request: httpx.Request, token: str) -> dict[str, str]:
        if self._key is None:
            return {"Authorization": f"Bearer {token}"}
        proof = make_proof(self._key, request.method, str(request.url), access_token=token, nonce=self._nonce)
        return {"Authorization": f"DPoP {token}", "DPoP": proof}


async def _server_sent_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(field, value) per event field; `data` lines of one event are joined, and yielded when the event ends."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield "data", "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        else:
            yield field, value


def _model(model: type[M], response: httpx.Response) -> M:
    return model.model_validate_json(response.content)


def _api_error(response: httpx.Response) -> ApiError:
    try:
        error: ErrorMessage | None = ErrorMessage.model_validate_json(response.content)
    except ValidationError:
        error = None
    return ApiError(response.status_code, error)
