"""Operator tools: refusals with their reasons, what operators did with dead letters, the audit trail, receivers'
last fetches, and finding messages by MsgId.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edi.kapabilitetsregister.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

HER_ID = sa.String(20)


def upgrade() -> None:
    op.create_table(
        "refusals",
        sa.Column("message_id", sa.Uuid, primary_key=True),
        sa.Column("sender_her_id", HER_ID),
        sa.Column("msg_id", sa.Text),
        sa.Column("errors", sa.JSON, nullable=False),
        sa.Column("rejected_at", UtcDateTime, nullable=False),
    )
    op.create_index("refusals_by_msg_id", "refusals", ["msg_id"])
    op.create_index("refusals_by_sender", "refusals", ["sender_her_id"])
    op.create_table(
        "dead_letters",
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("dlq_offset", sa.BigInteger, primary_key=True),
        sa.Column("message_id", sa.Uuid),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("redriven_to", sa.Text),
        sa.Column("done_at", UtcDateTime),
    )
    op.create_table(
        "operator_actions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text),
    )
    op.create_table(
        "receiver_fetches",
        sa.Column("her_id", HER_ID, primary_key=True),
        sa.Column("fetched_at", UtcDateTime, nullable=False),
    )
    op.create_index("messages_by_msg_id", "messages", ["msg_id"])


def downgrade() -> None:
    op.drop_index("messages_by_msg_id", "messages")
    for table in ("receiver_fetches", "operator_actions", "dead_letters", "refusals"):
        op.drop_table(table)
