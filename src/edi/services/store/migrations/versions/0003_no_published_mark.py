"""Claims without the published mark: a resubmission of the same document is published again and the services
take it as the message they have (by its id), so nothing needs to know whether the first one reached the bus.

The column stays for now, nullable with a default, so that instances of the earlier version still running during
a rolling upgrade (which insert, read and set it) keep working; a later migration drops it.

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
    with op.batch_alter_table("messages") as table:  # SQLite alters a column by copying the table
        table.alter_column("published", existing_type=sa.Boolean, nullable=True, server_default=sa.false())


def downgrade() -> None:
    op.execute(sa.text("UPDATE messages SET published = true WHERE published IS NULL"))
    with op.batch_alter_table("messages") as table:
        table.alter_column("published", existing_type=sa.Boolean, nullable=False, server_default=None)
