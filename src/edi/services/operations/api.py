"""The operator tools over HTTP: the gateway's /ops routes, what `edi ops` does, for operators only.

An operator's access token is one the gateway trusts (same issuers, audience and DPoP binding as any) whose scope
holds the operator scope (EDI_OPS_SCOPE, default `edi:ops`); a token without it gets 403. The token's client is
the operator the audit trail names. Errors have the gateway's ErrorMessage shape: 404 for an unknown message or
dead letter, 409 for an action refused (e.g. a dead letter re-driven or parked before), 400 for bad input, 503
while the bus cannot be read.

The paths follow `edi ops`: /ops/find, /ops/history/{id}, /ops/resend-receipt/{id}, /ops/dead-letters[/{service}/
{offset}[/redrive|/park]], /ops/backlog, /ops/coverage, /ops/audit. (Not /ops/messages: the gateway reads any
`messages` segment as the contract's `Messages`.)

No `from __future__ import annotations` here: FastAPI must see the route parameters' types, and `Operator` is
local to the router it binds.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edi.adapters.bus import BusError
from edi.kapabilitetsregister.model import as_utc
from edi.services.gateway.access import Caller
from edi.services.gateway.errors import ERROR_RESPONSES, ApiError, ErrorCode, invalid
from edi.services.operations.models import (
    AuditEntry,
    Backlog,
    CoverageEntry,
    DeadLetterView,
    History,
    MessageStatus,
    MessageSummary,
    ReceiptResent,
    Redriven,
)
from edi.services.operations.service import NotFoundError, OperationRefusedError, Operations
from edi.services.store.store import COVERAGE_LIMIT

PREFIX = "/ops"
T = TypeVar("T")


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    ops_scope: str = "edi:ops"  # the scope an access token needs for /ops


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, description="Why: it goes into the audit trail.")


_RESPONSES: dict[int | str, dict[str, object]] = {
    **ERROR_RESPONSES, 404: {"description": "No such message or dead letter"},
    409: {"description": "The action is refused (the error says why)"},
}


async def _guarded(action: Awaitable[T]) -> T:
    try:
        return await action
    except NotFoundError as exc:
        raise ApiError(404, str(exc), ErrorCode.NOT_FOUND) from None
    except OperationRefusedError as exc:
        raise ApiError(409, str(exc)) from None
    except ValueError as exc:
        raise invalid(str(exc)) from None
    except BusError:
        raise ApiError(503, "the bus cannot be read now; try again") from None


def operations_router(operations: Operations, authenticate: Callable[[Request], Awaitable[Caller]]) -> APIRouter:
    """`authenticate`: the gateway's authenticator for tokens with the operator scope."""
    router = APIRouter(prefix=PREFIX, tags=["operations"], responses=_RESPONSES)
    Operator = Annotated[Caller, Depends(authenticate)]

    @router.get("/find", operation_id="OpsFindMessages")
    async def find(
        _: Operator, msg_id: Annotated[str | None, Query(alias="msgId")] = None,
        message_id: Annotated[UUID | None, Query(alias="messageId")] = None,
        her_id: Annotated[str | None, Query(alias="herId")] = None, status: MessageStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> list[MessageSummary]:
        return await _guarded(operations.find(msg_id=msg_id, message_id=message_id, her_id=her_id, status=status,
                                              limit=limit))

    @router.get("/history/{message_id}", operation_id="OpsHistory")
    async def history(_: Operator, message_id: UUID) -> History:
        return await _guarded(operations.history(message_id))

    @router.post("/resend-receipt/{message_id}", operation_id="OpsResendReceipt")
    async def resend_receipt(who: Operator, message_id: UUID, body: Reason) -> list[ReceiptResent]:
        return await _guarded(operations.resend_receipt(message_id, operator=who.subject, reason=body.reason))

    @router.get("/dead-letters", operation_id="OpsDeadLetters")
    async def dead_letters(
        _: Operator, service: str | None = None, everything: Annotated[bool, Query(alias="all")] = False,
    ) -> list[DeadLetterView]:
        return await _guarded(operations.dead_letters(service, everything=everything))

    @router.get("/dead-letters/{service}/{offset}", operation_id="OpsDeadLetter")
    async def dead_letter(_: Operator, service: str, offset: int) -> DeadLetterView:
        return await _guarded(operations.dead_letter(service, offset))

    @router.post("/dead-letters/{service}/{offset}/redrive", operation_id="OpsRedrive")
    async def redrive(who: Operator, service: str, offset: int, body: Reason) -> Redriven:
        return await _guarded(operations.redrive(service, offset, operator=who.subject, reason=body.reason))

    @router.post("/dead-letters/{service}/{offset}/park", operation_id="OpsPark")
    async def park(who: Operator, service: str, offset: int, body: Reason) -> DeadLetterView:
        return await _guarded(operations.park(service, offset, operator=who.subject, reason=body.reason))

    @router.get("/backlog", operation_id="OpsBacklog")
    async def backlog(_: Operator, her_id: Annotated[str | None, Query(alias="herId")] = None) -> list[Backlog]:
        return await _guarded(operations.backlog(her_id))

    @router.get("/coverage", operation_id="OpsCoverage")
    async def coverage(
        _: Operator, since: datetime | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = COVERAGE_LIMIT,
    ) -> list[CoverageEntry]:
        """The (receiver, kind) pairs delivered without a capability check, the most frequent first."""
        return await _guarded(operations.coverage(None if since is None else as_utc(since), limit))

    @router.get("/audit", operation_id="OpsAudit")
    async def audit(_: Operator, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditEntry]:
        return await _guarded(operations.audit(limit=limit))

    return router
