"""DPoP proofs (RFC 9449): making them (the client) and checking them (the gateway).

A proof is a JWT signed with the client's own key, whose public half travels in the proof's header. It names the
request (method `htm` and URL `htu`), the moment (`iat`), a unique id (`jti`) and a hash of the access token it
accompanies (`ath`); the access token names the key's thumbprint (`cnf.jkt`). Together they make a stolen token
useless without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key

from edi.auth.errors import AuthError
from edi.auth.replay import ReplayCache

PROOF_TYPE = "dpop+jwt"
# Asymmetric algorithms only: a proof signed with a shared secret (HS256) or unsigned (none) proves nothing.
ALGORITHMS = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}

ProofKey = ECKey | RSAKey | OKPKey


def generate_key() -> ECKey:
    """A fresh P-256 key, the usual DPoP key (ES256)."""
    return ECKey.generate_key("P-256", private=True)


def algorithm_for(key: ProofKey) -> str:
    if isinstance(key, ECKey):
        return _EC_ALGORITHMS[str(key.curve_name)]
    if isinstance(key, RSAKey):
        return "PS256"
    return "EdDSA"


def thumbprint(key: ProofKey) -> str:
    """The key's JWK thumbprint (RFC 7638, SHA-256): what an access token's `cnf.jkt` names."""
    return key.thumbprint()


def access_token_hash(access_token: str) -> str:
    """`ath`: the base64url SHA-256 of the access token's ASCII bytes."""
    return _b64(hashlib.sha256(access_token.encode("ascii")).digest())


def target_uri(url: str) -> str:
    """`htu`: the request URL without query and fragment, scheme and host in lower case, default port dropped
    (RFC 9449 §4.3 compares URIs after this normalisation)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def make_proof(
    key: ProofKey, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None,
    now: float | None = None,
) -> str:
    algorithm = algorithm_for(key)
    header = {"typ": PROOF_TYPE, "alg": algorithm, "jwk": key.as_dict(private=False)}
    claims: dict[str, Any] = {
        "jti": uuid.uuid4().hex, "htm": method.upper(), "htu": target_uri(url),
        "iat": int(time.time() if now is None else now),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    return jwt.encode(header, claims, key, algorithms=[algorithm])


class NonceSource:
    """Server-chosen nonces (RFC 9449 §8) without server state: a nonce is a time slot and its HMAC, valid in its
    own slot and the next one. Replicas that share `secret` accept each other's nonces."""

    def __init__(self, secret: bytes | None = None, period_seconds: int = 300) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._period = period_seconds

    def current(self, now: float) -> str:
        return self._nonce(int(now // self._period))

    def valid(self, nonce: str, now: float) -> bool:
        slot = int(now // self._period)
        return any(hmac.compare_digest(nonce, self._nonce(s)) for s in (slot, slot - 1))

    def _nonce(self, slot: int) -> str:
        packed = struct.pack(">q", slot)
        return _b64(packed + hmac.new(self._secret, packed, hashlib.sha256).digest()[:16])


@dataclass(frozen=True, slots=True)
class ProofPolicy:
    max_age_seconds: int = 60  # how far `iat` may lie from the server's clock, either way
    nonces: NonceSource | None = None  # when set, every proof must carry a current nonce


class ProofChecker:
    def __init__(self, policy: ProofPolicy) -> None:
        self.policy = policy
        # A proof is acceptable for max_age either side of now, so its id must be remembered that long twice.
        self._seen = ReplayCache(2 * policy.max_age_seconds + 1)

    def check(self, proof: str, *, method: str, url: str, access_token: str, jkt: str, now: float) -> None:
        """Raises AuthError (invalid_dpop_proof, or use_dpop_nonce) unless `proof` is a fresh, first-time proof
        for this request, signed by the key whose thumbprint the access token names."""
        claims, key = _verified(proof)
        if claims.get("htm") != method.upper():
            raise _invalid("the proof is for another HTTP method")
        htu = claims.get("htu")
        if not isinstance(htu, str) or _safe_target(htu) != target_uri(url):
            raise _invalid("the proof is for another URL")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise _invalid("the proof has no issue time (iat)")
        if abs(now - iat) > self.policy.max_age_seconds:
            raise _invalid("the proof was issued too long ago or in the future")
        if claims.get("ath") != access_token_hash(access_token):
            raise _invalid("the proof is not for this access token (ath)")
        if not hmac.compare_digest(thumbprint(key), jkt):
            raise _invalid("the proof is signed with another key than the one the access token is bound to")
        nonces = self.policy.nonces
        if nonces is not None:
            nonce = claims.get("nonce")
            if not isinstance(nonce, str) or not nonces.valid(nonce, now):
                raise AuthError("use_dpop_nonce", "a DPoP nonce from the server is required")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
            raise _invalid("the proof has no usable id (jti)")
        # Checked last, so that a proof refused for another reason does not use up its id.
        if not self._seen.first_use(f"{jkt}:{jti}", now):
            raise _invalid("the proof has been used before")


def _verified(proof: str) -> tuple[dict[str, Any], ProofKey]:
    try:
        header = dict(jws.extract_compact(proof.encode("ascii")).headers())
    except (JoseError, ValueError, UnicodeError, TypeError):
        raise _invalid("the DPoP header is not a signed JWT") from None
    if header.get("typ") != PROOF_TYPE:
        raise _invalid(f"the proof's typ must be {PROOF_TYPE}")
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise _invalid("the proof must be signed with an asymmetric algorithm")
    public = header.get("jwk")
    if not isinstance(public, dict) or _PRIVATE_MEMBERS & public.keys():
        raise _invalid("the proof's header must carry the public key (jwk), and only the public key")
    try:
        key = import_key(public)
        if not isinstance(key, ECKey | RSAKey | OKPKey):
            raise _invalid("the proof's key is not an asymmetric key")
        signed = jws.deserialize_compact(proof, key, algorithms=[str(algorithm)])
        claims = json.loads(signed.payload)
    except (JoseError, ValueError, TypeError):
        raise _invalid("the proof's signature does not verify") from None
    if not isinstance(claims, dict):
        raise _invalid("the proof's payload is not a JSON object")
    return claims, key


def _safe_target(htu: str) -> str | None:
    try:
        return target_uri(htu)
    except ValueError:
        return None


def _invalid(description: str) -> AuthError:
    return AuthError("invalid_dpop_proof", description)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
