"""The backbone's SQL store: accepted messages (duplicates), mailboxes, receiver status, notifications and
receipts, on SQLite or PostgreSQL with the same code."""

from edi.services.store.settings import BackboneSettings, StoreSettings
from edi.services.store.store import (
    AcceptedRecord,
    BackboneStore,
    Claim,
    ClaimOutcome,
    StatusRow,
    StoredDelivery,
    next_status,
    open_bus_and_store,
)

__all__ = [
    "AcceptedRecord",
    "BackboneSettings",
    "BackboneStore",
    "Claim",
    "ClaimOutcome",
    "StatusRow",
    "StoreSettings",
    "StoredDelivery",
    "next_status",
    "open_bus_and_store",
]
