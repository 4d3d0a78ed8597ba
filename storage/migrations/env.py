"""Alembic's entry point: run the migrations on the connection `storage.migrate` hands over.

svarbot runs Alembic from code, never from an `alembic.ini`: the caller opens the connection
(with svarbot's SQLite settings) and passes it in `config.attributes["connection"]`, so the
upgrade runs in the caller's transaction. A developer running the `alembic` command with its
own configuration gets a fresh engine from `sqlalchemy.url` instead. `render_as_batch` lets
later revisions alter tables on SQLite, which cannot ALTER most things in place.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from storage.db import make_engine
from storage.schema import Base


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the given connection, or through one made from `sqlalchemy.url`."""
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url configured")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("svarbot migrations run online only (no --sql mode)")
run_migrations_online()
