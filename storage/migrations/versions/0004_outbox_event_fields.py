"""0004 outbox event fields: a retry's attempt number and next attempt time as columns.

Until 0003 both were written into the event's text ("attempt 2: 451 later; next at
2019-10-14 09:03:00Z") and read back by pattern. Now they are columns and `detail` is only the
reason. Existing retry events are converted once, here; "queued (kind)" details, which said
nothing the row does not, are emptied.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_OLD_RETRY = re.compile(r"^attempt (\d+): (.*); next at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)Z$",
                        re.DOTALL)

_EVENTS = sa.table("outbox_events", sa.column("id", sa.Integer),
                   sa.column("status", sa.String), sa.column("detail", sa.Text),
                   sa.column("attempt", sa.Integer),
                   sa.column("next_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    """Add the columns and move the numbers out of the retry events' text."""
    with op.batch_alter_table("outbox_events") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer, nullable=True))
        batch.add_column(sa.Column("next_at", sa.DateTime(timezone=True), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_EVENTS.c.id, _EVENTS.c.detail)
                        .where(_EVENTS.c.status == "retry")).all()
    for event_id, detail in rows:
        match = _OLD_RETRY.match(detail or "")
        if match is None:
            continue
        attempt, reason, when = match.groups()
        next_at = dt.datetime.strptime(when, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
        bind.execute(_EVENTS.update().where(_EVENTS.c.id == event_id)
                     .values(detail=reason, attempt=int(attempt), next_at=next_at))
    bind.execute(_EVENTS.update().where(_EVENTS.c.status == "queued",
                                        _EVENTS.c.detail.like("queued (%)"))
                 .values(detail=""))


def downgrade() -> None:
    """Drop the columns (only for development: svarbot never downgrades a database)."""
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_column("next_at")
        batch.drop_column("attempt")
