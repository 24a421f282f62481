"""The kind of each delivered message and why its receiver got it without a capability check: what the
coverage report reads (which receivers got which kinds unchecked), and what history and notifications name.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mailbox", sa.Column("kind", sa.Text))
    op.add_column("mailbox", sa.Column("unchecked_reason", sa.String(32)))
    # Partial: the coverage report reads only the unchecked rows, and the others need no index entry.
    unchecked = sa.text("unchecked_reason IS NOT NULL")
    op.create_index("mailbox_unchecked", "mailbox", ["delivered_at"], postgresql_where=unchecked,
                    sqlite_where=unchecked)


def downgrade() -> None:
    op.drop_index("mailbox_unchecked", "mailbox")
    with op.batch_alter_table("mailbox") as table:
        table.drop_column("unchecked_reason")
        table.drop_column("kind")
