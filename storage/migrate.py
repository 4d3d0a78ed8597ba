"""Creating, upgrading and checking the database schema, from code.

svarbot carries its own Alembic migrations (`storage/migrations`) and builds the Alembic
configuration here, so an installed svarbot needs no `alembic.ini`. Three rules:

* `init_database` only ever creates a schema in an empty database; a database that already
  has tables is refused, so `svarbot init` can never clobber data.
* Every start goes through `open_database`, which refuses a database whose schema is newer than
  this svarbot (an older svarbot must not write into a schema it does not understand), older
  (`svarbot db upgrade` first) or missing, and turns a damaged SQLite file into one line naming
  the file. Nothing is written before these checks pass.
* A missing SQLite file is never created by accident: only `init_database` creates one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from storage.db import StorageError, make_engine

if TYPE_CHECKING:
    from flows.model import Questionnaire

log = logging.getLogger(__name__)

SCRIPT_LOCATION = "storage:migrations"
VERSION_TABLE = "alembic_version"


# --- Alembic --------------------------------------------------------------------------------


def alembic_config() -> Config:
    """An Alembic configuration pointing at the migrations inside the installed package."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest schema revision this svarbot knows."""
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package always ships a revision
        raise StorageError("svarbot ships no schema revisions")
    return head


def known_revisions() -> frozenset[str]:
    """Every schema revision this svarbot knows, oldest to newest."""
    return frozenset(script.revision for script in _script().walk_revisions())


# --- where the database is ------------------------------------------------------------------


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"database.url {url!r} is not a database URL") from exc


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL, or None (another database, or SQLite in memory)."""
    parsed = _parse(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database)


def describe(url: str) -> str:
    """How to name the database to the operator: the file, or the URL without a password."""
    path = sqlite_file(url)
    if path is not None:
        return str(path)
    return _parse(url).render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0].strip() if lines else type(original).__name__


def _explain(url: str, exc: SQLAlchemyError) -> StorageError:
    """One line for a database failure, naming the file or the (password-free) URL."""
    where = describe(url)
    reason = _first_line(exc)
    if sqlite_file(url) is not None:
        if "not a database" in reason or "malformed" in reason:
            return StorageError(f"{where}: not an SQLite database, or damaged ({reason})")
        return StorageError(f"{where}: cannot use the database ({reason})")
    return StorageError(f"cannot use the database at {where} ({reason})")


def _require_file(url: str) -> None:
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise StorageError(f"{path.absolute()}: no such database; create it with `svarbot init`")


@contextmanager
def _connected(url: str) -> Iterator[Connection]:
    """A connection to `url`; every database error inside becomes one StorageError line."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            yield connection
    except SQLAlchemyError as exc:
        raise _explain(url, exc) from exc
    finally:
        engine.dispose()


# --- reading the revision -------------------------------------------------------------------


def _revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _tables(connection: Connection) -> list[str]:
    return inspect(connection).get_table_names()


def _check_not_newer(revision: str | None) -> None:
    if revision is not None and revision not in known_revisions():
        raise StorageError(f"database schema revision {revision} is newer than this svarbot "
                           f"({head_revision()}); upgrade svarbot")


def current_revision(url: str) -> str | None:
    """The schema revision of the database at `url` (None: no svarbot schema in it)."""
    _require_file(url)
    with _connected(url) as connection:
        return _revision_of(connection)


def check_schema(connection: Connection, url: str) -> str:
    """Refuse a database svarbot cannot use as it is; return its (current) revision."""
    revision = _revision_of(connection)
    _check_not_newer(revision)
    where = describe(url)
    if revision is None:
        if _tables(connection):
            raise StorageError(f"{where} has tables but no svarbot schema; "
                               "is database.url right?")
        raise StorageError(f"{where} has no svarbot schema; create it with `svarbot init`")
    head = head_revision()
    if revision != head:
        raise StorageError(f"database schema revision {revision} is older than this svarbot "
                           f"({head}); run `svarbot db upgrade`")
    return revision


