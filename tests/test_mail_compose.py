"""Outbound email: every header, both body parts, the payload and the ids.

Messages are checked the way a receiver sees them: `render(...).as_bytes()` parsed back with
`email.message_from_bytes(..., policy=policy.default)`.
"""

from __future__ import annotations

import dataclasses
import email
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.email.compose import (
    KINDS,
    OutgoingMail,
    base_subject,
    mail_domain,
    new_message_id,
    reference_id,
    render,
    reply_address,
)
from bot.config import EmailSettings

TOKEN = "abcdefghijklmnopqrstuvwxyz234567"  # noqa: S105 - an invitation token, made up
NOW = datetime(2020, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=1)))
MSG_ID = "<0123456789abcdef0123456789abcdef@svarbot.localhost>"
SETTINGS = EmailSettings()
URL_SETTINGS = EmailSettings(unsubscribe_url="https://svar.example.no/avmeld/{token}")
TITLE = "Innovasjonsbarometeret 2020"
OUTLOOK_ID = ("<AM0PR07MB1234567890ABCDEF1234567890ABCDEF@AM0PR07MB1234.eurprd07.prod"
              ".outlook.com>")
PROMPTS = (
    "1. Hvilken sektor hører virksomheten din til?\n   1) Helse og omsorg\n"
    "   2) Oppvekst og utdanning (barnehage, grunnskole, SFO, videregående skole), med en "
    "linje som er lenger enn en e-postlinje skal være\n   Svar med nummeret.",
    "2. Omtrent hvor mange ansatte har virksomheten?",
)


def make(**changes: object) -> OutgoingMail:
    base = OutgoingMail(kind="invitation", lang="nb", token=TOKEN,
                        to_address="kari.nordmann@kommune.no", to_name="Kari Nordmann",
                        survey_title=TITLE, prompts=PROMPTS,
                        contact="Ola Hansen, KS, ola@ks.no, tlf. 12 34 56 78")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def rendered(mail: OutgoingMail | None = None, *, settings: EmailSettings = SETTINGS,
             redirect_to: str | None = None, linesep: str = "\n") -> tuple[EmailMessage, bytes]:
    message = render(mail or make(), message_id=MSG_ID, settings=settings,
                     redirect_to=redirect_to, now=NOW)
    raw = message.as_bytes(policy=policy.default.clone(linesep=linesep))
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed, raw


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def raw_header(raw: bytes, name: str) -> str:
    """A header as it stands on the wire, folding lines joined with their line ends."""
    text = raw.decode("ascii")
    match = re.search(rf"^{re.escape(name)}: .*(?:\n[ \t].*)*", text, re.MULTILINE)
    assert match is not None, name
    return match.group(0)


# --- structure and basic headers ----------------------------------------------------------


def test_message_is_multipart_alternative_with_text_first_and_html_last() -> None:
    message, _ = rendered()
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
    assert message["MIME-Version"] == "1.0"
    assert not message.defects
    assert all(not p.defects for p in parts)


def test_from_to_date_and_message_id() -> None:
    message, _ = rendered()
    assert message["From"] == SETTINGS.from_address
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Kari Nordmann", "kari.nordmann@kommune.no")
    assert message["Date"] == format_datetime(NOW)
    assert message["Date"].datetime == NOW
    assert message["Message-ID"] == MSG_ID
    assert message["Content-Language"] == "nb"


def test_recipient_without_name_is_the_bare_address() -> None:
    message, _ = rendered(make(to_name="  "))
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("", "kari.nordmann@kommune.no")


@pytest.mark.parametrize(("kind", "prefix"), [
    ("invitation", ""), ("reminder", "Påminnelse: "), ("page", "Re: "),
    ("confirmation", "Re: "), ("closed", "Re: "), ("info", "Re: "),
])
def test_subject_keeps_the_invitation_subject_for_threading(kind: str, prefix: str) -> None:
    mail = make(kind=kind)
    message, _ = rendered(mail)
    assert base_subject(mail) == f"{TITLE}: vil du svare?"
    assert message["Subject"] == prefix + base_subject(mail)


def test_subject_per_language() -> None:
    subjects = {lang: rendered(make(lang=lang, kind="reminder"))[0]["Subject"]
                for lang in ("nb", "nn", "en")}
    assert subjects["nn"].startswith("Påminning: ")
    assert subjects["en"] == f"Reminder: {TITLE}: will you take part?"
    assert len(set(subjects.values())) == 3


