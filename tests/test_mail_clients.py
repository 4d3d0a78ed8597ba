"""Simulated client replies, auto-replies and bounces round-trip through the trimmer."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

import pytest

from bot.channels.email.clients import (
    INLINE_STYLE,
    STYLES,
    compose_auto_reply,
    compose_bounce,
    compose_reply,
)
from bot.channels.email.trim import MARKERS, extract_reply, extract_reply_html

REPLY_TO = "svar+abc123def456@svarbot.localhost"
ORIGINAL_ID = "<inv-42.7f3a@svarbot.localhost>"
NOW = datetime(2025, 1, 14, 10, 17, tzinfo=UTC)
ANSWERS = [
    "Ja",
    "1: 4\n2: ja\n3) nei, ikke ennå",
    "Takk for at dere spør.\n- punkt 1\n- punkt 2\n\nHilsen Kari",
    "1. 3\n2. Vi har tatt i bruk digitale skjema i 2024, men ikke alle enheter er med ennå."
    " Det gjelder særlig hjemmetjenesten og barnehagene, som venter på nytt fagsystem.\n"
    "3. Takk",
]


def _original() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Svarbot for Eksempel kommune <undersokelse@svarbot.localhost>"
    msg["To"] = "Kari Nordmann <kari.nordmann@eksempel.kommune.no>"
    msg["Reply-To"] = REPLY_TO
    msg["Subject"] = "Digitalisering i kommunen (spørsmål 1 av 3)"
    msg["Date"] = "Tue, 14 Jan 2025 10:03:00 +0100"
    msg["Message-ID"] = ORIGINAL_ID
    msg["References"] = "<thread-1@svarbot.localhost>"
    text = (
        f"{MARKERS[0]}\n\nHei Kari,\n\n1. Hvor fornøyd er du med fagsystemet? (1–5)\n"
        "2. Har enheten tatt i bruk digitale skjema? (ja/nei)\n\n"
        "Med vennlig hilsen\nSvarbot\n"
    )
    msg.set_content(text)
    msg.add_alternative(
        f"<html><body><p>{MARKERS[0]}</p><p>Hei Kari,</p><ol><li>Hvor fornøyd er du?</li>"
        "<li>Digitale skjema?</li></ol><p>Med vennlig hilsen<br>Svarbot</p></body></html>",
        subtype="html",
    )
    return msg.as_bytes()


ORIGINAL = _original()


def _parse(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _reply(style: str, answer: str, *, html_only: bool = False) -> EmailMessage:
    raw = compose_reply(
        ORIGINAL, answer, style=style, from_address="kari.nordmann@eksempel.kommune.no",
        from_name="Kari Nordmann", now=NOW, html_only=html_only,
    )
    return _parse(raw)


def _part(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def _lf(text: str) -> str:
    """Line endings as LF, for asserting on a client's layout (the wire form is CRLF)."""
    return text.replace("\r\n", "\n")


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("style", STYLES)
def test_text_part_trims_to_answer(style: str, answer: str) -> None:
    msg = _reply(style, answer)
    text = _part(msg, "plain")
    assert text.strip() != answer  # the client added its quote
    result = extract_reply(text)
    assert result.text == answer
    assert not result.needs_review  # below a real quote a bottom-post is certain too


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("style", STYLES)
def test_html_only_trims_to_answer(style: str, answer: str) -> None:
    msg = _reply(style, answer, html_only=True)
    assert msg.get_content_type() == "text/html"
    assert msg.get_body(preferencelist=("plain",)) is None
    result = extract_reply_html(_part(msg, "html"))
    assert result.text == answer
    assert not result.needs_review


