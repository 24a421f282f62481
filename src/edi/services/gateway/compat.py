"""An ASGI layer in front of the routes: what NHN's ASP.NET server does that Starlette does not, a request id for
every request, and the request size limit.

- Paths and query parameter names are matched without regard to case (`/messages?receiverherids=1` works, as
  clients written for NHN's v3 documentation expect), a trailing slash is ignored, and `text/json` bodies are
  read as JSON.
- Every request gets an id, returned in `X-Request-Id` and in every ErrorMessage's `requestId`.
- A body larger than the limit is refused while it is read, so an oversize upload is not held in memory.
"""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edi.services.gateway.errors import invalid

_SEGMENTS = {s.lower(): s for s in (
    "Messages", "business-document", "status", "apprec", "read", "notifications", "stream",
)}
_QUERY_NAMES = {n.lower().encode(): n.encode() for n in (
    "ReceiverHerIds", "SenderHerId", "BusinessDocumentId", "IncludeMetadata", "MessagesToFetch", "OrderBy",
    "HerIds", "Offset", "NotificationsToFetch",
)}
_JSON = b"application/json"


class ContractCompatibility:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, too_large: str) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.too_large = too_large  # what to tell a sender whose request is over the limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        # In the caller's scope itself, so that the outermost error handler (a 500) finds it too.
        scope.setdefault("state", {})["request_id"] = request_id
        scope = dict(scope)
        path = scope["path"].rstrip("/") or "/"  # ASP.NET ignores a trailing slash; Starlette would redirect
        scope["path"] = "/".join(_SEGMENTS.get(part.lower(), part) for part in path.split("/"))
        scope["query_string"] = _canonical_query(scope["query_string"])
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        declared = 0
        for index, (name, value) in enumerate(headers):
            if name == b"content-type" and value.split(b";")[0].strip().lower() == b"text/json":
                headers = [*headers[:index], (name, _JSON), *headers[index + 1:]]
                scope["headers"] = headers
            elif name == b"content-length" and value.isdigit():
                declared = int(value)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared > self.max_body_bytes:
                raise invalid(self.too_large)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise invalid(self.too_large)
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        await self.app(scope, limited_receive, send_with_id)


def _canonical_query(query: bytes) -> bytes:
    if not query:
        return query
    parts: list[bytes] = []
    for pair in query.split(b"&"):
        name, separator, value = pair.partition(b"=")
        parts.append(_QUERY_NAMES.get(name.lower(), name) + separator + value)
    return b"&".join(parts)
