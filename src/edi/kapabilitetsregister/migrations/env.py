"""Alembic environment of the registry's schema."""

from edi.adapters.sql import run_migration_environment
from edi.kapabilitetsregister.settings import RegistrySettings
from edi.kapabilitetsregister.tables import metadata

run_migration_environment(metadata, lambda: RegistrySettings().database_url)
