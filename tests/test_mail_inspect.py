"""`svarbot mail inspect` over files and folders: one line per message, the run never stops.

The operator's tool reads messages exactly as the dispatcher does, so it must be as robust:
a message it cannot read is a line with an "error", never the end of the run; the exit
status says whether every message was read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from mail_fuzz import REPLY_TO, message

from bot.cli import main

REPLY = (f"From: Kari <kari@kommune.example>\r\nTo: {REPLY_TO}\r\nSubject: SV: Barometeret\r\n"
         "Message-ID: <a1@kommune.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
         "1: helse\r\n2: 3\r\n").encode()
BOUNCE = (b"From: MAILER-DAEMON@mx.example\r\nTo: svar@svarbot.localhost\r\n"
          b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
          b"--b\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n--b\r\n"
          b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
          b"Final-Recipient: rfc822; leder@kommune.example\r\nAction: failed\r\n"
          b"Status: 5.1.1\r\n\r\n--b--\r\n")
DEEP_HTML = (f"From: kari@kommune.example\r\nTo: {REPLY_TO}\r\nSubject: SV: x\r\n"
             "Content-Type: text/html\r\n\r\n").encode() + b"<div>" * 5000 + b"1: ja"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("email:\n  reply_to: 'svar+{token}@svarbot.localhost'\n", encoding="utf-8")
    return path


def _inspect(config: Path, *args: str) -> tuple[Result, list[dict[str, object]]]:
    result = CliRunner().invoke(main, ["mail", "inspect", "--config", str(config), *args])
    lines = [json.loads(line) for line in result.stdout.splitlines()] if "--json" in args \
        else []
    return result, lines


def test_a_folder_is_read_recursively_one_json_line_per_message(tmp_path: Path,
                                                                 config: Path) -> None:
    folder = tmp_path / "saved"
    (folder / "older").mkdir(parents=True)
    (folder / "1.eml").write_bytes(REPLY)
    (folder / "older" / "2.eml").write_bytes(BOUNCE)
    (folder / "3.eml").write_bytes(DEEP_HTML)
    (folder / "notes.txt").write_text("not a message")
    extra = tmp_path / "loose.msg"
    extra.write_bytes(REPLY)
    result, lines = _inspect(config, "--json", str(folder), str(extra))
    assert result.exit_code == 0, result.output
    assert [Path(str(line["file"])).name for line in lines] == ["1.eml", "3.eml", "2.eml",
                                                               "loose.msg"]
    assert [line["outcome"] for line in lines] == ["read"] * 4
    assert [line["kind"] for line in lines] == ["answer", "answer", "bounce", "answer"]
    first = lines[0]
    assert first["token"] == REPLY_TO.split("+")[1].split("@")[0]
    assert first["text_chars"] == len("1: helse\n2: 3")
    assert all("text" not in line for line in lines), "the text only with --text"
    assert lines[2]["bounce"] == {"permanent": True, "recipients": ["leder@kommune.example"],
                                  "status": "5.1.1", "original_message_id": None}


def test_the_text_is_shown_only_when_asked_for(tmp_path: Path, config: Path) -> None:
    path = tmp_path / "svar.eml"
    path.write_bytes(REPLY)
    _, [line] = _inspect(config, "--json", "--text", str(path))
    assert line["text"] == "1: helse\n2: 3"
    result, _ = _inspect(config, str(path))
    assert "    1: helse" in result.stdout


def test_a_message_that_cannot_be_read_is_a_line_and_the_run_goes_on(tmp_path: Path,
                                                                     config: Path) -> None:
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "a.eml").write_bytes(REPLY)
    (folder / "b.eml").write_bytes(b"")  # not a message at all
    (folder / "c.eml").write_bytes(b"Subject: x\r\n" + b"Content-Type: message/rfc822\r\n\r\n"
                                   b"Subject: y\r\n" * 1000)
    (folder / "d.eml").write_bytes(REPLY)
    result, lines = _inspect(config, "--json", str(folder))
    assert result.exit_code == 1
    assert [line["outcome"] for line in lines] == ["read", "unreadable", "unreadable", "read"]
    assert lines[1]["reason"] == "not_mime"
    assert lines[2]["reason"] in ("too_deep", "too_many_parts")
    assert all(line["error"] for line in lines[1:3])
    assert "2 of 4 messages read, 2 could not be read" in result.stderr


def test_an_unforeseen_failure_is_reported_and_does_not_end_the_run(
        tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a bug in the reader (one not found yet) costs one line, not the rest of the run."""
    from bot.channels.email import reading

    real = reading.read_mail

    def flaky(raw: bytes, *args: object, **kwargs: object) -> reading.Reading:
        if b"crash" in raw:
            raise IndexError("list index out of range")
        return real(raw, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reading, "read_mail", flaky)
    for name, raw in (("1.eml", REPLY), ("2.eml", REPLY + b"crash"), ("3.eml", REPLY)):
        (tmp_path / name).write_bytes(raw)
    result, lines = _inspect(config, "--json", *(str(tmp_path / n) for n in
                                                 ("1.eml", "2.eml", "3.eml")))
    assert result.exit_code == 1
    assert [line["outcome"] for line in lines] == ["read", "error", "read"]
    assert lines[1]["error"] == "internal error: IndexError"


def test_the_human_form_names_what_could_not_be_read(tmp_path: Path, config: Path) -> None:
    path = tmp_path / "tom.eml"
    path.write_bytes(b"\x00\x00")
    result, _ = _inspect(config, str(path))
    assert result.exit_code == 1
    assert f"{path}: unreadable  (reason: not_mime, not_mime" in result.stdout


def test_glob_reads_a_maildir(tmp_path: Path, config: Path) -> None:
    cur = tmp_path / "Maildir" / "cur"
    cur.mkdir(parents=True)
    (cur / "1571130000.M1P2.host:2,S").write_bytes(REPLY)
    result, lines = _inspect(config, "--json", str(tmp_path / "Maildir"))
    assert lines == []
    assert "no messages (*.eml)" in result.stderr
    result, lines = _inspect(config, "--json", "--glob", "*", str(tmp_path / "Maildir"))
    assert result.exit_code == 0
    assert [line["kind"] for line in lines] == ["answer"]


def test_a_folder_of_generated_hostile_mail_is_read_to_the_end(tmp_path: Path,
                                                               config: Path) -> None:
    """Two hundred mutated messages: one line each, in order, every one read or reported."""
    folder = tmp_path / "fuzz"
    folder.mkdir()
    for seed in range(200):
        _, raw = message(20_000 + seed)
        (folder / f"{seed:03d}.eml").write_bytes(raw)
    result, lines = _inspect(config, "--json", str(folder))
    assert [Path(str(line["file"])).name for line in lines] == [f"{n:03d}.eml"
                                                               for n in range(200)]
    assert {line["outcome"] for line in lines} <= {"read", "unreadable"}
    unreadable = sum(line["outcome"] == "unreadable" for line in lines)
    assert result.exit_code == (1 if unreadable else 0)
