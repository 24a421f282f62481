"""The backbone's store: accepted messages, mailboxes, receiver status, notifications, receipts, relay positions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edi.kapabilitetsregister.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

HER_ID = sa.String(20)


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("message_id", sa.Uuid, primary_key=True),
        sa.Column("sender_her_id", HER_ID, nullable=False),
        sa.Column("msg_id", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("message_type", sa.Text, nullable=False),
        sa.Column("is_apprec", sa.Boolean, nullable=False),
        sa.Column("accepted_at", UtcDateTime, nullable=False),
        sa.Column("published", sa.Boolean, nullable=False),
        sa.UniqueConstraint("sender_her_id", "msg_id", name="messages_sender_msg_id"),
    )
    op.create_table(
        "mailbox",
        sa.Column("message_id", sa.Uuid, primary_key=True),
        sa.Column("receiver_her_id", HER_ID, primary_key=True),
        sa.Column("sender_her_id", HER_ID, nullable=False),
        sa.Column("msg_id", sa.Text, nullable=False),
        sa.Column("message_type", sa.Text, nullable=False),
        sa.Column("is_apprec", sa.Boolean, nullable=False),
        sa.Column("gen_date", UtcDateTime),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("delivered_at", UtcDateTime, nullable=False),
        sa.Column("read_at", UtcDateTime),
        sa.Column("abandoned_at", UtcDateTime),
        sa.Column("document", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("sender_her_id", "msg_id", "receiver_her_id", name="mailbox_sender_msg_id_receiver"),
    )
    op.create_index("mailbox_unread", "mailbox", ["receiver_her_id", "read_at", "gen_date"])
    op.create_table(
        "receiver_status",
        sa.Column("message_id", sa.Uuid, primary_key=True),
        sa.Column("receiver_her_id", HER_ID, primary_key=True),
        sa.Column("transport_state", sa.String(16), nullable=False),
        sa.Column("apprec_status", sa.String(1)),
        sa.Column("apprec_errors", sa.JSON),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("offset", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("her_id", HER_ID, nullable=False),
        sa.Column("message_id", sa.Uuid, nullable=False),
        sa.Column("counterpart_her_id", HER_ID),
        sa.Column("at", UtcDateTime, nullable=False),
    )
    op.create_index("notifications_by_her_id", "notifications", ["her_id", "offset"])
    op.create_table(
        "receipts",
        sa.Column("message_id", sa.Uuid, primary_key=True),
        sa.Column("apprec_message_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "relay_positions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("relay_positions", "receipts", "notifications", "receiver_status", "mailbox", "messages"):
        op.drop_table(table)
