"""Verifying an access token (and its DPoP proof) and reading what its holder may act as.

Production: a JWT from the configured issuer (HelseID), signed by a key in its JWKS, for our audience and scope,
unexpired, bound by `cnf.jkt` to the key that signed the request's DPoP proof, and sent with the DPoP scheme.
Development: additionally tokens of the local dev issuer, also as plain Bearer tokens so that curl and OpenAPI
tools work. The `herid` claim says which HER-ids the holder acts for: a list (HelseID writes it as
"123-456-789"), or 0 for every HER-id of the delegating organisation (`orgnr_parent`).
"""

from __future__ import annotations

import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError

from edi.auth.dpop import ALGORITHMS, ProofChecker
from edi.auth.errors import AuthError, InsufficientScopeError
from edi.auth.jwks import KeySource

HERID_CLAIM = "herid"
ORGANISATION_CLAIM = "helseid://claims/client/claims/orgnr_parent"
_HER_ID = re.compile(r"[1-9][0-9]{0,9}")
VERIFIED_TOKENS_KEPT = 4096


@dataclass(frozen=True, slots=True)
class Grant:
    """What an access token lets its holder act as."""

    subject: str  # the client (client_id, else sub): for logs, never the token
    her_ids: frozenset[str]
    expires_at: float  # the token's exp: a notification stream ends then
    whole_organisation: bool = False  # herid 0: every HER-id of `organisation`
    organisation: str | None = None


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    issuer: str
    keys: KeySource
    bearer_allowed: bool = False  # only the dev issuer, only in development


class TokenVerifier:
    def __init__(
        self, issuers: Sequence[TrustedIssuer], *, audience: str, scope: str, proofs: ProofChecker,
        leeway_seconds: int = 30, refused_issuers: dict[str, str] | None = None,
    ) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        self._audience = audience
        self._scope = scope
        self._proofs = proofs
        self._leeway = leeway_seconds
        self._refused = refused_issuers or {}  # issuer -> why this deployment does not trust it
        # Tokens whose signature verified, so that a client's next requests with the same token skip the
        # signature check (the claims are still checked every time, and the DPoP proof always is).
        self._verified: OrderedDict[str, tuple[TrustedIssuer, dict[str, Any]]] = OrderedDict()

    async def verify(
        self, *, authorization: str | None, dpop: Sequence[str], method: str, url: str, now: float,
    ) -> Grant:
        if not authorization:
            raise AuthError("invalid_request", "an access token is required (Authorization: DPoP <token>)")
        scheme, _, token = authorization.strip().partition(" ")
        scheme, token = scheme.lower(), token.strip()
        if scheme not in ("dpop", "bearer") or not token:
            raise AuthError("invalid_request", "the Authorization header must be 'DPoP <token>'")
        issuer, claims = self._verified.get(token) or await self._verify_signature(token)
        self._check_claims(claims, now)
        jkt = _bound_key(claims)
        if scheme == "dpop":
            if jkt is None:
                raise AuthError("invalid_token", "the access token is not bound to a key (no cnf.jkt)")
            if len(dpop) != 1:
                raise AuthError("invalid_dpop_proof", "exactly one DPoP proof header is required")
            self._proofs.check(dpop[0], method=method, url=url, access_token=token, jkt=jkt, now=now)
        elif jkt is not None:
            raise AuthError("invalid_token", "a DPoP-bound access token must be sent with the DPoP scheme")
        elif not issuer.bearer_allowed:
            raise AuthError("invalid_token", "this deployment accepts only DPoP-bound access tokens")
        return _grant(claims)

    async def _verify_signature(self, token: str) -> tuple[TrustedIssuer, dict[str, Any]]:
        try:
            unverified = jws.extract_compact(token.encode("ascii"))
            header = dict(unverified.headers())
            claimed_issuer = _json_object(unverified.payload).get("iss")
        except (JoseError, ValueError, UnicodeError, TypeError):
            raise AuthError("invalid_token", "the access token is not a signed JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise AuthError("invalid_token", "the access token must be signed with an asymmetric algorithm")
        if not isinstance(claimed_issuer, str):
            raise AuthError("invalid_token", "the access token names no issuer")
        issuer = self._issuers.get(claimed_issuer)
        if issuer is None:
            raise AuthError("invalid_token", self._refused.get(claimed_issuer, "the token's issuer is not trusted"))
        kid = header.get("kid")
        keys = await issuer.keys.key_set(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(token, keys, algorithms=list(ALGORITHMS)).claims
        except (JoseError, ValueError, TypeError):
            raise AuthError("invalid_token", "the access token's signature does not verify") from None
        self._verified[token] = (issuer, claims)
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return issuer, claims

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float) or isinstance(expiry, bool):
            raise AuthError("invalid_token", "the access token has no expiry (exp)")
        if now > expiry + self._leeway:
            raise AuthError("invalid_token", "the access token has expired")
        not_before = claims.get("nbf")
        if not_before is not None and (not _is_number(not_before) or now + self._leeway < not_before):
            raise AuthError("invalid_token", "the access token is not valid yet (nbf)")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(a, str) and hmac.compare_digest(a, self._audience) for a in audiences):
            raise AuthError("invalid_token", f"the access token is not for this API (audience {self._audience})")
        scope = claims.get("scope")
        scopes = scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else []
        if self._scope not in scopes:
            raise InsufficientScopeError(self._scope)


def parse_herid_claim(value: object) -> tuple[frozenset[str], bool]:
    """The HER-ids a `herid` claim names, and whether it means the whole organisation (0). Accepts HelseID's
    "123-456" string, a JSON list, or one number."""
    if isinstance(value, str):
        items: list[object] = [part.strip() for part in value.split("-")]
    elif isinstance(value, list):
        items = list(value)
    else:
        items = [value]
    her_ids: set[str] = set()
    for item in items:
        text = str(item) if isinstance(item, int | str) and not isinstance(item, bool) else ""
        if text == "0":
            return frozenset(), True
        if not _HER_ID.fullmatch(text):
            raise AuthError("invalid_token", "the access token's herid claim is not a list of HER-ids")
        her_ids.add(text)
    if not her_ids:
        raise AuthError("invalid_token", "the access token's herid claim names no HER-id")
    return frozenset(her_ids), False


def _grant(claims: dict[str, Any]) -> Grant:
    if HERID_CLAIM not in claims:
        raise AuthError("invalid_token", "the access token has no herid claim")
    her_ids, whole = parse_herid_claim(claims[HERID_CLAIM])
    organisation = claims.get(ORGANISATION_CLAIM)
    if whole and not isinstance(organisation, str):
        raise AuthError("invalid_token", f"herid 0 needs the organisation number ({ORGANISATION_CLAIM})")
    subject = claims.get("client_id") or claims.get("sub") or "unknown"
    return Grant(
        subject=str(subject), her_ids=her_ids, expires_at=float(claims["exp"]), whole_organisation=whole,
        organisation=organisation if isinstance(organisation, str) else None,
    )


def _bound_key(claims: dict[str, Any]) -> str | None:
    confirmation = claims.get("cnf")
    if confirmation is None:
        return None
    jkt = confirmation.get("jkt") if isinstance(confirmation, dict) else None
    if not isinstance(jkt, str) or not jkt:
        raise AuthError("invalid_token", "the access token's confirmation (cnf) names no key thumbprint (jkt)")
    return jkt


def _json_object(payload: bytes) -> dict[str, Any]:
    value = json.loads(payload)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
