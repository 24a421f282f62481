"""Alembic environment of the object service's schema."""

from edi.adapters.sql import run_migration_environment
from edi.services.objects.settings import ObjectSettings
from edi.services.objects.tables import VERSION_TABLE, metadata

run_migration_environment(metadata, lambda: ObjectSettings().database_url, VERSION_TABLE)
