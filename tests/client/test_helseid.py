"""Tokens from a HelseID-like token endpoint: client assertion, DPoP proof, the nonce retry, reuse until expiry."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey

from edi.auth.dpop import generate_key, thumbprint
from edi.client.helseid import ASSERTION_TYPE, ClientCredentials, TokenRequestError

TOKEN_URL = "https://helseid-sts.test/connect/token"


class HelseId:
    """The token endpoint as HelseID behaves: nonce first, then a token bound to the proof's key."""

    def __init__(self, client_key: ECKey) -> None:
        self.client_key = client_key
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = ECKey.import_key(jws.extract_compact(request.headers["DPoP"].encode()).headers()["jwk"])
        proof = jwt.decode(request.headers["DPoP"], key, algorithms=["ES256"])
        assert (proof.claims["htm"], proof.claims["htu"]) == ("POST", TOKEN_URL)
        if proof.claims.get("nonce") != "n-1":
            return httpx.Response(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n-1"})
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        assert (form["grant_type"], form["client_assertion_type"], form["scope"]) == (
            "client_credentials", ASSERTION_TYPE, "nhn:msh/api")
        assertion = jwt.decode(form["client_assertion"], self.client_key, algorithms=["ES256"]).claims
        assert (assertion["iss"], assertion["sub"], assertion["aud"]) == ("epj-1", "epj-1", TOKEN_URL)
        assert assertion["exp"] > time.time()
        return httpx.Response(200, json={
            "access_token": f"token-for-{thumbprint(key)}-{len(self.requests)}", "token_type": "DPoP",
            "expires_in": 3600,
        })


async def test_the_nonce_retry_and_token_reuse() -> None:
    client_key, dpop_key = generate_key(), generate_key()
    helseid = HelseId(client_key)
    source = ClientCredentials(TOKEN_URL, "epj-1", client_key, dpop_key, transport=httpx.MockTransport(helseid))
    token = await source.access_token()
    assert token == f"token-for-{thumbprint(dpop_key)}-2"
    assert await source.access_token() == token
    assert len(helseid.requests) == 2  # the nonce retry, then nothing until the token nears expiry


async def test_a_refusal_is_an_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_client", "error_description": "unknown client"})

    source = ClientCredentials(TOKEN_URL, "epj-1", generate_key(), generate_key(),
                               transport=httpx.MockTransport(refuse))
    with pytest.raises(TokenRequestError, match="invalid_client"):
        await source.access_token()