@pytest.mark.parametrize("style", STYLES)
def test_multipart_alternative_and_headers(style: str) -> None:
    msg = _reply(style, "Ja")
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["To"] == REPLY_TO
    assert msg["In-Reply-To"] == ORIGINAL_ID
    assert msg["From"].addresses[0].addr_spec == "kari.nordmann@eksempel.kommune.no"
    assert msg["Message-ID"].endswith("@eksempel.kommune.no>")
    assert msg["Date"].datetime == NOW
    prefix = "SV: " if style.startswith("outlook") else "Re: "
    assert msg["Subject"] == prefix + "Digitalisering i kommunen (spørsmål 1 av 3)"
    references = (msg["References"] or "").split()
    if style == "iphone_nb":
        assert references == []
    elif style == "outlook_nb":
        assert references == [ORIGINAL_ID]
    else:
        assert references == ["<thread-1@svarbot.localhost>", ORIGINAL_ID]


def test_client_formats() -> None:
    outlook = _lf(_part(_reply("outlook_nb", "Ja"), "plain"))
    assert "\nFra: Svarbot for Eksempel kommune <undersokelse@svarbot.localhost>\n" in outlook
    assert "\nSendt: tirsdag 14. januar 2025 10:03\n" in outlook
    assert "\n> " not in outlook
    web = _lf(_part(_reply("outlook_web_nb", "Ja"), "plain"))
    assert "Hent Outlook for iOS<https://aka.ms/o0ukef>\n" + "_" * 32 + "\nFra:" in web
    gmail = _lf(_part(_reply("gmail_nb", "Ja"), "plain"))
    assert "tir. 14. jan. 2025 kl. 10:03 skrev Svarbot for Eksempel kommune <\n" in gmail
    assert f"> {MARKERS[0]}" in gmail
    gmail_en = _lf(_part(_reply("gmail_en", "Ja"), "plain"))
    assert "On Tue, Jan 14, 2025 at 10:03 AM Svarbot" in gmail_en
    assert "\nwrote:\n" in gmail_en
    iphone = _lf(_part(_reply("iphone_nb", "Ja"), "plain"))
    assert "Ja\n\nSendt fra min iPhone\n\n> Den 14. jan. 2025 kl. 10:03 skrev" in iphone
    thunderbird = _lf(_part(_reply("thunderbird_nb", "Ja"), "plain"))
    assert "Ja\n\nDen 14.01.2025 10:03, skrev Svarbot" in thunderbird
    bottom = _lf(_part(_reply("bottom_post", "Ja"), "plain"))
    assert bottom.rstrip().endswith("\n\nJa")


@pytest.mark.parametrize(
    ("style", "header", "value"),
    [
        ("outlook_nb", "X-Mailer", "Microsoft Outlook 16.0"),
        ("iphone_nb", "X-Mailer", "iPhone Mail (22C152)"),
        ("thunderbird_nb", "User-Agent", "Thunderbird/128.6.0"),
        ("apple_mail_nb", "X-Mailer", "Apple Mail"),
    ],
)
def test_agent_headers(style: str, header: str, value: str) -> None:
    assert value in str(_reply(style, "Ja")[header])


def test_deterministic_with_message_id() -> None:
    kwargs = {"style": "gmail_nb", "from_address": "a@b.no", "from_name": "A", "now": NOW,
              "message_id": "<fixed@b.no>"}
    first = compose_reply(ORIGINAL, "Ja", **kwargs)  # type: ignore[arg-type]
    assert first == compose_reply(ORIGINAL, "Ja", **kwargs)  # type: ignore[arg-type]
    other = compose_reply(ORIGINAL, "Ja", style="gmail_nb", from_address="a@b.no",
                          from_name="A", now=NOW)
    assert _parse(other)["Message-ID"] != "<fixed@b.no>"


def test_unknown_style() -> None:
    with pytest.raises(ValueError, match="style"):
        compose_reply(ORIGINAL, "Ja", style="lotus_notes", from_address="a@b.no",
                      from_name="A", now=NOW)


