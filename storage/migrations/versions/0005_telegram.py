"""0005 telegram: what binds a Telegram chat to an invitation.

The deep-link payload (`telegram_start`, unique), the bound user and chat as 64-bit integers
(the old text column `telegram_chat_id` was never written and is replaced), whether the chat
still takes messages, whether someone else tried the link, and the channel the respondent last
wrote from.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    """Add the Telegram columns to `invitations`, in place.

    Plain ALTER TABLE statements (SQLite has had DROP COLUMN since 3.35): the table is never
    copied, so the rows that point at invitations (events, outbox, desk queries) are untouched.
    """
    op.execute("ALTER TABLE invitations DROP COLUMN telegram_chat_id")
    op.add_column("invitations", sa.Column("telegram_start", sa.String(43), nullable=True))
    op.add_column("invitations", sa.Column("telegram_user_id", sa.BigInteger, nullable=True))
    op.add_column("invitations", sa.Column("telegram_chat_id", sa.BigInteger, nullable=True))
    op.add_column("invitations", sa.Column("telegram_active", sa.Boolean, nullable=False,
                                           server_default=sa.true()))
    op.add_column("invitations", sa.Column("start_shared", sa.Boolean, nullable=False,
                                           server_default=sa.false()))
    op.add_column("invitations", sa.Column("last_channel", sa.String(16), nullable=True))
    op.create_index("ix_invitations_telegram_start", "invitations", ["telegram_start"],
                    unique=True)
    op.create_index("ix_invitations_telegram_chat_id", "invitations", ["telegram_chat_id"])


def downgrade() -> None:
    """Drop them (only for development: svarbot never downgrades a database)."""
    op.drop_index("ix_invitations_telegram_chat_id", table_name="invitations")
    op.drop_index("ix_invitations_telegram_start", table_name="invitations")
    for column in ("last_channel", "start_shared", "telegram_active", "telegram_chat_id",
                   "telegram_user_id", "telegram_start"):
        op.execute(f"ALTER TABLE invitations DROP COLUMN {column}")
    op.add_column("invitations", sa.Column("telegram_chat_id", sa.String(64), nullable=True))
