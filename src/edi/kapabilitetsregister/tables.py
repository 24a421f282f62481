"""The registry's tables (SQLAlchemy Core). The schema itself is created by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite stores no offset, so one is put back on reading."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


metadata = sa.MetaData()

# One row: the sequence number of the last change. Every write transaction locks it first, which serialises
# writers, so change records are numbered gap-free in commit order.
registry_head = sa.Table(
    "registry_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

parties = sa.Table(
    "parties", metadata,
    sa.Column("her_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("parent_her_id", sa.BigInteger),
    sa.Column("organisation_number", sa.String(9)),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("valid_from", UtcDateTime),
    sa.Column("valid_to", UtcDateTime),
    sa.Column("source_system", sa.Text),
    sa.Column("source_version", sa.Text),
    sa.Column("delivery_channel", sa.String(16), nullable=False),
    sa.Column("kafka_topic", sa.String(249)),
    sa.Column("accepts_file_reference", sa.Boolean, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

capabilities = sa.Table(
    "capabilities", metadata,
    sa.Column("her_id", sa.BigInteger, sa.ForeignKey("parties.her_id"), primary_key=True),
    sa.Column("specification_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("direction", sa.String(8), primary_key=True),
    sa.Column("valid_from", UtcDateTime),
    sa.Column("valid_to", UtcDateTime),
    sa.Column("registered_by", sa.Text, nullable=False),
    sa.Column("registered_at", UtcDateTime, nullable=False),
)

overrides = sa.Table(
    "overrides", metadata,
    sa.Column("her_id", sa.BigInteger, sa.ForeignKey("parties.her_id"), primary_key=True),
    sa.Column("specification_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("effect", sa.String(8), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("valid_from", UtcDateTime),
    sa.Column("valid_to", UtcDateTime),
    sa.Column("set_by", sa.Text, nullable=False),
    sa.Column("set_at", UtcDateTime, nullable=False),
)

# The audit history and the source of the change stream: who, when, the state before and after.
changes = sa.Table(
    "changes", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("key", sa.String(100), nullable=False),
    sa.Column("her_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
)
