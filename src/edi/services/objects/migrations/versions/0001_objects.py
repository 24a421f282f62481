"""The object service: objects and their receivers' download confirmations.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _moment(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "objects",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("sender_her_id", sa.String(32), nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("file_name", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("upload_id", sa.Text),
        sa.Column("size", sa.BigInteger),
        sa.Column("sha256", sa.String(64)),
        _moment("created_at", nullable=False),
        _moment("updated_at", nullable=False),
        _moment("deleted_at"),
        sa.Column("deleted_reason", sa.String(16)),
    )
    op.create_index("objects_by_state_and_age", "objects", ["state", "created_at"])
    op.create_table(
        "object_receivers",
        sa.Column("key", sa.String(64), sa.ForeignKey("objects.key", ondelete="CASCADE"), primary_key=True),
        sa.Column("her_id", sa.String(32), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        _moment("confirmed_at"),
    )


def downgrade() -> None:
    op.drop_table("object_receivers")
    op.drop_index("objects_by_state_and_age", "objects")
    op.drop_table("objects")
