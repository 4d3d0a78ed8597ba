"""`svarbot user`: people who log in, Argon2id hashes, and the audit log of every change."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.cli import main
from storage.schema import AuditEvent, User
from storage.users import check_password

PASSWORD = "riktig hest batteri stift"  # noqa: S105 - a test password


@pytest.fixture
def config(tmp_path: Path, factory: sessionmaker[Session]) -> str:
    engine = factory.kw["bind"]
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  url: '{engine.url.render_as_string(hide_password=False)}'\n",
                    encoding="utf-8")
    return str(path)


def _cli(config: str, *args: str, stdin: str = "") -> Result:
    return CliRunner().invoke(main, [*args, "--config", config], input=stdin)


def test_a_user_is_added_with_an_argon2id_hash_and_can_log_in(
        config: str, factory: sessionmaker[Session]) -> None:
    result = _cli(config, "user", "add", "kari", "--role", "contact", "--password-stdin",
                  stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    with factory() as session:
        user = session.scalars(select(User)).one()
        assert user.role == "contact"
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert check_password(session, "kari", PASSWORD) is not None
        assert check_password(session, "kari", "feil passord her") is None
        assert check_password(session, "ola", PASSWORD) is None
        audit = session.scalars(select(AuditEvent)).one()
        assert (audit.actor.startswith("cli"), audit.action, audit.target) == (
            True, "user added", "kari (contact)")
        assert audit.at is not None


def test_list_passwd_and_remove_are_audited(config: str,
                                            factory: sessionmaker[Session]) -> None:
    for name, role in (("kari", "contact"), ("ola", "operator")):
        assert _cli(config, "user", "add", name, "--role", role, "--password-stdin",
                    stdin=PASSWORD + "\n").exit_code == 0
    listed = _cli(config, "user", "list")
    lines = listed.output.splitlines()
    assert [line.split()[:2] for line in lines[1:]] == [["kari", "contact"],
                                                         ["ola", "operator"]]
    assert all(len(line) <= 80 for line in lines)
    new = "et helt annet passord"
    assert _cli(config, "user", "passwd", "ola", "--password-stdin",
                stdin=new + "\n").exit_code == 0
    assert _cli(config, "user", "remove", "kari").exit_code == 0
    with factory() as session:
        assert [u.name for u in session.scalars(select(User))] == ["ola"]
        assert check_password(session, "ola", new) is not None
        assert check_password(session, "ola", PASSWORD) is None
        actions = [(e.action, e.target) for e in session.scalars(
            select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == [("user added", "kari (contact)"), ("user added", "ola (operator)"),
                       ("password changed", "ola"), ("user removed", "kari")]
    assert not any(PASSWORD in t or new in t for _a, t in actions)


def test_bad_input_is_one_line_and_changes_nothing(config: str,
                                                   factory: sessionmaker[Session]) -> None:
    short = _cli(config, "user", "add", "kari", "--role", "contact", "--password-stdin",
                 stdin="kort\n")
    assert short.exit_code == 1
    assert short.stderr.strip() == (
        "svarbot: the password must have at least 10 characters")
    assert _cli(config, "user", "add", "kari", "--role", "contact", "--password-stdin",
                stdin=PASSWORD + "\n").exit_code == 0
    twice = _cli(config, "user", "add", "kari", "--role", "admin", "--password-stdin",
                 stdin=PASSWORD + "\n")
    assert twice.stderr.strip() == (
        "svarbot: there is already a user called 'kari'")
    unknown = _cli(config, "user", "passwd", "nobody", "--password-stdin",
                   stdin=PASSWORD + "\n")
    assert unknown.stderr.strip() == "svarbot: no user called 'nobody'"
    role = _cli(config, "user", "add", "per", "--role", "boss", "--password-stdin",
                stdin=PASSWORD + "\n")
    assert role.exit_code == 2
    with factory() as session:
        assert [u.name for u in session.scalars(select(User))] == ["kari"]
        assert len(session.scalars(select(AuditEvent)).all()) == 1


def test_the_password_is_asked_twice_at_the_prompt(config: str,
                                                   factory: sessionmaker[Session]) -> None:
    result = _cli(config, "user", "add", "kari", "--role", "operator",
                  stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    with factory() as session:
        assert check_password(session, "kari", PASSWORD) is not None