def test_non_ascii_survives_in_headers_and_body() -> None:
    mail = make(to_name="Kåre Ødegård-Æsøy", survey_title="Kommunebarometeret for små og "
                "mellomstore kommuner i Sør-Trøndelag og Nordland – 2020")
    message, raw = rendered(mail)
    head = raw.split(b"\n\n", 1)[0]
    assert head.isascii()  # RFC 2047 encoded-words, not raw UTF-8
    assert b"=?utf-8?" in raw_header(raw, "Subject").encode()
    assert message["Subject"] == base_subject(mail)
    assert message["To"].addresses[0].display_name == "Kåre Ødegård-Æsøy"
    assert all(len(line) <= 78 for line in raw_header(raw, "Subject").splitlines())
    assert "Hei Kåre Ødegård-Æsøy," in text_of(message)
    assert "Sør-Trøndelag" in html_of(message)


def test_long_plain_name_is_folded_between_words() -> None:
    name = "Kari Anne Marie Nordmann Hansen Olsen Berg Dahl Lie Haugen Bakken Solberg Strand"
    message, raw = rendered(make(to_name=name))
    assert message["To"].addresses[0].display_name == name
    assert "=?" not in raw_header(raw, "To")
    assert max(len(line) for line in raw_header(raw, "To").splitlines()) <= 78


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=120))
def test_any_display_name_round_trips(name: str) -> None:
    message, raw = rendered(make(to_name=name))
    (to,) = message["To"].addresses
    assert to.addr_spec == "kari.nordmann@kommune.no"
    assert raw.split(b"\n\n", 1)[0].isascii()
    assert all(len(line) <= 78 for line in raw_header(raw, "To").splitlines()[:-1])
    # Decoded as RFC 2047 §6.2 says (space between encoded-words dropped, as Outlook, Gmail
    # and Apple Mail do); the stdlib's address parser keeps that space, so not through it.
    phrase = raw_header(raw, "To").removeprefix("To: ").rsplit("<", 1)[0] if name.strip() else ""
    assert str(make_header(decode_header(" ".join(phrase.split())))) == " ".join(name.split())


# --- reply key and threading --------------------------------------------------------------


def test_reply_to_carries_the_token() -> None:
    message, _ = rendered()
    (address,) = message["Reply-To"].addresses
    assert address.addr_spec == f"svar+{TOKEN}@svarbot.localhost"
    assert reply_address(TOKEN, SETTINGS) == f"svar+{TOKEN}@svarbot.localhost"


def test_references_start_with_the_token_id_then_thread_then_reply() -> None:
    mail = make(kind="page", references=("<a@x.no>", "<b@x.no>", "<a@x.no>"),
                in_reply_to="<c@x.no>")
    message, _ = rendered(mail)
    assert message["References"].split() == [reference_id(TOKEN, SETTINGS), "<a@x.no>",
                                             "<b@x.no>", "<c@x.no>"]
    assert message["In-Reply-To"] == "<c@x.no>"


def test_references_are_deduplicated_keeping_the_first_place() -> None:
    mail = make(kind="page", references=("<a@x.no>", "<b@x.no>"), in_reply_to="<a@x.no>")
    message, _ = rendered(mail)
    assert message["References"].split() == [reference_id(TOKEN, SETTINGS), "<a@x.no>",
                                             "<b@x.no>"]


def test_invitation_has_no_in_reply_to() -> None:
    message, _ = rendered()
    assert message["In-Reply-To"] is None
    assert message["References"] == f"<r-{TOKEN}@svarbot.localhost>"


def test_long_message_ids_are_folded_not_encoded() -> None:
    mail = make(kind="page", references=(OUTLOOK_ID,), in_reply_to=OUTLOOK_ID)
    message, raw = rendered(mail, linesep="\r\n")
    assert message["In-Reply-To"] == OUTLOOK_ID
    assert OUTLOOK_ID in message["References"].split()
    assert b"=?" not in raw_header(raw.replace(b"\r\n", b"\n"), "References").encode()
    assert b"=?" not in raw_header(raw.replace(b"\r\n", b"\n"), "In-Reply-To").encode()


