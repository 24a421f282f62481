"""The BlobStore port and its two adapters: a directory for one machine, S3-compatible storage in production."""

from edi.adapters.blobs.directory import DirectoryBlobStore
from edi.adapters.blobs.port import (
    CHUNK_SIZE,
    MIN_PART_SIZE,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStoreUnavailable,
    IntegrityError,
    InvalidUpload,
    UploadedPart,
)
from edi.adapters.blobs.s3 import S3BlobStore
from edi.adapters.blobs.settings import BlobSettings

__all__ = [
    "CHUNK_SIZE",
    "MIN_PART_SIZE",
    "BlobInfo",
    "BlobNotFound",
    "BlobSettings",
    "BlobStore",
    "BlobStoreError",
    "BlobStoreUnavailable",
    "DirectoryBlobStore",
    "IntegrityError",
    "InvalidUpload",
    "S3BlobStore",
    "UploadedPart",
]
