"""`svarbot user`: the people who log in to svarbot's desk and dashboard.

Passwords are asked for at a prompt (twice, not echoed) or read from standard input with
`--password-stdin` (one line, for scripts); never from the command line, where other users
of the machine can see them. Every change is in the audit log, with the terminal user.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from bot.cli.common import config_option, open_configured
from bot.cli.common import fail as _fail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ROLES = ("operator", "contact", "admin")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Passord", hide_input=True, confirmation_prompt="Gjenta passordet"))


def _in_database(config_path: str | None, action: Callable[[Session], object]) -> None:
    """Run `action(session)` in one transaction on the configured database."""
    from storage.db import session_factory, transaction
    from storage.users import UserError

    engine = open_configured(config_path)
    try:
        with transaction(session_factory(engine)) as session:
            action(session)
    except UserError as exc:
        _fail(str(exc), 1)
    finally:
        engine.dispose()


@click.group("user")
def user_group() -> None:
    """Add, list, change and remove the people who log in (operators, contact persons)."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="operator: delivery and the log; contact: the desk; admin: both, and users.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@config_option
def user_add(name: str, role: str, password_stdin: bool, config_path: str | None) -> None:
    """Add the user NAME with ROLE; the password is asked for (or read from stdin)."""
    from storage.schema import UserRole
    from storage.users import add_user

    password = _password(password_stdin)
    _in_database(config_path, lambda session: add_user(
        session, name, UserRole(role), password, actor=_actor()))
    click.echo(f"user {name} added ({role})")


@user_group.command("list")
@config_option
def user_list(config_path: str | None) -> None:
    """List the users with their role and when their password was last set."""
    from storage.history import local_time
    from storage.users import list_users

    def show(session: Session) -> None:
        users = list_users(session)
        if not users:
            click.echo("no users yet: svarbot user add NAME --role operator|contact|admin")
            return
        width = max(len(u.name) for u in users)
        click.echo(f"{'name':<{width}}  role      password set")
        for u in users:
            click.echo(f"{u.name:<{width}}  {u.role:<8}  {local_time(u.password_changed_at)}")

    _in_database(config_path, show)


@user_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@config_option
def user_passwd(name: str, password_stdin: bool, config_path: str | None) -> None:
    """Give the user NAME a new password."""
    from storage.users import set_password

    password = _password(password_stdin)
    _in_database(config_path, lambda session: set_password(session, name, password,
                                                           actor=_actor()))
    click.echo(f"password of {name} changed")


@user_group.command("remove")
@click.argument("name")
@config_option
def user_remove(name: str, config_path: str | None) -> None:
    """Remove the user NAME."""
    from storage.users import remove_user

    _in_database(config_path, lambda session: remove_user(session, name, actor=_actor()))
    click.echo(f"user {name} removed")


COMMANDS = [user_group]
