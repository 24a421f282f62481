"""Configuration of the registry, from EDI_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from edi.kapabilitetsregister.view import CapabilityPolicy


class CapabilityPolicySettings(BaseSettings):
    """The one setting the router, `kapreg check` and the registry API apply alike (docs/capability-policy.md)."""

    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    capability_policy: CapabilityPolicy = CapabilityPolicy.REGISTERED


class RegistrySettings(CapabilityPolicySettings):
    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    data_dir: Path = Path(".edi-data")
    registry_database_url: str | None = None  # default: SQLite at <data dir>/registry.db
    registry_operator_token: SecretStr | None = None  # required by the API's writes; None: writes are refused
    registry_check_sender_produce: bool = False  # also require the sender's Produce capability

    @property
    def database_url(self) -> str:
        if self.registry_database_url:
            return self.registry_database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'registry.db').resolve()}"
