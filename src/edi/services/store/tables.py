"""The backbone's tables (SQLAlchemy Core): what the mailbox, status and receipts services materialise and the
gateway reads. The schema itself is created by the Alembic migrations in `migrations/`."""

from __future__ import annotations

import sqlalchemy as sa

from edi.kapabilitetsregister.tables import UtcDateTime

metadata = sa.MetaData()
# Alembic's version table, named apart from the registry's so both may share one database.
VERSION_TABLE = "edi_backbone_version"

HER_ID = sa.String(20)
# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets a 64-bit identity.
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Every message put on edi.accepted, once: its id, and what makes a resubmission a duplicate (same sender and
# MsgId; same content or not).
messages = sa.Table(
    "messages", metadata,
    sa.Column("message_id", sa.Uuid, primary_key=True),
    sa.Column("sender_her_id", HER_ID, nullable=False),
    sa.Column("msg_id", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("message_type", sa.Text, nullable=False),
    sa.Column("is_apprec", sa.Boolean, nullable=False),
    sa.Column("accepted_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("sender_her_id", "msg_id", name="messages_sender_msg_id"),
)

# One row per message and receiver: the receiver's copy of the document, unread until read_at is set. The
# unique constraint is the mailbox's idempotency: a message reaches a receiver once, however often it comes.
mailbox = sa.Table(
    "mailbox", metadata,
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
    # Migration 0004: the message's kind (edi.core.kinds) and why the router delivered it unchecked (an
    # unchecked_* outcome of the registry view; NULL: checked, or delivered by an older router).
    sa.Column("kind", sa.Text),
    sa.Column("unchecked_reason", sa.String(32)),
    sa.UniqueConstraint("sender_her_id", "msg_id", "receiver_her_id", name="mailbox_sender_msg_id_receiver"),
    sa.Index("mailbox_unread", "receiver_her_id", "read_at", "gen_date"),
    sa.Index("mailbox_unchecked", "delivered_at", postgresql_where=sa.text("unchecked_reason IS NOT NULL"),
             sqlite_where=sa.text("unchecked_reason IS NOT NULL")),
)

# Per message and receiver: transport state and the receiver's AppRec, as the status service last saw them.
receiver_status = sa.Table(
    "receiver_status", metadata,
    sa.Column("message_id", sa.Uuid, primary_key=True),
    sa.Column("receiver_her_id", HER_ID, primary_key=True),
    sa.Column("transport_state", sa.String(16), nullable=False),
    sa.Column("apprec_status", sa.String(1)),
    sa.Column("apprec_errors", sa.JSON),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# What happened, for whom, in order: the gateway's notification feed (polled and followed).
notifications = sa.Table(
    "notifications", metadata,
    sa.Column("offset", _SERIAL, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("her_id", HER_ID, nullable=False),
    sa.Column("message_id", sa.Uuid, nullable=False),
    sa.Column("counterpart_her_id", HER_ID),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index("notifications_by_her_id", "her_id", "offset"),
)

# The negative AppRec the backbone sent for a refused message: at most one per message.
receipts = sa.Table(
    "receipts", metadata,
    sa.Column("message_id", sa.Uuid, primary_key=True),
    sa.Column("apprec_message_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# How far an outbox reader (the registry relay) has published, so that a restart resumes there.
relay_positions = sa.Table(
    "relay_positions", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)

# --- operator tools (migration 0002) ---

# Every refusal edi.rejected carried, answered with a receipt or not: why the message was refused (each error's
# core code, AppRec code and text). At most one per message: a refused message is refused once.
refusals = sa.Table(
    "refusals", metadata,
    sa.Column("message_id", sa.Uuid, primary_key=True),
    sa.Column("sender_her_id", HER_ID),
    sa.Column("msg_id", sa.Text),
    sa.Column("errors", sa.JSON, nullable=False),
    sa.Column("rejected_at", UtcDateTime, nullable=False),
    sa.Index("refusals_by_msg_id", "msg_id"),
    sa.Index("refusals_by_sender", "sender_her_id"),
)

# What operators did with a dead letter (by its service and offset on that service's one-partition dead-letter
# topic): a re-drive is recorded here before the record is produced again, so it is done once; a parked record
# is never offered for re-drive. No row: the dead letter is open.
dead_letters = sa.Table(
    "dead_letters", metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("dlq_offset", sa.BigInteger, primary_key=True),
    sa.Column("message_id", sa.Uuid),
    sa.Column("state", sa.String(16), nullable=False),  # redriving, redriven, parked
    sa.Column("operator", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("redriven_to", sa.Text),  # topic[partition]@offset of the record produced again
    sa.Column("done_at", UtcDateTime),
)

# The operators' audit trail: who did what, when, to what, why, and how it ended.
operator_actions = sa.Table(
    "operator_actions", metadata,
    sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("operator", sa.Text, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text),
)

# When each receiver last fetched its unread messages (to see a receiver that has stopped fetching).
receiver_fetches = sa.Table(
    "receiver_fetches", metadata,
    sa.Column("her_id", HER_ID, primary_key=True),
    sa.Column("fetched_at", UtcDateTime, nullable=False),
)

# Finding a message by its MsgId alone (the unique key starts with the sender).
sa.Index("messages_by_msg_id", messages.c.msg_id)
