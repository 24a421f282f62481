"""The issuer's token-signing keys: a JWKS from a file, or fetched from the issuer's JWKS URL and cached."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Protocol, cast

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization

from edi.auth.errors import AuthError

REFRESH_SECONDS = 600.0  # keys are re-read this often anyway
UNKNOWN_KID_BACKOFF_SECONDS = 30.0  # an unknown key id triggers a re-read, at most this often (key rotation)


class KeySource(Protocol):
    async def key_set(self, kid: str | None) -> KeySet:
        """The keys to verify a token signed with key `kid`."""
        ...


class StaticKeys:
    def __init__(self, keys: KeySet) -> None:
        self._keys = keys

    @classmethod
    def from_file(cls, path: Path) -> StaticKeys:
        return cls(parse_jwks(json.loads(path.read_text(encoding="utf-8")), str(path)))

    async def key_set(self, kid: str | None) -> KeySet:
        return self._keys


class RemoteJwks:
    """The JWKS at `url`, re-read every REFRESH_SECONDS and when a token names a key id it does not hold."""

    def __init__(self, url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._url = url
        self._transport = transport
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key_set(self, kid: str | None) -> KeySet:
        if self._needs_fetch(kid):
            async with self._lock:
                if self._needs_fetch(kid):  # nobody fetched while this request waited
                    await self._fetch()
        if self._keys is None:
            raise AuthError("invalid_token", "the issuer's signing keys are not available")
        return self._keys

    def _needs_fetch(self, kid: str | None) -> bool:
        now = time.monotonic()
        if now - self._attempted_at < UNKNOWN_KID_BACKOFF_SECONDS:
            return False
        unknown = kid is not None and kid not in self._kids
        return self._keys is None or unknown or now - self._fetched_at > REFRESH_SECONDS

    async def _fetch(self) -> None:
        self._attempted_at = time.monotonic()
        try:
            # A client per fetch: fetches are minutes apart, and nothing is left open for a shutdown to close.
            async with httpx.AsyncClient(transport=self._transport, timeout=10.0) as http:
                response = await http.get(self._url)
            response.raise_for_status()
            keys = parse_jwks(response.json(), self._url)
        except (httpx.HTTPError, ValueError):
            return  # keep the keys we have: an issuer briefly unreachable must not lock every client out
        self._keys = keys
        self._kids = frozenset(str(k.kid) for k in keys.keys if k.kid)
        self._fetched_at = self._attempted_at


def parse_jwks(document: Any, where: str) -> KeySet:
    """A JWKS document's public keys; a private member in it is refused (a JWKS is published)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError(f"{where} is not a JWKS document (an object with a 'keys' list)")
    if any(isinstance(k, dict) and {"d", "p", "q", "k"} & k.keys() for k in document["keys"]):
        raise ValueError(f"{where} holds a private or symmetric key; a JWKS must publish public keys only")
    try:
        return KeySet.import_key_set(cast(KeySetSerialization, document))
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
