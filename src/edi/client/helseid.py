"""Access tokens from HelseID (or any OAuth 2 token endpoint that works the same way) for the client.

EDI 2.0 clients authenticate with client credentials: a client assertion signed with the client's own key
(private_key_jwt, RFC 7523) instead of a secret, and a DPoP proof so that the token is bound to the DPoP key. The
token endpoint answers the first request with 400 `use_dpop_nonce` and a `DPoP-Nonce` header; the request is
made again with the nonce in the proof. Tokens are reused until shortly before they expire.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from joserfc import jwt

from edi.auth.dpop import ProofKey, algorithm_for, make_proof

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RENEW_BEFORE_EXPIRY_S = 60.0
ASSERTION_LIFETIME_S = 60


class TokenRequestError(Exception):
    """The token endpoint refused; `error` is its OAuth error code."""

    def __init__(self, status: int, error: str, description: str | None) -> None:
        super().__init__(f"{status}: {error}" + (f" ({description})" if description else ""))
        self.status = status
        self.error = error


class ClientCredentials:
    """A TokenSource for EdiClient: DPoP-bound access tokens for `scope` (nhn:msh/api for EDI 2.0)."""

    def __init__(
        self, token_url: str, client_id: str, client_key: ProofKey, dpop_key: ProofKey, *,
        scope: str = "nhn:msh/api", transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = token_url
        self._client_id = client_id
        self._client_key = client_key
        self._dpop_key = dpop_key
        self._scope = scope
        self._transport = transport
        self._nonce: str | None = None
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def access_token(self) -> str:
        async with self._lock:
            if self._token is None or time.time() >= self._renew_at:
                self._token, lifetime = await self._request()
                self._renew_at = time.time() + max(lifetime - RENEW_BEFORE_EXPIRY_S, lifetime / 2)
            return self._token

    async def _request(self) -> tuple[str, float]:
        async with httpx.AsyncClient(transport=self._transport, timeout=30.0) as http:
            for attempt in range(2):
                response = await http.post(self._url, data=self._form(), headers={
                    "DPoP": make_proof(self._dpop_key, "POST", self._url, nonce=self._nonce),
                })
                self._nonce = response.headers.get("DPoP-Nonce", self._nonce)
                body = _json(response)
                if response.status_code == 200 and isinstance(body.get("access_token"), str):
                    return body["access_token"], float(body.get("expires_in", 300))
                error = str(body.get("error", f"HTTP {response.status_code}"))
                if attempt == 0 and error == "use_dpop_nonce" and "DPoP-Nonce" in response.headers:
                    continue
                raise TokenRequestError(response.status_code, error, body.get("error_description"))
        raise AssertionError("unreachable")  # pragma: no cover

    def _form(self) -> dict[str, str]:
        now = int(time.time())
        algorithm = algorithm_for(self._client_key)
        assertion = jwt.encode(
            {"alg": algorithm, "typ": "client-authentication+jwt"},
            {"iss": self._client_id, "sub": self._client_id, "aud": self._url, "jti": uuid.uuid4().hex,
             "iat": now, "nbf": now, "exp": now + ASSERTION_LIFETIME_S},
            self._client_key, algorithms=[algorithm],
        )
        return {
            "grant_type": "client_credentials", "client_id": self._client_id, "scope": self._scope,
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion,
        }


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
