"""Who is calling: the HER-ids a verified access token lets the caller act as.

The gateway authorises every request from this: a caller may name only HER-ids it holds (else 403, 1202) and may
touch only messages it sent or that are addressed to a HER-id it holds (else 403, 1201).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request

from edi.auth.tokens import TokenVerifier
from edi.kapabilitetsregister.model import Party
from edi.services.gateway.errors import ApiError, ErrorCode, not_authorised_for

DIRECTORY_TTL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str
    her_ids: frozenset[str]
    expires_at: float

    def require(self, her_ids: Iterable[str]) -> None:
        missing = [h for h in her_ids if h not in self.her_ids]
        if missing:
            raise not_authorised_for(missing)


class OrganisationDirectory(Protocol):
    async def her_ids_of(self, organisation_number: str) -> frozenset[str]:
        """Every HER-id of the organisation: for tokens with herid 0."""
        ...


class PartySource(Protocol):
    """The capability registry's store or its HTTP client."""

    async def list_parties(self) -> list[Party]: ...


class RegistryDirectory:
    """herid 0 through the capability registry: the parties registered under the organisation number and every
    party below them (services and persons, by parent HER-id). The party list is re-read at most once a minute,
    so a new service takes that long to be included."""

    def __init__(self, parties: PartySource, ttl_seconds: float = DIRECTORY_TTL_SECONDS) -> None:
        self._source = parties
        self._ttl = ttl_seconds
        self._parties: list[Party] = []
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def her_ids_of(self, organisation_number: str) -> frozenset[str]:
        parties = await self._current()
        children: dict[int, list[int]] = {}
        for party in parties:
            if party.parent_her_id is not None:
                children.setdefault(party.parent_her_id, []).append(party.her_id)
        pending = [p.her_id for p in parties if p.organisation_number == organisation_number]
        found: set[int] = set()
        while pending:
            her_id = pending.pop()
            if her_id not in found:
                found.add(her_id)
                pending.extend(children.get(her_id, ()))
        return frozenset(str(h) for h in found)

    async def _current(self) -> list[Party]:
        if time.monotonic() - self._read_at > self._ttl:
            async with self._lock:
                if time.monotonic() - self._read_at > self._ttl:
                    self._parties = await self._source.list_parties()
                    self._read_at = time.monotonic()
        return self._parties


class Authenticator:
    def __init__(
        self, verifier: TokenVerifier, directory: OrganisationDirectory | None, public_url: str | None,
    ) -> None:
        self._verifier = verifier
        self._directory = directory
        self._public_url = public_url.rstrip("/") if public_url else None

    async def caller(self, request: Request) -> Caller:
        grant = await self._verifier.verify(
            authorization=request.headers.get("authorization"), dpop=request.headers.getlist("dpop"),
            method=request.method, url=self._url(request), now=time.time(),
        )
        her_ids = grant.her_ids
        if grant.whole_organisation and grant.organisation is not None:
            if self._directory is None:
                raise ApiError(
                    403, "herid 0 (every HER-id of the organisation) needs the capability registry, and this "
                    "gateway has none", ErrorCode.NOT_AUTHORISED_FOR_HER_ID,
                )
            her_ids = await self._directory.her_ids_of(grant.organisation)
        return Caller(grant.subject, her_ids, grant.expires_at)

    def _url(self, request: Request) -> str:
        """The URL the client called, as its DPoP proof names it: the path as sent (before the gateway's own
        normalisation, and including any mount prefix), under the public base URL when one is configured."""
        raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
        path = raw.decode("latin-1")
        if self._public_url:
            return self._public_url + path
        return f"{request.url.scheme}://{request.url.netloc}{path}"
