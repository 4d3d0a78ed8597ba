"""0007 web: what the browser desk and dashboard keep.

`desk_queries` learns where a question came from (the channel and the email thread, so that
the contact person's answer lands in the respondent's conversation), who answered and when,
when it was closed or mailed to the desk, and a random reply key for the desk's own email
reply. New tables: `canned_replies` (the contact person's kept answers), `web_sessions`
(server-side login sessions, stored by the hash of the cookie), `login_failures` (what
throttles guessing) and `heartbeats` (when the leader, the IMAP reader and the Telegram
poller last did their work, for the dashboard's health page). Plain ALTER TABLE: no table is copied.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TS = sa.DateTime(timezone=True)
_QUERY_COLUMNS = ("channel", "thread", "reply_key", "answered_by", "closed_at", "updated_at",
                  "notified_at")


def upgrade() -> None:
    """Add the desk columns and the three tables."""
    op.add_column("desk_queries", sa.Column("channel", sa.String(16), nullable=True))
    op.add_column("desk_queries", sa.Column("thread", sa.JSON, nullable=True))
    op.add_column("desk_queries", sa.Column("reply_key", sa.String(43), nullable=True))
    op.add_column("desk_queries", sa.Column("answered_by", sa.String(120), nullable=True))
    op.add_column("desk_queries", sa.Column("closed_at", _TS, nullable=True))
    op.add_column("desk_queries", sa.Column("updated_at", _TS, nullable=True))
    op.add_column("desk_queries", sa.Column("notified_at", _TS, nullable=True))
    op.create_index("ix_desk_queries_reply_key", "desk_queries", ["reply_key"], unique=True)
    op.create_index("ix_desk_queries_status", "desk_queries", ["status", "created_at"])
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("lang", sa.String(2), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("csrf", sa.String(43), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
    )
    op.create_table(
        "heartbeats",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("at", _TS, nullable=False),
        sa.Column("detail", sa.String(200), nullable=False),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, index=True),
        sa.Column("address", sa.String(64), nullable=False, index=True),
        sa.Column("at", _TS, nullable=False, index=True),
    )


def downgrade() -> None:
    """Drop them (only for development: svarbot never downgrades a database)."""
    op.drop_table("login_failures")
    op.drop_table("heartbeats")
    op.drop_table("web_sessions")
    op.drop_table("canned_replies")
    op.drop_index("ix_desk_queries_status", table_name="desk_queries")
    op.drop_index("ix_desk_queries_reply_key", table_name="desk_queries")
    for column in _QUERY_COLUMNS:
        op.execute(f"ALTER TABLE desk_queries DROP COLUMN {column}")
