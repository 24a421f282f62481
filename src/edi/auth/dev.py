"""The development issuer: local access tokens for a development deployment (`edi dev token`).

Its signing key lives in the data directory, readable by its owner only, so the gateway and `edi dev token` on
the same machine agree on it. A production deployment never trusts it (see `edi.services.gateway.settings`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from edi.auth.tokens import HERID_CLAIM, ORGANISATION_CLAIM

DEV_ISSUER = "urn:edi:dev"
KEY_FILE = "dev-issuer-key.json"
DEFAULT_LIFETIME_SECONDS = 8 * 3600


class DevIssuer:
    def __init__(self, key: ECKey) -> None:
        self._key = key

    @classmethod
    def load_or_create(cls, data_dir: Path) -> DevIssuer:
        path = data_dir / KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            key = ECKey.generate_key("P-256", private=True)
            key.ensure_kid()
            try:
                # O_EXCL: two processes starting at once must not each write their own key.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w", encoding="utf-8") as file:
                    json.dump(key.as_dict(private=True), file)
        document = json.loads(path.read_text(encoding="utf-8"))
        return cls(ECKey.import_key(document))

    def keys(self) -> KeySet:
        """The public key, as a key set the gateway verifies with."""
        return KeySet([ECKey.import_key(self._key.as_dict(private=False))])

    def issue(
        self, her_ids: Iterable[str | int], *, audience: str, scope: str, organisation: str | None = None,
        jkt: str | None = None, lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS, subject: str = "edi-dev",
        now: float | None = None,
    ) -> str:
        """An access token for `her_ids` (["0"] with `organisation`: every HER-id of the organisation), bound to
        the DPoP key with thumbprint `jkt` if one is given."""
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": DEV_ISSUER, "sub": subject, "client_id": subject, "aud": audience, "scope": scope,
            "iat": issued, "nbf": issued, "exp": issued + lifetime_seconds, "jti": uuid.uuid4().hex,
            HERID_CLAIM: "-".join(str(h) for h in her_ids),
        }
        if organisation is not None:
            claims[ORGANISATION_CLAIM] = organisation
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}
        header = {"alg": "ES256", "typ": "at+jwt", "kid": self._key.kid}
        return jwt.encode(header, claims, self._key, algorithms=["ES256"])
