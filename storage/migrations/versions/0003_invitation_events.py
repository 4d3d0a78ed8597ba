"""0003 invitation events: every status change of an invitation, with its reason.

The table is written out here (not taken from `storage/schema.py`), like 0001's. Invitations
that already left `pending` get one event each, so that `svarbot log` shows where they stand:
the status they have, at their `updated_at`, with no previous status (it was never recorded)
and the reason "status before 0003". One INSERT … SELECT, however many invitations there are.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

#: The reason written on the events back-filled for statuses set before this revision.
BACKFILL_REASON = "status before 0003"

_INVITATIONS = sa.table("invitations", sa.column("id", sa.Integer),
                        sa.column("status", sa.String), sa.column("updated_at", sa.DateTime))


def _create() -> sa.Table:
    table = op.create_table(
        "invitation_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("invitation_id", sa.Integer,
                  sa.ForeignKey("invitations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("previous", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_invitation_events_invitation_id", "invitation_events",
                    ["invitation_id"])
    return table


def _backfill(events: sa.Table) -> None:
    """One event per invitation that is no longer pending: where it stands today."""
    source = (sa.select(_INVITATIONS.c.id, _INVITATIONS.c.updated_at, _INVITATIONS.c.status,
                        sa.null(), sa.literal(BACKFILL_REASON))
              .where(_INVITATIONS.c.status != "pending").order_by(_INVITATIONS.c.id))
    op.get_bind().execute(events.insert().from_select(
        ["invitation_id", "at", "status", "previous", "reason"], source))


def upgrade() -> None:
    """Create `invitation_events` and record where every contacted invitation stands."""
    _backfill(_create())


def downgrade() -> None:
    """Drop the history (only for development: svarbot never downgrades a database)."""
    op.drop_index("ix_invitation_events_invitation_id", table_name="invitation_events")
    op.drop_table("invitation_events")
