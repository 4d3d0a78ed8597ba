"""The svarbot command, run as a real process: exit codes, messages, machine output."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "flows" / "questionnaires"


def svarbot(*args: str, stdin: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run `svarbot ARGS` (as `python -m bot`) and capture its output."""
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, text=True,
                          capture_output=True, cwd=cwd, timeout=120, check=False)


def test_flow_check_accepts_the_shipped_questionnaires() -> None:
    """`flow check` on the shipped files exits 0 and says ok for each."""
    result = svarbot("flow", "check", *sorted(str(p) for p in SHIPPED.glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok (") == 2


def test_flow_check_lists_problems_with_lines(tmp_path: Path) -> None:
    """A broken file: exit 1, every problem as file:line: item: message, no traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "spec_version: 1\nid: bad\ntitle: Bad\npages:\n  - id: p\n    title: P\n    items:\n"
        "      - {id: a, type: single, text: A, options: [{id: x, label: X}]}\n"
        "      - {id: q7, type: yesno, text: B, show_if: {item: a, equals: y}}\n",
        encoding="utf-8")
    result = svarbot("flow", "check", str(bad))
    assert result.returncode == 1
    assert result.stdout.strip() == f"{bad}:9: item q7: unknown option 'y' in show_if"
    assert "Traceback" not in result.stderr


def test_flow_show_json_is_the_normalised_questionnaire() -> None:
    """`flow show --json` gives ids, types, options with labels, min/max and grid rows."""
    result = svarbot("flow", "show", "virksomhetsleder-2020", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["id"] == "virksomhetsleder-2020"
    items = {i["id"]: i for i in data["items"]}
    assert items["sektor"]["options"][0] == {
        "id": "helse", "label": {"nb": "Helse og omsorg", "nn": "Helse og omsorg",
                                 "en": "Health and care"}, "exclusive": False}
    assert items["drivere"]["type"] == "grid"
    assert (items["drivere"]["min"], items["drivere"]["max"]) == (1, 6)
    assert [r["id"] for r in items["innovasjon"]["rows"]] == [
        "tjenester", "produkter", "prosesser", "kommunikasjon"]
    assert items["ansatte"]["min"] == 0


def test_flow_try_jsonl_conversation() -> None:
    """`flow try --jsonl`: one line after the start and after each input, bad lines named."""
    lines = [json.dumps({"text": "1: helse\n2: sykehjem\n3: ca. 40"}),
             "not json",
             json.dumps({"text": "ja nei ja nei"}),
             json.dumps({"text": "meld meg av"})]
    result = svarbot("flow", "try", "virksomhetsleder-2020", "--channel", "email", "--jsonl",
                     stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 5
    assert out[0]["asked"] == ["sektor", "enhetstype", "ansatte"]
    assert out[0]["status"] == "in_progress"
    assert out[1]["recorded"] == {"sektor": "helse", "enhetstype": "sykehjem", "ansatte": 40}
    assert out[2] == {"error": "input line 2: not JSON (Expecting value)"}
    assert out[3]["recorded"]["innovasjon.tjenester"] == "yes"
    assert out[3]["answers"]["innovasjon.produkter"] == "no"
    assert out[4]["status"] == "stopped"
    assert out[4]["events"] == ["stopped"]


def test_flow_try_chat_rejects_and_re_asks() -> None:
    """In chat mode a wrong answer is rejected and the same item asked again."""
    result = svarbot("flow", "try", "ordforer-2020", "--channel", "chat", "--lang", "nn",
                     "--jsonl", stdin=json.dumps({"text": "kanskje"}) + "\n")
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert second["rejected"] == ["forvaltningsniva"]
    assert second["asked"] == first["asked"] == ["forvaltningsniva"]
    assert "Eg forstod ikkje" in second["prompt"]


def test_flow_try_interactive_reads_the_terminal() -> None:
    """The interactive mode shows the conversation and ends on end of input."""
    result = svarbot("flow", "try", "ordforer-2020", "--channel", "chat", stdin="2\nstopp\n")
    assert result.returncode == 0, result.stderr
    assert "1. Hvilket verv hadde du" in result.stdout
    assert "Du er meldt av undersøkelsen" in result.stdout


def test_config_typo_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A config typo: exit status 2, one line naming the file and the key, no traceback."""
    config = tmp_path / "config.yaml"
    config.write_text("privacy:\n  min_cel: 5\n", encoding="utf-8")
    result = svarbot("config", "check", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"svarbot: {config}: privacy.min_cel: unknown key (did you mean 'min_cell'?)")
    missing = svarbot("demo", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "configuration file not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_demo_runs_the_whole_barometer(tmp_path: Path) -> None:
    """`svarbot demo` builds frames, samples, imports, converses, stores and reports."""
    folder = tmp_path / "demo"
    result = svarbot("demo", "--respondents", "40", "--mayors", "30", "--seed", "3",
                     "--telegram-mayors", "0.5", "--telegram-leaders", "0.25",
                     "--dir", str(folder))
    assert result.returncode == 0, result.stderr
    assert "Feltarbeid på e-post og Telegram (simulert" in result.stdout
    sent = re.search(r"E-post: (\d+) sendt, (\d+) avvist ved sending, (\d+) mottatt", result.stdout)
    assert sent is not None, result.stdout
    assert int(sent.group(1)) > 70 * 2  # invitations and at least one more page on average
    assert int(sent.group(3)) > 70  # replies came back by email
    assert "virksomhetsleder-2020" in result.stdout
    assert "ordforer-2020" in result.stdout
    assert "│ :" in result.stdout or ": │" in result.stdout  # suppressed cells are shown as ':'
    assert (folder / "svarbot.db").exists()
    assert (folder / "config.yaml").exists()
    chat = re.search(r"Telegram: (\d+) meldinger sendt,.*?(\d+)\s+oppdateringer\s+mottatt,"
                     r"\s+(\d+)\s+chatter\s+koblet", result.stdout, re.DOTALL)
    assert chat is not None, result.stdout
    assert int(chat.group(1)) > 0
    assert int(chat.group(3)) > 0
    switched = re.search(r"Byttet kanal: (\d+) fra e-post til Telegram", result.stdout)
    assert switched is not None, result.stdout
    with sqlite3.connect(folder / "svarbot.db") as db:
        bound = db.execute("SELECT count(*) FROM invitations "
                           "WHERE telegram_chat_id IS NOT NULL").fetchone()[0]
        by_chat = db.execute("SELECT count(*) FROM inbox WHERE channel = 'telegram' "
                             "AND status = 'processed' AND classification = 'answer'").fetchone()[0]
        finished_in_chat = db.execute(
            "SELECT count(*) FROM invitations WHERE status = 'finished' "
            "AND last_channel = 'telegram'").fetchone()[0]
    assert bound == int(chat.group(3))
    assert by_chat > bound  # more than the /start of each chat: answers came by Telegram
    assert finished_in_chat > 0
    report = svarbot("report", "--survey", "ordforer-2020", "--format", "json",
                     "--config", str(folder / "config.yaml"))
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["survey"] == "ordforer-2020"
    assert data["cells"][0]["answer_id"] == "forvaltningsniva"
    assert data["weighting"] is None  # the mayors are a census: not weighted


def test_help_lists_the_commands() -> None:
    """`svarbot --help` names the commands a user needs."""
    result = svarbot("--help")
    assert result.returncode == 0
    for command in ("demo", "flow", "config"):
        assert command in result.stdout
