"""What the CLI talks to: the local store, or a remote registry over its HTTP API, behind one interface."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from edi.kapabilitetsregister.changes import ChangeRecord
from edi.kapabilitetsregister.import_export import ExportDocument, PartyEntry
from edi.kapabilitetsregister.model import (
    Direction,
    InvalidHerIdError,
    InvalidInputError,
    OverrideEffect,
    Party,
    RegistryError,
    UnknownPartyError,
    UnknownSpecificationError,
)
from edi.kapabilitetsregister.specifications import Specification
from edi.kapabilitetsregister.store import ImportResult, PartyDetails
from edi.kapabilitetsregister.view import CheckResult
from edi.kapabilitetsregister.wire import CheckOut, ErrorOut, GrantIn, OverrideIn

T = TypeVar("T")
TIMEOUT_S = 30.0


class NotAuthorisedError(RegistryError):
    code = "not_authorised"


class RegistryUnavailableError(RegistryError):
    code = "unavailable"


class Registry(Protocol):
    async def close(self) -> None: ...
    async def specifications(self) -> list[Specification]: ...
    async def list_parties(self) -> list[Party]: ...
    async def search_parties(self, text: str) -> list[Party]: ...
    async def party_details(self, her_id: int) -> PartyDetails: ...
    async def check(
        self, receiver: int, specification_id: int | None, at: datetime, sender: int | None = None,
        kind_name: str = "",
    ) -> CheckResult:
        """Under the registry's capability policy; specification None: a kind it does not govern, named."""
        ...
    async def history(self, her_id: int) -> list[ChangeRecord]: ...
    async def export(self) -> ExportDocument: ...
    async def grant(
        self, her_id: int, specification_id: int, direction: Direction, actor: str,
        valid_from: datetime | None = None, valid_to: datetime | None = None,
    ) -> list[ChangeRecord]: ...
    async def revoke(
        self, her_id: int, specification_id: int, direction: Direction, actor: str,
    ) -> list[ChangeRecord]: ...
    async def set_override(
        self, her_id: int, specification_id: int, effect: OverrideEffect, reason: str, actor: str,
    ) -> list[ChangeRecord]: ...
    async def clear_override(self, her_id: int, specification_id: int, actor: str) -> list[ChangeRecord]: ...
    async def import_parties(self, entries: list[PartyEntry], actor: str, *, dry_run: bool = False) -> ImportResult: ...


_ERRORS: dict[str, type[RegistryError]] = {
    kind.code: kind
    for kind in (InvalidInputError, InvalidHerIdError, UnknownSpecificationError, UnknownPartyError)
}
_RECORDS = TypeAdapter(list[ChangeRecord])


class RemoteRegistry:
    """The registry API at `url`; writes send the operator token and the operator's name."""

    def __init__(self, url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=TIMEOUT_S)
        self._url = url

    async def close(self) -> None:
        await self._http.aclose()

    async def specifications(self) -> list[Specification]:
        return TypeAdapter(list[Specification]).validate_python(await self._call("GET", "/specifications"))

    async def list_parties(self) -> list[Party]:
        return TypeAdapter(list[Party]).validate_python(await self._call("GET", "/parties"))

    async def search_parties(self, text: str) -> list[Party]:
        return TypeAdapter(list[Party]).validate_python(await self._call("GET", "/parties", params={"search": text}))

    async def party_details(self, her_id: int) -> PartyDetails:
        return PartyDetails.model_validate(await self._call("GET", f"/capabilities/{her_id}"))

    async def check(
        self, receiver: int, specification_id: int | None, at: datetime, sender: int | None = None,
        kind_name: str = "",
    ) -> CheckResult:
        params: dict[str, Any] = {"receiver": receiver, "at": at.isoformat()}
        if specification_id is not None:
            params["spec"] = specification_id
        if kind_name:
            params["kind"] = kind_name
        if sender is not None:
            params["sender"] = sender
        return CheckOut.model_validate(await self._call("GET", "/check", params=params)).result()

    async def history(self, her_id: int) -> list[ChangeRecord]:
        return _RECORDS.validate_python(await self._call("GET", f"/parties/{her_id}/history"))

    async def export(self) -> ExportDocument:
        return ExportDocument.model_validate(await self._call("GET", "/export"))

    async def grant(
        self, her_id: int, specification_id: int, direction: Direction, actor: str,
        valid_from: datetime | None = None, valid_to: datetime | None = None,
    ) -> list[ChangeRecord]:
        body = GrantIn(valid_from=valid_from, valid_to=valid_to)
        path = f"/parties/{her_id}/capabilities/{specification_id}/{direction.value}"
        return _RECORDS.validate_python(await self._call("PUT", path, actor=actor, body=body))

    async def revoke(self, her_id: int, specification_id: int, direction: Direction, actor: str) -> list[ChangeRecord]:
        path = f"/parties/{her_id}/capabilities/{specification_id}/{direction.value}"
        return _RECORDS.validate_python(await self._call("DELETE", path, actor=actor))

    async def set_override(
        self, her_id: int, specification_id: int, effect: OverrideEffect, reason: str, actor: str,
    ) -> list[ChangeRecord]:
        body = OverrideIn(effect=effect, reason=reason)
        path = f"/parties/{her_id}/overrides/{specification_id}"
        return _RECORDS.validate_python(await self._call("PUT", path, actor=actor, body=body))

    async def clear_override(self, her_id: int, specification_id: int, actor: str) -> list[ChangeRecord]:
        path = f"/parties/{her_id}/overrides/{specification_id}"
        return _RECORDS.validate_python(await self._call("DELETE", path, actor=actor))

    async def import_parties(self, entries: list[PartyEntry], actor: str, *, dry_run: bool = False) -> ImportResult:
        body = TypeAdapter(list[PartyEntry]).dump_json(entries, by_alias=True, exclude_unset=True)
        data = await self._call("POST", "/import", actor=actor, params={"dryRun": dry_run}, content=body)
        return ImportResult.model_validate(data)

    async def _call(
        self, method: str, path: str, *, actor: str | None = None, body: BaseModel | None = None,
        params: dict[str, Any] | None = None, content: bytes | None = None,
    ) -> Any:
        headers = {"X-Operator": actor} if actor else {}
        if body is not None:
            content = body.model_dump_json(by_alias=True).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(method, path, params=params, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(f"the registry at {self._url} cannot be reached: {exc}") from None
        if response.status_code in (401, 403):
            raise NotAuthorisedError(f"the registry refused the write: {_detail(response)} (give --token or set "
                                     "EDI_REGISTRY_OPERATOR_TOKEN)")
        if response.is_success:
            return response.json()
        try:
            error = ErrorOut.model_validate_json(response.content)
        except ValueError:
            raise RegistryUnavailableError(
                f"the registry at {self._url} answered {response.status_code}: {_detail(response)}"
            ) from None
        raise _ERRORS.get(error.code, RegistryError)(error.detail)


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail or response.text[:200] or response.reason_phrase)
