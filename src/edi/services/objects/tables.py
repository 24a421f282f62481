"""The object service's tables (SQLAlchemy Core). The schema itself is created by the Alembic migrations."""

from __future__ import annotations

import sqlalchemy as sa

from edi.kapabilitetsregister.tables import UtcDateTime

# Alembic's version table of this schema: its own, so the objects can share a database with other services.
VERSION_TABLE = "objects_alembic_version"

metadata = sa.MetaData()

# One row per object, kept as a tombstone after deletion (state "deleted") so that the sender can still see
# who downloaded it and why it is gone; the janitor purges tombstones after the retention period.
objects = sa.Table(
    "objects", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("sender_her_id", sa.String(32), nullable=False),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text),
    sa.Column("state", sa.String(16), nullable=False),  # uploading, stored, deleted
    sa.Column("upload_id", sa.Text),  # the blob store's multipart upload, while uploading through parts
    sa.Column("size", sa.BigInteger),  # known once stored
    sa.Column("sha256", sa.String(64)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime),
    sa.Column("deleted_reason", sa.String(16)),  # confirmed, expired, sender, cancelled
    sa.Index("objects_by_state_and_age", "state", "created_at"),
)

object_receivers = sa.Table(
    "object_receivers", metadata,
    sa.Column("key", sa.String(64), sa.ForeignKey("objects.key", ondelete="CASCADE"), primary_key=True),
    sa.Column("her_id", sa.String(32), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),  # the order the sender listed them in
    sa.Column("confirmed_at", UtcDateTime),  # when this receiver confirmed its download
)
