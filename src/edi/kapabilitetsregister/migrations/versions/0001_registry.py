"""The capability registry: parties, capabilities, overrides and the change history.

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
    head = op.create_table(
        "registry_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0}])
    op.create_table(
        "parties",
        sa.Column("her_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent_her_id", sa.BigInteger),
        sa.Column("organisation_number", sa.String(9)),
        sa.Column("active", sa.Boolean, nullable=False),
        _moment("valid_from"),
        _moment("valid_to"),
        sa.Column("source_system", sa.Text),
        sa.Column("source_version", sa.Text),
        sa.Column("delivery_channel", sa.String(16), nullable=False),
        sa.Column("kafka_topic", sa.String(249)),
        sa.Column("accepts_file_reference", sa.Boolean, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        _moment("updated_at", nullable=False),
    )
    op.create_table(
        "capabilities",
        sa.Column("her_id", sa.BigInteger, sa.ForeignKey("parties.her_id"), primary_key=True),
        sa.Column("specification_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("direction", sa.String(8), primary_key=True),
        _moment("valid_from"),
        _moment("valid_to"),
        sa.Column("registered_by", sa.Text, nullable=False),
        _moment("registered_at", nullable=False),
    )
    op.create_table(
        "overrides",
        sa.Column("her_id", sa.BigInteger, sa.ForeignKey("parties.her_id"), primary_key=True),
        sa.Column("specification_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("effect", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _moment("valid_from"),
        _moment("valid_to"),
        sa.Column("set_by", sa.Text, nullable=False),
        _moment("set_at", nullable=False),
    )
    op.create_table(
        "changes",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        _moment("at", nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("her_id", sa.BigInteger, nullable=False),
        sa.Column("before", sa.JSON),
        sa.Column("after", sa.JSON),
    )
    op.create_index("ix_changes_her_id", "changes", ["her_id"])


def downgrade() -> None:
    for table in ("changes", "overrides", "capabilities", "parties", "registry_head"):
        op.drop_table(table)
