"""Architecture rules that keep the engine pure and the package surface honest."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_FLOWS = {"bot", "storage", "sqlalchemy", "aiosmtplib", "imapclient", "telegram",
                      "apscheduler", "socket", "subprocess", "requests", "httpx", "asyncio"}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_flows_imports_nothing_from_bot_or_storage_or_io() -> None:
    """flows/ is pure: it imports neither the channels, the database nor any I/O library."""
    offenders = {}
    for path in sorted((ROOT / "flows").rglob("*.py")):
        bad = _imports(path) & FORBIDDEN_IN_FLOWS
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_engine_reads_no_clock_and_draws_no_random_numbers() -> None:
    """The engine modules never call datetime.now(), time.time() or the random module."""
    for name in ("engine.py", "answers.py", "commands.py", "render.py", "session.py"):
        path = ROOT / "flows" / name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert "random" not in _imports(path), name
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in CLOCK_CALLS, f"{name}:{node.lineno} reads a clock"


def test_the_guard_itself_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The import scan does find a forbidden import (so the rule above can fail)."""
    sample = tmp_path / "x.py"
    sample.write_text("from storage.db import x\nimport bot.cli\n", encoding="utf-8")
    assert _imports(sample) & FORBIDDEN_IN_FLOWS == {"storage", "bot"}


# --- the channels and the core ---------------------------------------------------------------

BOT = ROOT / "bot"
#: Names the code gives to rows of the identity side: assigning their attributes writes tables.
ROW_NAMES = {"invitation", "respondent", "survey", "db_survey", "query", "desk_query"}
WRITES = {"insert", "update", "delete"}
SESSION_WRITES = {"add", "add_all", "delete", "merge", "bulk_save_objects"}


def _modules(path: Path) -> set[str]:
    """Every module `path` imports, dotted in full (`bot.channels.email.smtp`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _channel_packages() -> list[Path]:
    return sorted(p for p in (BOT / "channels").iterdir()
                  if p.is_dir() and (p / "__init__.py").exists())


def test_no_channel_imports_another() -> None:
    """Each channel package (email, telegram …) translates for itself: none imports another."""
    packages = _channel_packages()
    assert [p.name for p in packages][:1] == ["email"]
    offenders = {}
    for package in packages:
        others = {f"bot.channels.{p.name}" for p in packages if p != package}
        for path in sorted(package.rglob("*.py")):
            bad = {m for m in _modules(path) if any(m == o or m.startswith(o + ".")
                                                     for o in others)}
            if bad:
                offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_the_conversation_core_knows_no_channel() -> None:
    """bot/conversation and bot/campaign reach channels only through the base and the registry."""
    offenders = {}
    for folder in ("conversation", "campaign"):
        for path in sorted((BOT / folder).rglob("*.py")):
            bad = {m for m in _modules(path)
                   if m.startswith("bot.channels.") and not m.startswith(
                       ("bot.channels.base", "bot.channels.registry"))}
            if bad:
                offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def _table_writes(path: Path) -> list[str]:
    """Where `path` writes a table itself: SQL writes, session.add …, row attributes set."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                "sqlalchemy"):
            found += [f"{node.lineno}: imports {a.name}" for a in node.names
                      if a.name in WRITES]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in SESSION_WRITES and isinstance(node.func.value, ast.Name)
              and node.func.value.id == "session"):
            found.append(f"{node.lineno}: session.{node.func.attr}")
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"{node.lineno}: sets {t.value.id}.{t.attr}" for t in targets
                      if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                      and t.value.id in ROW_NAMES]
    return found


def test_only_storage_writes_tables() -> None:
    """Nothing under bot/ writes a table: every write goes through a storage function."""
    offenders = {str(p.relative_to(ROOT)): w for p in sorted(BOT.rglob("*.py"))
                 if (w := _table_writes(p))}
    assert offenders == {}


def test_the_table_write_guard_catches_writes(tmp_path: Path) -> None:
    """The write scan finds each kind of write (so the rule above can fail)."""
    sample = tmp_path / "x.py"
    sample.write_text("from sqlalchemy import select, update\n"
                      "session.add(row)\n"
                      "invitation.status = 'closed'\n", encoding="utf-8")
    assert sorted(_table_writes(sample)) == ["1: imports update", "2: session.add",
                                             "3: sets invitation.status"]


def test_configuration_and_the_calendar_import_in_one_direction() -> None:
    """bot.campaign.plan is pure and knows no configuration; bot.config builds plans from it."""
    assert not {m for m in _modules(BOT / "campaign" / "plan.py") if m.startswith("bot.")}
    assert not {m for m in _modules(BOT / "config.py")
                if m.startswith("bot.") and not m.startswith("bot.campaign.plan")}


def test_every_package_is_in_the_distribution() -> None:
    """pyproject.toml finds the packages under bot, flows and storage rather than listing
    them, so a new one cannot be left out of a non-editable install (tests/test_packaging.py
    builds the wheel and checks that every module and data file is in it)."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["setuptools"]
    assert setuptools["packages"]["find"]["include"] == ["bot*", "flows*", "storage*"]
