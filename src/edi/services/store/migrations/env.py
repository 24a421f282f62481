"""Alembic environment of the backbone's store (mailbox, status, notifications, duplicates, receipts). The version
table has its own name, so the store may share a database with the capability registry."""

from edi.adapters.sql import run_migration_environment
from edi.services.store.settings import StoreSettings
from edi.services.store.tables import VERSION_TABLE, metadata

run_migration_environment(metadata, lambda: StoreSettings().store_url, VERSION_TABLE)
