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
