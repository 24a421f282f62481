"""Settings shared by everything that validates messages (CLI and services), read from EDI_* variables."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from edi.core.catalog import SchemaCatalog
from edi.core.parsing import DEFAULT_MAX_BYTES
from edi.core.validation import Validator, ValidatorOptions


class ValidationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDI_", extra="ignore")

    # Directories holding a published XSD set (with a catalog.xml for absolute imports), searched before the
    # built-in schemas. In the environment: separated by the OS path separator (':') or commas.
    schema_dirs: Annotated[list[Path], NoDecode] = []
    max_message_bytes: int = DEFAULT_MAX_BYTES
    clock_skew_seconds: int = 300
    # Rule codes (e.g. EDI-RUL-011) this deployment treats as errors rather than warnings.
    error_codes: Annotated[list[str], NoDecode] = []

    @field_validator("schema_dirs", "error_codes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(os.pathsep, ",").split(",") if part.strip()]
        return value

    def validator(self, extra_schema_dirs: list[Path] | None = None) -> Validator:
        catalog = SchemaCatalog([*(extra_schema_dirs or []), *self.schema_dirs])
        return Validator(catalog, ValidatorOptions(
            max_bytes=self.max_message_bytes,
            clock_skew=timedelta(seconds=self.clock_skew_seconds),
            error_codes=frozenset(self.error_codes),
        ))
