"""0002 answer counts: `answer_counts`, what the report reads, back-filled from the answers.

The table is written out here (not taken from `storage/schema.py`), like 0001's, and the
back-fill reads and writes through this revision's own table definitions; only the rule for
what an answer counts as comes from `storage.counts`, the same rule `AnswerStore.record` keeps
the table up to date with.

Which answers are free text (counted as "answered", never by their text) is in each survey's
questionnaire: a survey that has answers needs its questionnaire to be readable (a shipped id,
or a file path as `svarbot report` reads it). If one is not, the upgrade stops with one line
naming it and changes nothing. A caller can pass its own lookup as
`config.attributes["questionnaires"]` (a function from the reference to a Questionnaire).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import context, op

from flows.loader import QuestionnaireError
from flows.model import Questionnaire
from storage.counts import Tables, load_questionnaire, recount
from storage.db import StorageError

revision = "0002"
down_revision: str | None = "0001"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_SURVEYS = sa.table("surveys", sa.column("id", sa.String), sa.column("questionnaire", sa.String))
_RESPONSES = sa.table(
    "responses", sa.column("id", sa.String), sa.column("survey_id", sa.String),
    sa.column("respondent_type", sa.String), sa.column("sector", sa.String),
    sa.column("landsdel", sa.String), sa.column("size_class", sa.String),
    sa.column("completed", sa.Boolean))
_ANSWERS = sa.table("answers", sa.column("response_id", sa.String),
                    sa.column("answer_id", sa.String), sa.column("value", sa.JSON))


def _create() -> sa.Table:
    return op.create_table(
        "answer_counts",
        sa.Column("survey_id", sa.String(64), primary_key=True),
        sa.Column("answer_id", sa.String(130), primary_key=True),
        sa.Column("value_key", sa.Text, primary_key=True),
        sa.Column("respondent_type", sa.String(16), primary_key=True),
        sa.Column("sector", sa.String(32), primary_key=True),
        sa.Column("landsdel", sa.String(64), primary_key=True),
        sa.Column("size_class", sa.String(16), primary_key=True),
        sa.Column("completed", sa.Boolean, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
        sqlite_with_rowid=False,
    )


def _backfill(counts: sa.Table) -> None:
    """Count the answers of every survey that has any, with that survey's questionnaire."""
    lookup: Callable[[str], Questionnaire] = context.config.attributes.get(
        "questionnaires", load_questionnaire)
    connection = op.get_bind()
    tables = Tables(_RESPONSES, _ANSWERS, counts)
    answered = sa.select(_RESPONSES.c.survey_id).distinct().scalar_subquery()
    surveys = connection.execute(sa.select(_SURVEYS.c.id, _SURVEYS.c.questionnaire)
                                 .where(_SURVEYS.c.id.in_(answered))
                                 .order_by(_SURVEYS.c.id)).all()
    for survey_id, reference in surveys:
        try:
            questionnaire = lookup(reference)
        except QuestionnaireError as exc:
            raise StorageError(
                f"survey {survey_id}: its questionnaire {reference} cannot be read "
                f"({exc.problems[0]}), and its answers cannot be counted without it; nothing "
                "changed (run the upgrade where the questionnaire can be found)") from exc
        recount(connection, survey_id, questionnaire, tables)


def upgrade() -> None:
    """Create `answer_counts` and count the answers already stored."""
    _backfill(_create())


def downgrade() -> None:
    """Drop the counts (only for development: svarbot never downgrades a database)."""
    op.drop_table("answer_counts")