def open_database(url: str) -> Engine:
    """An engine for a database that exists and has exactly this svarbot's schema.

    Every command that reads or writes svarbot's data starts here. The caller disposes of the
    engine.
    """
    _require_file(url)
    with _connected(url) as connection:
        check_schema(connection, url)
    return make_engine(url)


# --- changing the schema --------------------------------------------------------------------


#: How a migration finds a survey's questionnaire from its reference (see revision 0002).
QuestionnaireLookup = Callable[[str], "Questionnaire"]


def _run_upgrade(connection: Connection, target: str = "head",
                 questionnaires: QuestionnaireLookup | None = None) -> None:
    """Upgrade to `target` inside one transaction (on SQLite, DDL included)."""
    if connection.dialect.name == "sqlite":
        # pysqlite runs DDL outside any transaction unless one is opened explicitly.
        connection.exec_driver_sql("BEGIN")
    config = alembic_config()
    config.attributes["connection"] = connection
    if questionnaires is not None:
        config.attributes["questionnaires"] = questionnaires
    command.upgrade(config, target)
    connection.commit()


def _create_postgres_database(url: str) -> None:
    """Create the PostgreSQL database named in `url` if it does not exist yet.

    Uses the `postgres` maintenance database; without access to it, the caller's own
    connection reports the problem instead.
    """
    parsed = _parse(url)
    name = parsed.database
    if parsed.get_backend_name() != "postgresql" or not name:
        return
    admin = make_engine(parsed.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                        {"name": name}).scalar()
            if not exists:
                quoted = connection.dialect.identifier_preparer.quote(name)
                connection.exec_driver_sql(f"CREATE DATABASE {quoted}")
                log.info("created PostgreSQL database %s", quoted)
    except SQLAlchemyError:
        log.debug("could not check or create the database through 'postgres'", exc_info=True)
    finally:
        admin.dispose()


def _prepare_sqlite_file(url: str) -> None:
    path = sqlite_file(url)
    if path is not None and not path.parent.is_dir():
        raise StorageError(f"{path}: the folder {path.parent} does not exist")


def init_database(url: str, *, revision: str = "head") -> str:
    """Create svarbot's schema in a new, empty database at `url`; return the revision.

    `revision` creates an older schema instead (for tests and benchmarks of upgrades).

    Raises:
        StorageError: the database already has tables (use `upgrade`), cannot be reached,
            or is not a database.
    """
    _prepare_sqlite_file(url)
    _create_postgres_database(url)
    with _connected(url) as connection:
        if _tables(connection):
            raise StorageError(f"{describe(url)} already has tables; nothing changed "
                               "(to bring an existing svarbot database up to date, run "
                               "`svarbot db upgrade`)")
        _run_upgrade(connection, revision)
        created = _revision_of(connection)
    log.info("created the svarbot schema at revision %s", created)
    return head_revision() if created is None else created


def upgrade(url: str, questionnaires: QuestionnaireLookup | None = None,
            ) -> tuple[str | None, str]:
    """Upgrade the database at `url` to this svarbot's schema; return (before, after).

    An up-to-date database is left alone; a newer one is refused before anything is written.
    A revision that fails (e.g. 0002 cannot read a survey's questionnaire) changes nothing.
    `questionnaires` finds a survey's questionnaire from its reference (default: a file path,
    or a shipped questionnaire's id, as `svarbot report` reads them).
    """
    _require_file(url)
    with _connected(url) as connection:
        before = _revision_of(connection)
        _check_not_newer(before)
        if before is None and _tables(connection):
            raise StorageError(f"{describe(url)} has tables but no svarbot schema; "
                               "is database.url right?")
        head = head_revision()
        if before != head:
            _run_upgrade(connection, questionnaires=questionnaires)
            log.info("upgraded the schema from revision %s to %s", before, head)
    return before, head
