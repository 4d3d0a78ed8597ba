"""0008 page indexes: the dashboard's counts and the operators' lists read indexes, not tables.

On a campaign of 100,000 invitations the dashboard's GROUP BYs, the health page's "last sent"
and the respondent page's messages scanned whole tables (`bench/web_pages.py`). Each index
here covers what one of those queries filters, groups and returns.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

#: name -> (table, columns)
INDEXES = {
    # the funnel: statuses by channel, the away count (replaces survey_id, status)
    "ix_invitations_funnel": ("invitations", ["survey_id", "status", "last_channel",
                                              "away_until"]),
    # the strata: a survey's invitations joined to their respondents
    "ix_invitations_survey_respondent": ("invitations", ["survey_id", "respondent_id",
                                                         "status"]),
    # stuck conversations, across surveys
    "ix_invitations_status_contact": ("invitations", ["status", "last_contact_at"]),
    # completions per day
    "ix_invitation_events_status": ("invitation_events", ["status", "invitation_id", "at"]),
    # an invitation's messages (funnel, days, the respondent page)
    "ix_outbox_invitation": ("outbox", ["invitation_id", "kind", "status", "channel",
                                        "sent_at"]),
    # the last send per channel, sends in the last hour
    "ix_outbox_channel_sent": ("outbox", ["channel", "sent_at"]),
    # bounces and retries in a time window
    "ix_outbox_events_status_at": ("outbox_events", ["status", "at"]),
}


def upgrade() -> None:
    """Create the indexes; drop the one the funnel's index makes redundant."""
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)
    op.drop_index("ix_invitations_survey_status", table_name="invitations")


def downgrade() -> None:
    """Back to 0007's indexes."""
    op.create_index("ix_invitations_survey_status", "invitations", ["survey_id", "status"])
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