# --- auto-replies -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lang", "subject", "body"),
    [
        ("nb", "Automatisk svar: ", "Jeg er på ferie og er tilbake 14. oktober."),
        ("nn", "Automatisk svar: ", "Eg er på ferie og er tilbake 14. oktober."),
        ("en", "Automatic reply: ", "I am on holiday and will be back on 14 October."),
    ],
)
def test_exchange_auto_reply(lang: str, subject: str, body: str) -> None:
    msg = _parse(compose_auto_reply(ORIGINAL, from_address="kari@eksempel.kommune.no",
                                    return_date=date(2025, 10, 14), lang=lang))
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-MS-Exchange-Generated-Message-Source"] == "Mailbox Rules Agent"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Subject"] == subject + "Digitalisering i kommunen (spørsmål 1 av 3)"
    assert msg["In-Reply-To"] == ORIGINAL_ID
    assert _part(msg, "plain").strip() == body


@pytest.mark.parametrize(("lang", "prefix"), [("nb", "Fraværende: "), ("en", "Out of Office: ")])
def test_gmail_auto_reply(lang: str, prefix: str) -> None:
    raw = compose_auto_reply(ORIGINAL, from_address="kari@gmail.com",
                             return_date=date(2025, 10, 14), lang=lang, style="gmail")
    msg = _parse(raw)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-MS-Exchange-Generated-Message-Source"] is None
    assert msg["To"] == REPLY_TO
    assert str(msg["Subject"]).startswith(prefix)
    assert msg.get_content_type() == "text/plain"


# --- bounces ----------------------------------------------------------------------------------
def _status_blocks(msg: Message) -> list[Message]:
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            assert isinstance(payload, list)
            return payload
    raise AssertionError("no message/delivery-status part")


@pytest.mark.parametrize(
    ("permanent", "action", "status"), [(True, "failed", "5.1.1"), (False, "delayed", "4.2.2")]
)
def test_bounce_is_rfc3464(permanent: bool, action: str, status: str) -> None:
    raw = compose_bounce(ORIGINAL, reporting_mta="mx.eksempel.kommune.no",
                         permanent=permanent, now=NOW)
    msg = message_from_bytes(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Return-Path"] == "<>"
    assert msg["From"].startswith("MAILER-DAEMON@mx.eksempel.kommune.no")
    blocks = _status_blocks(msg)
    assert blocks[0]["Reporting-MTA"] == "dns; mx.eksempel.kommune.no"
    recipient = blocks[1]
    assert recipient["Final-Recipient"] == "rfc822; kari.nordmann@eksempel.kommune.no"
    assert recipient["Action"] == action
    assert recipient["Status"] == status
    assert status in str(recipient["Diagnostic-Code"])
    headers = [p for p in msg.walk() if p.get_content_type() == "text/rfc822-headers"]
    assert len(headers) == 1
    returned = headers[0].get_payload(decode=True)
    assert isinstance(returned, bytes)
    assert f"Message-ID: {ORIGINAL_ID}".encode() in returned
    assert raw == compose_bounce(ORIGINAL, reporting_mta="mx.eksempel.kommune.no",
                                 permanent=permanent, now=NOW)


@pytest.mark.parametrize("html_only", [False, True])
@pytest.mark.parametrize("style", STYLES)
def test_a_reply_with_nothing_typed_trims_to_nothing(style: str, html_only: bool) -> None:
    """Reply pressed and sent at once: whatever the client quotes (Outlook's unquoted
    original included), no line of our own message is taken for an answer."""
    msg = _reply(style, "", html_only=html_only)
    result = (extract_reply_html(_part(msg, "html")) if html_only
              else extract_reply(_part(msg, "plain")))
    assert result.text == ""
    assert not result.needs_review


def test_an_inline_reply_types_under_the_questions_and_leaves_a_blank() -> None:
    """The inline client puts each "N: text" under quoted question N; a question without a
    line stays blank; the trimmer gives each answer its question's number back."""
    msg = _reply(INLINE_STYLE, "2: ja")
    text = _lf(_part(msg, "plain"))
    assert "> 2. Har enheten tatt i bruk digitale skjema? (ja/nei)\nja\n" in text
    result = extract_reply(text)
    assert (result.text, result.needs_review) == ("2: ja", False)
