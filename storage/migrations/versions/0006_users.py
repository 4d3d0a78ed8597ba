"""0006 users: the people who log in to svarbot, and the audit log of what they change.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create `users` and `audit_log`."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("password_changed_at", _TS, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", _TS, nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    """Drop them (only for development: svarbot never downgrades a database)."""
    op.drop_table("audit_log")
    op.drop_table("users")
