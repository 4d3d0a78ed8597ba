"""Alembic migrations for svarbot's schema, shipped inside the package.

They live here (not beside an `alembic.ini` at the repository root) so that an installed
svarbot can create and upgrade its own database: `storage.migrate` builds the Alembic
configuration in code with `script_location = "storage:migrations"`.
"""
