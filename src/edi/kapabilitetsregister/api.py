"""The registry's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Reads are open; writes need the operator token (`Authorization: Bearer <EDI_REGISTRY_OPERATOR_TOKEN>`) and are
recorded under the name in the `X-Operator` header.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from edi.core.kinds import MessageKind
from edi.kapabilitetsregister.changes import ChangeRecord
from edi.kapabilitetsregister.import_export import ExportDocument, parse_import
from edi.kapabilitetsregister.model import (
    Direction,
    InvalidInputError,
    Party,
    RegistryError,
    UnknownPartyError,
    as_utc,
    parse_her_id,
)
from edi.kapabilitetsregister.settings import RegistrySettings
from edi.kapabilitetsregister.specifications import Specification, read_routing_header
from edi.kapabilitetsregister.store import ImportResult, PartyDetails, RegistryStore
from edi.kapabilitetsregister.wire import CheckOut, ErrorOut, GrantIn, MessageCheckOut, OverrideIn

_STATUS = {UnknownPartyError: 404, InvalidInputError: 422}


def _store(request: Request) -> RegistryStore:
    registry: RegistryStore = request.app.state.store
    return registry


def _operator(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_operator: Annotated[str | None, Header()] = None,
) -> str:
    """The name a write is recorded under, once the bearer token has been checked."""
    settings: RegistrySettings = request.app.state.settings
    token = settings.registry_operator_token
    if token is None:
        raise HTTPException(403, "operator writes are disabled: no EDI_REGISTRY_OPERATOR_TOKEN is configured")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise HTTPException(401, "a valid operator token is required", headers={"WWW-Authenticate": "Bearer"})
    return f"{(x_operator or 'operator').strip()} (api)"


# Module level, so that FastAPI can resolve these annotations by name.
Store = Annotated[RegistryStore, Depends(_store)]
Operator = Annotated[str, Depends(_operator)]


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.store = await RegistryStore.open(settings.database_url, policy=settings.capability_policy)
        try:
            yield
        finally:
            await app.state.store.close()

    app = FastAPI(
        title="Kapabilitetsregister",
        summary="Which message specifications each communication party (HER-id) can Consume and Produce.",
        version="1",
        lifespan=lifespan,
        responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    )

    @app.exception_handler(RegistryError)
    async def registry_error(_: Request, exc: RegistryError) -> JSONResponse:
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
        return JSONResponse(ErrorOut(code=exc.code, detail=str(exc)).model_dump(), status_code=status)

    def specification(registry: RegistryStore, text: str) -> Specification:
        return registry.catalogue.resolve(text)

    @app.get("/specifications", tags=["specifications"])
    async def list_specifications(registry: Store) -> list[Specification]:
        return list(registry.catalogue)

    @app.get("/specifications/{spec}", tags=["specifications"])
    async def get_specification(registry: Store, spec: str) -> Specification:
        """A specification by id, capability name (DialogmeldingHelsefagligDialog1.1) or display name."""
        return specification(registry, spec)

    @app.get("/capabilities/{her_id}", tags=["capabilities"], response_model_by_alias=True)
    async def capabilities(registry: Store, her_id: str) -> PartyDetails:
        """What a party supports: its own capabilities, or its organisation's when it has none, and overrides."""
        return await registry.party_details(parse_her_id(her_id))

    @app.get("/check", tags=["capabilities"])
    async def check(
        registry: Store,
        receiver: str,
        spec: Annotated[str | None, Query(
            description="id, capability name or display name; none: a kind of message the registry does not govern")
        ] = None,
        kind: Annotated[str, Query(description="the kind's name, for the answer's reason", max_length=200)] = "",
        sender: str | None = None,
        at: datetime | None = None,
    ) -> CheckOut:
        """May a message of this specification be delivered to the receiver (and, if named, sent by the sender),
        under this registry's capability policy (EDI_CAPABILITY_POLICY)?"""
        if spec is None and not kind:
            raise InvalidInputError("give spec (a specification), or kind (the name of a kind of message the "
                                    "registry does not govern)")
        moment = datetime.now(UTC) if at is None else as_utc(at)
        result = await registry.check(
            parse_her_id(receiver), None if spec is None else specification(registry, spec).id, moment,
            None if sender is None else parse_her_id(sender), kind,
        )
        return CheckOut.of(result, moment)

    @app.post("/check/message", tags=["capabilities"])
    async def check_message(
        request: Request, registry: Store, receiver: str | None = None, at: datetime | None = None,
    ) -> MessageCheckOut:
        """Body: a message (XML). Checks the receiver given, or else every receiver and copy receiver the message
        names; also the sender's Produce capability when EDI_REGISTRY_CHECK_SENDER_PRODUCE is on."""
        header = read_routing_header(await request.body(), "the message")
        moment = datetime.now(UTC) if at is None else as_utc(at)
        receivers = [parse_her_id(r) for r in ([receiver] if receiver else header.receiver_her_ids)]
        if not receivers:
            raise InvalidInputError("the message names no receiver HER-id")
        sender = header.sender_her_id if settings.registry_check_sender_produce else None
        sender_id = None if sender is None else parse_her_id(sender)
        kind = MessageKind.of(header)
        spec = registry.catalogue.recognise(kind)
        results = [
            await registry.check(her_id, None if spec is None else spec.id, moment, sender_id, kind.description)
            for her_id in receivers
        ]
        return MessageCheckOut(
            allowed=all(r.allowed for r in results), specification_id=None if spec is None else spec.id,
            description=kind.description, kind=kind.name, governed=spec is not None,
            results=[CheckOut.of(r, moment) for r in results],
        )

    @app.get("/parties", tags=["parties"])
    async def parties(registry: Store, search: str | None = None) -> list[Party]:
        return await (registry.search_parties(search) if search else registry.list_parties())

    @app.get("/parties/{her_id}/history", tags=["parties"])
    async def history(registry: Store, her_id: str) -> list[ChangeRecord]:
        return await registry.history(parse_her_id(her_id))

    @app.put("/parties/{her_id}/capabilities/{spec}/{direction}", tags=["operator"])
    async def grant(
        registry: Store, actor: Operator, her_id: str, spec: str, direction: Direction, body: GrantIn | None = None,
    ) -> list[ChangeRecord]:
        period = body or GrantIn()
        return await registry.grant(parse_her_id(her_id), specification(registry, spec).id, direction, actor,
                                    period.valid_from, period.valid_to)

    @app.delete("/parties/{her_id}/capabilities/{spec}/{direction}", tags=["operator"])
    async def revoke(
        registry: Store, actor: Operator, her_id: str, spec: str, direction: Direction,
    ) -> list[ChangeRecord]:
        return await registry.revoke(parse_her_id(her_id), specification(registry, spec).id, direction, actor)

    @app.put("/parties/{her_id}/overrides/{spec}", tags=["operator"])
    async def set_override(
        registry: Store, actor: Operator, her_id: str, spec: str, body: OverrideIn,
    ) -> list[ChangeRecord]:
        return await registry.set_override(parse_her_id(her_id), specification(registry, spec).id, body.effect,
                                           body.reason, actor)

    @app.delete("/parties/{her_id}/overrides/{spec}", tags=["operator"])
    async def clear_override(registry: Store, actor: Operator, her_id: str, spec: str) -> list[ChangeRecord]:
        return await registry.clear_override(parse_her_id(her_id), specification(registry, spec).id, actor)

    @app.post("/import", tags=["operator"])
    async def import_parties(
        request: Request, registry: Store, actor: Operator, dry_run: Annotated[bool, Query(alias="dryRun")] = False,
    ) -> ImportResult:
        """Body: the import document, JSON or (Content-Type text/csv) CSV; see `kapreg import`."""
        is_csv = request.headers.get("content-type", "").startswith("text/csv")
        entries = parse_import(await request.body(), "import.csv" if is_csv else "import.json")
        return await registry.import_parties(entries, actor, dry_run=dry_run)

    @app.get("/export", tags=["parties"], response_model_exclude_none=True)
    async def export(registry: Store) -> ExportDocument:
        return await registry.export()

    @app.get("/changes", tags=["changes"])
    async def changes(
        registry: Store, after: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[ChangeRecord]:
        """The change records after a sequence number, in order: what feeds the routers' in-memory views."""
        return await registry.changes(after, limit)

    return app
