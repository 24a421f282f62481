"""Configuration of the HTTP gateway, from EDI_* environment variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edi.auth.dev import DEV_ISSUER
from edi.core.parsing import DEFAULT_MAX_BYTES


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class TokenSettings(BaseSettings):
    """What an access token for this API must say, and where the dev issuer keeps its key: shared by the gateway
    and `edi dev token`."""

    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    data_dir: Path = Path(".edi-data")  # holds the dev issuer's signing key (development only)
    auth_audience: str = "nhn:msh"
    auth_scope: str = "nhn:msh/api"


class GatewaySettings(TokenSettings):
    # Production unless the deployment says otherwise: only a development deployment trusts the local dev issuer
    # and plain Bearer tokens, so authentication cannot be relaxed by forgetting a setting.
    environment: Environment = Environment.PRODUCTION

    auth_issuer: str | None = None  # the trusted token issuer, e.g. https://helseid-sts.nhn.no
    auth_jwks_url: str | None = None  # its signing keys (the issuer's jwks_uri)
    auth_jwks_file: Path | None = None  # or the same keys from a file (tests, air-gapped deployments)
    auth_leeway_seconds: int = 30  # clock skew allowed on exp and nbf

    dpop_max_age_seconds: int = 60  # how far a proof's iat may lie from the server's clock
    dpop_require_nonce: bool = False  # make clients use server nonces (RFC 9449 §8)
    dpop_nonce_secret: SecretStr | None = None  # shared by replicas so each accepts the others' nonces

    # Where the HTTP API listens (`edi run gateway`; `edi up` takes --host and --port).
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    # The base URL clients use, when the gateway sits behind a proxy that changes scheme, host or port: DPoP
    # proofs name the URL the client called.
    public_url: str | None = None
    max_message_bytes: int = DEFAULT_MAX_BYTES  # the same setting (and default, 35 MB) as validation's
    sse_heartbeat_seconds: float = 15.0  # a comment line this often keeps idle streams open through proxies

    @model_validator(mode="after")
    def _production_is_authenticated(self) -> GatewaySettings:
        if self.environment is Environment.PRODUCTION:
            if not self.auth_issuer or not (self.auth_jwks_url or self.auth_jwks_file):
                raise ValueError(
                    "a production gateway needs EDI_AUTH_ISSUER and EDI_AUTH_JWKS_URL or EDI_AUTH_JWKS_FILE; "
                    "set EDI_ENVIRONMENT=development to run with locally issued dev tokens"
                )
            if self.auth_issuer == DEV_ISSUER:
                raise ValueError("the development issuer cannot be trusted by a production deployment")
        elif self.auth_issuer and not (self.auth_jwks_url or self.auth_jwks_file):
            raise ValueError("EDI_AUTH_ISSUER needs EDI_AUTH_JWKS_URL or EDI_AUTH_JWKS_FILE")
        return self
