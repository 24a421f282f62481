"""Which blob store a process uses, from EDI_* variables: a directory by default, S3 in production."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from edi.adapters.blobs.directory import DirectoryBlobStore
from edi.adapters.blobs.port import MIN_PART_SIZE, BlobStore
from edi.adapters.blobs.s3 import DEFAULT_PART_SIZE, S3BlobStore


class BlobSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    blob_store: Literal["directory", "s3"] = "directory"
    data_dir: Path = Path(".edi-data")
    blob_dir: Path | None = None  # the directory store's root; default <data dir>/blobs
    s3_bucket: str = "edi-objects"
    s3_endpoint_url: str | None = None  # unset: AWS S3; MinIO or Ceph: e.g. http://minio:9000
    s3_region: str | None = None
    # Unset: the standard AWS credential chain (AWS_ACCESS_KEY_ID, profiles, instance roles, ...).
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_prefix: str = ""  # key prefix inside the bucket, e.g. "edi/" when sharing a bucket
    # "path" for MinIO and most self-hosted servers; "auto" lets botocore choose (virtual hosts on AWS).
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    s3_part_size: int = Field(default=DEFAULT_PART_SIZE, ge=MIN_PART_SIZE)

    async def open_blob_store(self) -> BlobStore:
        if self.blob_store == "s3":
            return await S3BlobStore.open(
                self.s3_bucket, endpoint_url=self.s3_endpoint_url, region=self.s3_region,
                access_key_id=self.s3_access_key_id,
                secret_access_key=self.s3_secret_access_key.get_secret_value() if self.s3_secret_access_key else None,
                prefix=self.s3_prefix, part_size=self.s3_part_size, addressing_style=self.s3_addressing_style,
            )
        return DirectoryBlobStore(self.blob_dir or self.data_dir / "blobs")
