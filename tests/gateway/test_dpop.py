"""Authentication as a production deployment does it: access tokens from a configured issuer (its JWKS in a file
or at a URL), bound by DPoP. Each way a token or a proof can be wrong is refused with 401 (403 for scope)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from edi.auth.dev import DEV_ISSUER, DevIssuer
from edi.auth.dpop import ProofKey, access_token_hash, generate_key, make_proof, target_uri, thumbprint
from edi.auth.errors import AuthError
from edi.auth.jwks import RemoteJwks
from edi.auth.replay import ReplayCache
from edi.auth.tokens import parse_herid_claim
from edi.services.gateway.app import create_app
from edi.services.gateway.settings import Environment, GatewaySettings
from tests.gateway.conftest import API_HEADERS
from tests.gateway.memory import InMemoryMessaging

ISSUER = "https://helseid.test"
BASE = "http://gateway.test"
PATH = "/Messages?ReceiverHerIds=222"
URL = BASE + PATH


@pytest.fixture
def issuer_key() -> ECKey:
    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    return key


@pytest.fixture
def production(tmp_path: Path, issuer_key: ECKey) -> GatewaySettings:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [issuer_key.as_dict(private=False)]}))
    return GatewaySettings(
        environment=Environment.PRODUCTION, data_dir=tmp_path, auth_issuer=ISSUER, auth_jwks_file=jwks,
    )


def access_token(issuer_key: ECKey, key: ProofKey | None, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": "nhn:msh", "scope": "nhn:msh/api openid", "client_id": "epj-1", "iat": now,
        "exp": now + 300, "herid": "222", "helseid://claims/client/claims/orgnr_parent": "999888777",
    }
    if key is not None:
        claims["cnf"] = {"jkt": thumbprint(key)}
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": issuer_key.kid}, claims, issuer_key)


Send = Callable[..., Any]


@pytest_asyncio.fixture(loop_scope="function")
async def send(production: GatewaySettings, messaging: InMemoryMessaging) -> AsyncIterator[Send]:
    """send(authorization, *proofs, method=, path=) -> the response from a production gateway."""
    app = create_app(messaging, production)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:

        async def request(authorization: str | None, *proofs: str, method: str = "GET", path: str = PATH) -> Any:
            headers = [(k, v) for k, v in API_HEADERS.items()]
            if authorization is not None:
                headers.append(("Authorization", authorization))
            headers.extend(("DPoP", proof) for proof in proofs)
            return await http.request(method, path, headers=headers)

        yield request


def refused(response: httpx.Response, error: str, fragment: str, status: int = 401) -> None:
    assert response.status_code == status, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('DPoP algs="') and f'error="{error}"' in challenge, challenge
    assert fragment in response.json()["error"], response.json()


async def test_a_bound_token_with_a_fresh_proof_is_accepted(send: Send, issuer_key: ECKey) -> None:
    key = generate_key()
    token = access_token(issuer_key, key)
    response = await send(f"DPoP {token}", make_proof(key, "GET", URL, access_token=token))
    assert response.status_code == 200, response.text


async def test_a_replayed_proof_is_refused(send: Send, issuer_key: ECKey) -> None:
    key = generate_key()
    token = access_token(issuer_key, key)
    proof = make_proof(key, "GET", URL, access_token=token)
    assert (await send(f"DPoP {token}", proof)).status_code == 200
    refused(await send(f"DPoP {token}", proof), "invalid_dpop_proof", "used before")


async def test_a_proof_for_another_method_or_url_is_refused(send: Send, issuer_key: ECKey) -> None:
    key = generate_key()
    token = access_token(issuer_key, key)
    refused(await send(f"DPoP {token}", make_proof(key, "POST", URL, access_token=token)),
            "invalid_dpop_proof", "another HTTP method")
    refused(await send(f"DPoP {token}", make_proof(key, "GET", BASE + "/Messages/x", access_token=token)),
            "invalid_dpop_proof", "another URL")
    refused(await send(f"DPoP {token}", make_proof(key, "GET", "http://elsewhere.test" + PATH, access_token=token)),
            "invalid_dpop_proof", "another URL")
    # The query is not part of the proof's URL (RFC 9449 §4.2), and scheme and host compare case-insensitively.
    other_query = make_proof(key, "GET", "HTTP://Gateway.TEST:80/Messages?ReceiverHerIds=9", access_token=token)
    assert (await send(f"DPoP {token}", other_query)).status_code == 200


async def test_an_expired_or_not_yet_valid_token_is_refused(send: Send, issuer_key: ECKey) -> None:
    key = generate_key()
    expired = access_token(issuer_key, key, exp=int(time.time()) - 120)
    refused(await send(f"DPoP {expired}", make_proof(key, "GET", URL, access_token=expired)),
            "invalid_token", "expired")
    early = access_token(issuer_key, key, nbf=int(time.time()) + 600)
    refused(await send(f"DPoP {early}", make_proof(key, "GET", URL, access_token=early)), "invalid_token", "nbf")
    endless = access_token(issuer_key, key, exp=None)
    refused(await send(f"DPoP {endless}", make_proof(key, "GET", URL, access_token=endless)),
            "invalid_token", "no expiry")


async def test_a_proof_signed_with_another_key_is_refused(send: Send, issuer_key: ECKey) -> None:
    bound, other = generate_key(), generate_key()
    token = access_token(issuer_key, bound)
    refused(await send(f"DPoP {token}", make_proof(other, "GET", URL, access_token=token)),
            "invalid_dpop_proof", "another key")


async def test_a_proof_for_another_token_or_out_of_time_is_refused(send: Send, issuer_key: ECKey) -> None:
    key = generate_key()
    token = access_token(issuer_key, key)
    other = access_token(issuer_key, key, jti="x")
    refused(await send(f"DPoP {token}", make_proof(key, "GET", URL, access_token=other)), "invalid_dpop_proof", "ath")
    refused(await send(f"DPoP {token}", make_proof(key, "GET", URL)), "invalid_dpop_proof", "ath")
    for skew in (-300, 300):
        stale = make_proof(key, "GET", URL, access_token=token, now=time.time() + skew)
        refused(await send(f"DPoP {token}", stale), "invalid_dpop_proof", "too long ago or in the future")


def _proof(key: ECKey, header: dict[str, Any], claims: dict[str, Any] | None = None) -> str:
    body = {"jti": uuid.uuid4().hex, "htm": "GET", "htu": target_uri(URL), "iat": int(time.time()), **(claims or {})}
    return jwt.encode(header, body, key, algorithms=[header["alg"]])


async def test_malformed_proofs_are_refused(send: Send, issuer_key: ECKey) -> None:
    key = generate_key()
    token = access_token(issuer_key, key)
    ath = {"ath": access_token_hash(token)}
    public = key.as_dict(private=False)
    cases = {
        "not a signed JWT": "not-a-jwt",
        "typ must be dpop+jwt": _proof(key, {"alg": "ES256", "typ": "JWT", "jwk": public}, ath),
        "asymmetric": jwt.encode({"alg": "HS256", "typ": "dpop+jwt"}, {"htm": "GET"}, OctKey.generate_key(256)),
        "only the public key": _proof(key, {"alg": "ES256", "typ": "dpop+jwt", "jwk": key.as_dict(private=True)}, ath),
        "signature": _proof(generate_key(), {"alg": "ES256", "typ": "dpop+jwt", "jwk": public}, ath),
        "jti": _proof(key, {"alg": "ES256", "typ": "dpop+jwt", "jwk": public}, {**ath, "jti": ""}),
    }
    for fragment, proof in cases.items():
        refused(await send(f"DPoP {token}", proof), "invalid_dpop_proof", fragment)
    two = [make_proof(key, "GET", URL, access_token=token) for _ in range(2)]
    refused(await send(f"DPoP {token}", *two), "invalid_dpop_proof", "exactly one")
    refused(await send(f"DPoP {token}"), "invalid_dpop_proof", "exactly one")


async def test_tokens_are_checked_for_issuer_audience_scope_binding_and_signature(
    send: Send, issuer_key: ECKey, tmp_path: Path,
) -> None:
    key = generate_key()

    async def attempt(token: str, scheme: str = "DPoP") -> httpx.Response:
        response: httpx.Response = await send(f"{scheme} {token}", make_proof(key, "GET", URL, access_token=token))
        return response

    refused(await attempt(access_token(issuer_key, key, iss="https://evil.test")), "invalid_token", "not trusted")
    refused(await attempt(access_token(issuer_key, key, aud="nhn:other")), "invalid_token", "not for this API")
    refused(await attempt(access_token(issuer_key, key, scope="openid")), "insufficient_scope", "nhn:msh/api", 403)
    refused(await attempt(access_token(issuer_key, None)), "invalid_token", "not bound")
    refused(await attempt(access_token(issuer_key, key), "Bearer"), "invalid_token", "DPoP scheme")
    refused(await attempt(access_token(issuer_key, None), "Bearer"), "invalid_token", "only DPoP-bound")
    refused(await attempt(access_token(issuer_key, key, herid=None)), "invalid_token", "herid")
    refused(await attempt(access_token(issuer_key, key, herid="abc")), "invalid_token", "herid")
    forged = ECKey.generate_key("P-256", private=True)
    forged.ensure_kid()
    refused(await attempt(access_token(forged, key)), "invalid_token", "signature")
    refused(await send("Basic dXNlcjpwdw=="), "invalid_request", "DPoP <token>")
    refused(await send(None), "invalid_request", "access token is required")
    refused(await send("DPoP not.a.token", "x"), "invalid_token", "not a signed JWT")


async def test_a_production_deployment_refuses_the_dev_issuer(send: Send, tmp_path: Path) -> None:
    dev = DevIssuer.load_or_create(tmp_path / "dev")
    key = generate_key()
    for token, scheme in (
        (dev.issue(["222"], audience="nhn:msh", scope="nhn:msh/api"), "Bearer"),
        (dev.issue(["222"], audience="nhn:msh", scope="nhn:msh/api", jkt=thumbprint(key)), "DPoP"),
    ):
        response = await send(f"{scheme} {token}", make_proof(key, "GET", URL, access_token=token))
        refused(response, "invalid_token", "EDI_ENVIRONMENT=development")


def test_production_settings_cannot_leave_authentication_out(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="EDI_AUTH_ISSUER"):
        GatewaySettings(environment=Environment.PRODUCTION)
    with pytest.raises(ValueError, match="development issuer"):
        GatewaySettings(environment=Environment.PRODUCTION, auth_issuer=DEV_ISSUER, auth_jwks_file=tmp_path)
    with pytest.raises(ValueError, match="EDI_AUTH_ISSUER"):
        GatewaySettings()  # production is the default


async def test_server_nonces(production: GatewaySettings, issuer_key: ECKey, messaging: InMemoryMessaging) -> None:
    settings = production.model_copy(update={"dpop_require_nonce": True})
    app = create_app(messaging, settings)
    key = generate_key()
    token = access_token(issuer_key, key)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:

        async def get(nonce: str | None) -> httpx.Response:
            proof = make_proof(key, "GET", URL, access_token=token, nonce=nonce)
            headers = {**API_HEADERS, "Authorization": f"DPoP {token}", "DPoP": proof}
            return await http.get(PATH, headers=headers)

        first = await get(None)
        refused(first, "use_dpop_nonce", "nonce")
        nonce = first.headers["dpop-nonce"]
        refused(await get("forged"), "use_dpop_nonce", "nonce")
        assert (await get(nonce)).status_code == 200


async def test_the_public_url_is_what_proofs_name(
    tmp_path: Path, production: GatewaySettings, issuer_key: ECKey, messaging: InMemoryMessaging,
) -> None:
    settings = production.model_copy(update={"public_url": "https://edi.example.no/api"})
    app = create_app(messaging, settings)
    key = generate_key()
    token = access_token(issuer_key, key)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        for url, status in (("https://edi.example.no/api" + PATH, 200), (URL, 401)):
            headers = {**API_HEADERS, "Authorization": f"DPoP {token}",
                       "DPoP": make_proof(key, "GET", url, access_token=token)}
            assert (await http.get(PATH, headers=headers)).status_code == status


async def test_remote_jwks_is_fetched_and_refetched_for_a_new_key(issuer_key: ECKey) -> None:
    served = [issuer_key]
    fetches = 0

    def jwks(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in served]})

    remote = RemoteJwks("https://helseid.test/jwks", transport=httpx.MockTransport(jwks))
    assert [k.kid for k in (await remote.key_set(issuer_key.kid)).keys] == [issuer_key.kid]
    await remote.key_set(issuer_key.kid)
    assert fetches == 1
    rotated = ECKey.generate_key("P-256", private=True)
    rotated.ensure_kid()
    served.append(rotated)
    await remote.key_set(rotated.kid)  # within the back-off: no refetch yet
    assert fetches == 1
    remote._attempted_at -= 60  # as if the back-off had passed
    assert rotated.kid in [k.kid for k in (await remote.key_set(rotated.kid)).keys]
    assert fetches == 2


def test_herid_claim_forms() -> None:
    assert parse_herid_claim("123-456") == (frozenset({"123", "456"}), False)
    assert parse_herid_claim([123, "456"]) == (frozenset({"123", "456"}), False)
    assert parse_herid_claim(789) == (frozenset({"789"}), False)
    assert parse_herid_claim(0) == (frozenset(), True)
    assert parse_herid_claim("0") == (frozenset(), True)
    for bad in ("", "12a", [True], ["-1"], None, 1.5, []):
        with pytest.raises(AuthError):
            parse_herid_claim(bad)


def test_the_replay_cache_forgets_after_the_window_and_fails_closed_when_full() -> None:
    cache = ReplayCache(10, max_entries=2)
    assert cache.first_use("a", 0) and not cache.first_use("a", 5)
    assert cache.first_use("b", 1)
    assert not cache.first_use("c", 2)  # full: refused rather than remembered too briefly
    assert cache.first_use("a", 11)  # both have expired