def test_malformed_ids_from_inbound_mail_are_left_out() -> None:
    mail = make(kind="page", references=("<a@x.no>", "not-an-id", "<b c@x>"),
                in_reply_to="<evil@x>\r\nBcc: x@y.no")
    message, _ = rendered(mail)
    assert message["References"].split() == [reference_id(TOKEN, SETTINGS), "<a@x.no>"]
    assert message["In-Reply-To"] is None
    assert message["Bcc"] is None


# --- unsubscribe and automatic-mail headers -----------------------------------------------


RESPONDENT_KINDS = [k for k in KINDS if k not in ("desk_notice", "alert")]


@pytest.mark.parametrize("kind", RESPONDENT_KINDS)
def test_unsubscribe_with_mailto_only_has_no_one_click(kind: str) -> None:
    message, _ = rendered(make(kind=kind))
    assert message["List-Unsubscribe"] == (
        f"<mailto:avmeld+{TOKEN}@svarbot.localhost?subject=avmeld>")
    assert message["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize("kind", ["desk_notice", "alert"])
def test_mail_to_svarbots_own_people_has_no_unsubscribe(kind: str) -> None:
    message, _ = rendered(make(kind=kind), settings=URL_SETTINGS)
    assert message["List-Unsubscribe"] is None
    assert message["List-Unsubscribe-Post"] is None
    assert message["Auto-Submitted"] == "auto-generated"
    assert not str(message["Subject"]).startswith("Re:")


@pytest.mark.parametrize("kind", ["invitation", "reminder", "page"])
def test_unsubscribe_with_https_url_offers_one_click_first(kind: str) -> None:
    message, raw = rendered(make(kind=kind), settings=URL_SETTINGS)
    entries = [e.strip() for e in message["List-Unsubscribe"].split(",")]
    assert entries == [f"<https://svar.example.no/avmeld/{TOKEN}>",
                       f"<mailto:avmeld+{TOKEN}@svarbot.localhost?subject=avmeld>"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "=?" not in raw_header(raw, "List-Unsubscribe")


def test_unsubscribe_with_plain_http_url_is_not_one_click() -> None:
    settings = EmailSettings(unsubscribe_url="http://svar.example.no/avmeld/{token}")
    message, _ = rendered(settings=settings)
    assert message["List-Unsubscribe"].startswith(f"<http://svar.example.no/avmeld/{TOKEN}>,")
    assert message["List-Unsubscribe-Post"] is None


def test_long_unsubscribe_address_is_folded_not_encoded() -> None:
    settings = EmailSettings(
        unsubscribe_address="avmeld+{token}@innovasjonsbarometeret.kommunesektoren.example.no",
        unsubscribe_url="https://innovasjonsbarometeret.kommunesektoren.example.no/avmeld/"
                        "{token}")
    message, raw = rendered(settings=settings)
    header = raw_header(raw, "List-Unsubscribe")
    assert "=?" not in header
    assert len(header.splitlines()) == 2
    assert "kommunesektoren.example.no?subject=avmeld>" in message["List-Unsubscribe"]


def test_unsubscribe_url_with_spaces_is_refused() -> None:
    settings = EmailSettings(unsubscribe_url="https://svar.example.no/av meld/{token}")
    with pytest.raises(ValueError, match="unsubscribe_url"):
        rendered(settings=settings)


@pytest.mark.parametrize(("kind", "auto"), [
    ("invitation", "auto-generated"), ("reminder", "auto-generated"),
    ("page", "auto-replied"), ("confirmation", "auto-replied"), ("closed", "auto-replied"),
    ("info", "auto-replied"),
])
def test_headers_against_auto_reply_loops(kind: str, auto: str) -> None:
    message, _ = rendered(make(kind=kind))
    assert message["Auto-Submitted"] == auto
    assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert message["X-Loop"] == "svar@svarbot.localhost"
    assert message["X-Svarbot-Kind"] == kind
    assert message["Precedence"] is None


# --- dev-mode redirect --------------------------------------------------------------------


def test_redirect_sends_to_the_rehearsal_address_and_keeps_the_original() -> None:
    message, _ = rendered(redirect_to="Test <test@svarbot.localhost>")
    assert [a.addr_spec for a in message["To"].addresses] == ["test@svarbot.localhost"]
    assert message["X-Svarbot-Original-To"] == "Kari Nordmann <kari.nordmann@kommune.no>"
    assert message["Subject"] == f"[TEST] {TITLE}: vil du svare?"


def test_without_redirect_there_is_no_test_marking() -> None:
    message, _ = rendered()
    assert message["X-Svarbot-Original-To"] is None
    assert not message["Subject"].startswith("[TEST]")


# --- the text part ------------------------------------------------------------------------


def test_text_part_opens_with_the_marker_and_holds_the_prompts_verbatim() -> None:
    text = text_of(rendered()[0])
    lines = text.splitlines()
    assert lines[0] == "--- Skriv svaret ditt over denne linjen ---"
    assert lines[2] == "Hei Kari Nordmann,"
    assert "\n\n".join(PROMPTS) in text
    assert "Du får de neste spørsmålene i et svar fra oss." in text
    assert "bare publisert samlet" not in text  # the questionnaire's own intro says it
    assert "Ola Hansen, KS, ola@ks.no,\ntlf. 12 34 56 78." in text
    assert "Vil du ikke delta? Svar «stopp»" in text


def test_text_part_lines_we_write_fit_in_78_columns() -> None:
    mail = make(kind="reminder", progress=(12, 31), to_name="Kari")
    text = text_of(rendered(mail)[0])
    ours = text.replace("\n\n".join(PROMPTS), "")
    assert max(len(line) for line in ours.splitlines()) <= 78
    assert not set(ours) & set("<>*_#")


def test_progress_is_shown_when_given() -> None:
    text = text_of(rendered(make(kind="page", progress=(12, 31)))[0])
    assert "Du har svart på 12 av 31 spørsmål som gjelder deg." in text
    assert "av 31" not in text_of(rendered(make(kind="page"))[0])


def test_reminder_thanks_a_respondent_who_has_started() -> None:
    started = text_of(rendered(make(kind="reminder", progress=(3, 31)))[0])
    not_started = text_of(rendered(make(kind="reminder"))[0])
    assert "Takk for svarene du har sendt" in started
    assert "Vi har ikke fått svar fra deg ennå" in not_started


def test_greeting_without_a_name() -> None:
    assert text_of(rendered(make(to_name=""))[0]).splitlines()[2] == "Hei,"


def test_confirmation_neither_explains_answering_nor_offers_stop() -> None:
    text = text_of(rendered(make(kind="confirmation", contact=None,
                                 prompts=("Takk! Du har svart på alle spørsmålene.",)))[0])
    assert "stopp" not in text
    assert "Slik svarer du" not in text
    assert "Kontakt" not in text
    assert text.endswith("Vennlig hilsen\nInnovasjonsbarometeret\n")


def test_languages_have_their_own_words() -> None:
    texts = {lang: text_of(rendered(make(lang=lang, kind="reminder"))[0])
             for lang in ("nb", "nn", "en")}
    assert texts["nn"].splitlines()[0] == "--- Skriv svaret ditt over denne linja ---"
    assert texts["en"].splitlines()[0] == "--- Write your answer above this line ---"
    assert "Svara blir berre publiserte samla" in texts["nn"]
    assert "Answers are only published in aggregate" in texts["en"]
    assert "Kind regards" in texts["en"]
    assert len(set(texts.values())) == 3


# --- the HTML part ------------------------------------------------------------------------


def test_html_part_is_escaped() -> None:
    mail = make(prompts=("1. Er <script>alert('x')</script> & «dette» bra?",),
                to_name="Kari <b>", contact='Ola "Sjef" <ola@ks.no>')
    html = html_of(rendered(mail)[0])
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; «dette»" in html
    assert "Kari &lt;b&gt;" in html
    assert "&lt;ola@ks.no&gt;" in html


def test_html_part_is_simple_and_self_contained() -> None:
    html = html_of(rendered(make(lang="nn"))[0])
    assert '<html lang="nn">' in html
    assert re.search(r"<p[^>]*>--- Skriv svaret ditt over denne linja ---</p>", html)
    assert "<h1" in html
    for forbidden in ("<img", "<pre", "<link", "<script", "src=", "http://", "https://"):
        assert forbidden not in html


def test_html_part_has_the_words_of_the_text_part() -> None:
    message, _ = rendered(make(kind="reminder", progress=(3, 31)))
    text, html = text_of(message), html_of(message)
    flat_html = " ".join(re.sub(r"<[^>]+>", " ", html).replace("\u00a0", " ").split())
    flat_html = flat_html.replace("&amp;", "&")
    for paragraph in text.split("\n\n"):
        for line in paragraph.splitlines():
            assert " ".join(line.split()) in flat_html, line


def test_html_keeps_the_option_indent_and_line_breaks() -> None:
    html = html_of(rendered()[0])
    assert "hører virksomheten din til?<br>\n\u00a0\u00a0\u00a01) Helse og omsorg<br>" in html


# --- wire format --------------------------------------------------------------------------


def test_wire_form_with_crlf_has_no_bare_line_feeds_and_short_lines() -> None:
    mail = make(kind="page", references=(OUTLOOK_ID,), in_reply_to=OUTLOOK_ID)
    _, raw = rendered(mail, settings=URL_SETTINGS, linesep="\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert raw.isascii()  # quoted-printable bodies, encoded headers: safe for 7-bit relays
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    head_lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert all(len(line) <= 78 or len(line.split()) <= 2 for line in head_lines)
    assert any(len(line) > 78 for line in head_lines)  # the Outlook id, on a line of its own
    body_lines = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 78


def test_stored_payload_renders_after_a_json_round_trip() -> None:
    mail = make(kind="page", progress=(3, 31), references=("<a@x.no>",), in_reply_to="<b@x.no>")
    again = OutgoingMail.from_payload(json.loads(json.dumps(mail.to_payload())))
    assert again == mail
    assert rendered(again)[0]["References"] == rendered(mail)[0]["References"]


# --- the payload --------------------------------------------------------------------------


def test_payload_round_trip_with_defaults() -> None:
    mail = make(contact=None)
    assert OutgoingMail.from_payload(json.loads(json.dumps(mail.to_payload()))) == mail


@pytest.mark.parametrize("key", ["kind", "lang", "token", "to_address", "to_name",
                                 "survey_title", "prompts"])
def test_payload_missing_key_is_named(key: str) -> None:
    payload = make().to_payload()
    del payload[key]
    with pytest.raises(ValueError, match=f"missing key '{key}'"):
        OutgoingMail.from_payload(payload)


@pytest.mark.parametrize(("key", "value"), [
    ("kind", "newsletter"), ("lang", "sv"), ("token", "not-a-token"), ("prompts", "one"),
    ("prompts", [1, 2]), ("progress", [1]), ("progress", [1, -2]), ("references", "<a@b>"),
    ("contact", 5), ("to_name", None),
])
def test_payload_bad_value_is_named(key: str, value: object) -> None:
    payload = make().to_payload()
    payload[key] = value
    with pytest.raises(ValueError, match=f"'{key}'"):
        OutgoingMail.from_payload(payload)


def test_payload_unknown_key_is_named() -> None:
    payload = {**make().to_payload(), "subjekt": "x"}
    with pytest.raises(ValueError, match="unknown key 'subjekt'"):
        OutgoingMail.from_payload(payload)


# --- ids and refusals ---------------------------------------------------------------------


def test_message_ids_are_unique_random_and_on_our_domain() -> None:
    ids = {new_message_id(SETTINGS) for _ in range(2000)}
    assert len(ids) == 2000
    for message_id in ids:
        match = re.fullmatch(r"<([0-9a-f]+)@svarbot\.localhost>", message_id)
        assert match is not None
        assert len(match.group(1)) * 4 >= 128


def test_domain_and_reference_id_follow_the_from_address() -> None:
    settings = EmailSettings(from_address="Barometeret <Svar@KS.Example.NO>")
    assert mail_domain(settings) == "ks.example.no"
    assert reference_id(TOKEN, settings) == f"<r-{TOKEN}@ks.example.no>"
    assert new_message_id(settings).endswith("@ks.example.no>")


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render(make(), message_id=MSG_ID, settings=SETTINGS, now=datetime(2020, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize("message_id", ["abc@x", "<abc>", "<a b@x>", ""])
def test_bad_message_id_is_refused(message_id: str) -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        render(make(), message_id=message_id, settings=SETTINGS, now=NOW)


@pytest.mark.parametrize("address", ["kari", "kari@", "a@b>, evil@x.no", "ødegård@x.no",
                                     "kari nordmann@x.no"])
def test_bad_recipient_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="address"):
        render(make(to_address=address), message_id=MSG_ID, settings=SETTINGS, now=NOW)


def test_date_header_keeps_utc() -> None:
    message = render(make(), message_id=MSG_ID, settings=SETTINGS,
                     now=datetime(2020, 6, 1, 12, tzinfo=UTC))
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Date"] == "Mon, 01 Jun 2020 12:00:00 +0000"
