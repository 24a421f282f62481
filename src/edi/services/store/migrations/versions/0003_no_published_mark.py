"""Claims without the published mark: a resubmission of the same document is published again and the services
take it as the message they have (by its id), so nothing needs to know whether the first one reached the bus.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as table:  # SQLite drops a column by copying the table
        table.drop_column("published")


def downgrade() -> None:
    with op.batch_alter_table("messages") as table:
        table.add_column(sa.Column("published", sa.Boolean, nullable=False, server_default=sa.true()))
