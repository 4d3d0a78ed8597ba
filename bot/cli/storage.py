"""The `svarbot` commands for the database: `init`, `db upgrade` and `seal`; registered by bot.cli.

They follow the CLI's rule: a problem with the configuration or the database is one line
`svarbot: ...` on stderr and exit status 2, never a traceback. `seal` is irreversible, so it
says what it will destroy and asks first (unless `--yes`); an unknown survey is exit status 1.
The storage modules (SQLAlchemy, Alembic) are imported inside the commands, so that
`svarbot --help` and the questionnaire tools start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bot.cli.common import config_option, load_config
from bot.cli.common import fail as _fail
from bot.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from storage.answers import SealResult



# --- init -----------------------------------------------------------------------------------


def _register_surveys(url: str, settings: Settings) -> list[str]:
    from storage.db import session_factory, transaction
    from storage.identity import ensure_survey
    from storage.migrate import open_database

    engine = open_database(url)
    try:
        with transaction(session_factory(engine)) as session:
            return [ensure_survey(session, s.id, s.questionnaire).id for s in settings.surveys]
    finally:
        engine.dispose()


@click.command("init")
@config_option
def init_command(config_path: str | None) -> None:
    """Create a new svarbot database at database.url, with the configured surveys.

    Refuses a database that already has tables (use `svarbot db upgrade` for those).
    """
    from storage.db import StorageError
    from storage.migrate import describe, init_database

    settings = load_config(config_path)
    url = settings.database.url
    try:
        revision = init_database(url)
        surveys = _register_surveys(url, settings)
    except StorageError as exc:
        _fail(str(exc))
    click.echo(f"created the svarbot database at {describe(url)} (schema revision {revision})")
    if surveys:
        click.echo(f"surveys: {', '.join(surveys)}")


# --- db -------------------------------------------------------------------------------------


@click.group("db")
def db_group() -> None:
    """Maintain the database schema."""


@db_group.command("upgrade")
@config_option
def db_upgrade(config_path: str | None) -> None:
    """Bring the database at database.url up to this svarbot's schema."""
    from storage.db import StorageError
    from storage.migrate import upgrade

    settings = load_config(config_path)
    try:
        before, after = upgrade(settings.database.url)
    except StorageError as exc:
        _fail(str(exc))
    if before == after:
        click.echo(f"the database is up to date (schema revision {after})")
    else:
        click.echo(f"upgraded the database from schema revision {before or '(none)'} to {after}")


# --- seal -----------------------------------------------------------------------------------


def _counts(session: Session, survey_id: str) -> tuple[int, int]:
    """How many responses the survey has, and how many of them are still linked."""
    from sqlalchemy import func, select

    from storage.schema import Response, ResponseLink

    def count(model: type[Response] | type[ResponseLink]) -> int:
        return int(session.scalar(select(func.count()).select_from(model)
                                  .where(model.survey_id == survey_id)) or 0)

    return count(Response), count(ResponseLink)


def _confirm_seal(survey_id: str, responses: int, links: int) -> None:
    click.echo(f"Sealing survey {survey_id} deletes the links between its {responses} "
               f"responses and the {links} invitations they came from, and the conversation "
               "state and message bodies still held for those invitations.")
    click.echo("The answers stay, but can never again be tied to anyone, and respondents can "
               "no longer change them. This cannot be undone.")
    click.confirm(f"Seal {survey_id}?", default=False, abort=True)


def _seal(engine: Engine, survey_id: str, yes: bool) -> SealResult:
    """Check the survey, ask, seal it and rewrite the files; exit 1 for an unknown survey."""
    from storage.answers import scrub, seal
    from storage.db import session_factory, transaction
    from storage.schema import Survey, SurveyStatus

    factory = session_factory(engine)
    with transaction(factory) as session:
        survey = session.get(Survey, survey_id)
        if survey is None:
            _fail(f"no survey {survey_id!r} in the database", status=1)
        already = survey.status == SurveyStatus.SEALED
        counts = _counts(session, survey_id)
    if not already and not yes:
        _confirm_seal(survey_id, *counts)
    with transaction(factory) as session:
        result = seal(session, survey_id)
    scrub(engine)
    return result


@click.command("seal")
@click.argument("survey_id", metavar="SURVEY")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@config_option
def seal_command(survey_id: str, yes: bool, config_path: str | None) -> None:
    """Seal SURVEY: make its answers impossible to tie to anyone. Irreversible.

    Deletes the links between responses and invitations, and the conversation state and
    message bodies still held for the survey's invitations, and (with IMAP) the processed
    replies on the mail server. The answers stay.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from storage.db import StorageError
    from storage.migrate import open_database

    settings = load_config(config_path)
    try:
        engine = open_database(settings.database.url)
    except StorageError as exc:
        _fail(str(exc))
    try:
        result = _seal(engine, survey_id, yes)
    except StorageError as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(f"database error: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}")
    finally:
        engine.dispose()
    if result.already_sealed:
        click.echo(f"survey {survey_id} was already sealed; database files rewritten")
    else:
        click.echo(f"survey {survey_id} sealed: {result.links_deleted} links deleted, "
                   f"{result.sessions_cleared} conversation states cleared")
    if settings.email.imap.enabled:
        _purge_mailbox(settings, survey_id)


def _purge_mailbox(settings: Settings, survey_id: str) -> None:
    """Delete the survey's processed replies from the IMAP server (they may hold answers)."""
    from imapclient.exceptions import IMAPClientError  # type: ignore[import-untyped]
    from sqlalchemy import select

    from bot.channels.email.imap_reader import purge_processed
    from storage.db import session_factory
    from storage.migrate import open_database
    from storage.schema import InboxMessage, Invitation

    engine = open_database(settings.database.url)
    try:
        with session_factory(engine)() as session:
            ids = [m for (m,) in session.execute(
                select(InboxMessage.message_id).join(
                    Invitation, Invitation.id == InboxMessage.invitation_id)
                .where(Invitation.survey_id == survey_id,
                       InboxMessage.message_id.is_not(None)))]
    finally:
        engine.dispose()
    try:
        deleted = purge_processed(settings, [m for m in ids if m])
    except (OSError, IMAPClientError) as exc:
        click.echo(f"svarbot: the IMAP server could not be reached to delete processed mail "
                   f"({exc}); run `svarbot seal {survey_id}` again later", err=True)
        return
    click.echo(f"{deleted} processed messages deleted from the IMAP server")


COMMANDS: list[click.Command] = [init_command, db_group, seal_command]
