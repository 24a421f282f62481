"""Configuration of the object service, from EDI_* environment variables (the blob store's own: BlobSettings)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edi.adapters.blobs import BlobSettings, BlobStore
from edi.core.parsing import DEFAULT_MAX_BYTES
from edi.services.objects.offload import Attachments
from edi.services.objects.service import ObjectService


class ObjectSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    data_dir: Path = Path(".edi-data")
    object_database_url: str | None = None  # default: SQLite at <data dir>/objects.db
    # The base URL clients reach the API at (the gateway's EDI_PUBLIC_URL): FileReferences are <it>/objects/<key>.
    public_url: str = "http://127.0.0.1:8080"
    # An object not confirmed by every receiver is deleted this long after it was created.
    object_retention_days: float = Field(default=30.0, gt=0)
    object_max_bytes: int = Field(default=5 * 1024**3, gt=0)  # the largest object the API accepts
    # Inline attachments larger than this (decoded) are moved to the blob store by the router.
    object_offload_threshold: int = Field(default=256 * 1024, ge=0)
    # The largest document a receiver that cannot read FileReference gets with its attachments put back inline.
    object_inline_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0)
    object_janitor_interval_s: float = Field(default=3600.0, gt=0)

    @property
    def database_url(self) -> str:
        if self.object_database_url:
            return self.object_database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'objects.db').resolve()}"

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.object_retention_days)

    async def open_service(self, blobs: BlobStore) -> ObjectService:
        """The object service on the configured database (migrated on first use), owning `blobs`."""
        return await ObjectService.open(self.database_url, blobs, public_url=self.public_url,
                                        retention=self.retention, max_bytes=self.object_max_bytes)

    async def open_attachments(self) -> Attachments:
        """The object service on the configured blob store (BlobSettings), as the message flow uses it; close it
        with `attachments.objects.close()`."""
        blobs = await BlobSettings(data_dir=self.data_dir).open_blob_store()
        return Attachments(await self.open_service(blobs), offload_threshold=self.object_offload_threshold,
                           inline_max_bytes=self.object_inline_max_bytes)
