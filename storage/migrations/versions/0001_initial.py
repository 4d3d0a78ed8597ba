"""0001 initial: the identity side, the link table and the answer side.

Written out table by table (not `metadata.create_all`) so that this revision keeps creating
exactly the first schema however `storage/schema.py` changes later; a test compares the
migrated database with the models. `responses`, `answers` and `response_links` are
`WITHOUT ROWID` on SQLite: their rows are stored in the order of their random keys, not in
the order they were written.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TS = sa.DateTime(timezone=True)


def _surveys_and_respondents() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("questionnaire", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("sealed_at", _TS, nullable=True),
    )
    op.create_table(
        "respondents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("telegram", sa.String(64), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("municipality_no", sa.String(4), nullable=False),
        sa.Column("municipality_name", sa.String(100), nullable=False),
        sa.Column("county", sa.String(100), nullable=False),
        sa.Column("sector", sa.String(32), nullable=True),
        sa.Column("unit_type", sa.String(100), nullable=True),
        sa.Column("size_class", sa.String(16), nullable=False),
        sa.Column("landsdel", sa.String(64), nullable=False),
        sa.Column("lang", sa.String(2), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("email", name="uq_respondents_email"),
    )


def _invitations() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("respondent_id", sa.Integer,
                  sa.ForeignKey("respondents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("survey_id", sa.String(64),
                  sa.ForeignKey("surveys.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reminders_sent", sa.Integer, nullable=False),
        sa.Column("last_contact_at", _TS, nullable=True),
        sa.Column("session_state", sa.Text, nullable=True),
        sa.Column("email_address", sa.String(320), nullable=True),
        sa.Column("telegram_chat_id", sa.String(64), nullable=True),
        sa.Column("answered_from_other_address", sa.Boolean, nullable=False),
        sa.Column("away_until", sa.Date, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("respondent_id", "survey_id",
                            name="uq_invitations_respondent_survey"),
    )
    op.create_index("ix_invitations_survey_status", "invitations", ["survey_id", "status"])


def _outbox() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("invitation_id", sa.Integer,
                  sa.ForeignKey("invitations.id", ondelete="SET NULL"), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=True, unique=True),
        sa.Column("payload", sa.JSON, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("deadline_at", _TS, nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("outbox_id", sa.Integer,
                  sa.ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_outbox_events_outbox_id", "outbox_events", ["outbox_id"])


def _inbox() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(400), nullable=False),
        sa.Column("message_id", sa.String(400), nullable=True),
        sa.Column("invitation_id", sa.Integer,
                  sa.ForeignKey("invitations.id", ondelete="SET NULL"), nullable=True),
        sa.Column("classification", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("received_at", _TS, nullable=False),
        sa.UniqueConstraint("channel", "external_id", name="uq_inbox_channel_external"),
    )
    op.create_index("ix_inbox_status", "inbox", ["status"])
    op.create_index("ix_inbox_message_id", "inbox", ["message_id"])
    op.create_table(
        "inbox_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("inbox_id", sa.Integer,
                  sa.ForeignKey("inbox.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_inbox_events_inbox_id", "inbox_events", ["inbox_id"])


def _desk_queries() -> None:
    op.create_table(
        "desk_queries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("invitation_id", sa.Integer,
                  sa.ForeignKey("invitations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("answer", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("answered_at", _TS, nullable=True),
    )
    op.create_index("ix_desk_queries_invitation_id", "desk_queries", ["invitation_id"])


def _link_and_answer_side() -> None:
    op.create_table(
        "response_links",
        sa.Column("link", sa.String(64), primary_key=True),
        sa.Column("survey_id", sa.String(64), nullable=False),
        sa.Column("response_id", sa.String(32), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_response_links_survey_id", "response_links", ["survey_id"])
    op.create_table(
        "responses",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("survey_id", sa.String(64), nullable=False),
        sa.Column("respondent_type", sa.String(16), nullable=False),
        sa.Column("sector", sa.String(32), nullable=True),
        sa.Column("landsdel", sa.String(64), nullable=True),
        sa.Column("size_class", sa.String(16), nullable=True),
        sa.Column("completed", sa.Boolean, nullable=False),
        sa.Column("answered_on", sa.Date, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_responses_survey_id", "responses", ["survey_id"])
    op.create_table(
        "answers",
        sa.Column("response_id", sa.String(32),
                  sa.ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("answer_id", sa.String(130), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    """Create every table of the first schema."""
    _surveys_and_respondents()
    _invitations()
    _outbox()
    _inbox()
    _desk_queries()
    _link_and_answer_side()


def downgrade() -> None:
    """Drop everything (only for development: svarbot never downgrades a database)."""
    for table in ("answers", "responses", "response_links", "desk_queries", "inbox_events",
                  "inbox", "outbox_events", "outbox", "invitations", "respondents", "surveys"):
        op.drop_table(table)
