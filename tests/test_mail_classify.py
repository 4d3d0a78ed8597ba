"""Classifying inbound mail: loops, bounces, auto-replies, forwards, opt-outs, questions.

The sisimai corpus (real bounces, ARF reports, RFC 3834 auto-replies) and the crisp forward
corpus are upstream files; `fixtures/mail/` holds synthetic Norwegian messages.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.email.classify import Classification, classify, find_token, parse_return_date
from bot.channels.email.inbound import BadMail, MailKind, ParsedMail, parse_mail

FIXTURES = Path(__file__).parent / "fixtures"
MAIL = FIXTURES / "mail"
SISIMAI = FIXTURES / "corpora" / "sisimai"
FORWARDS = FIXTURES / "corpora" / "email-forward-parser" / "fixtures"

REPLY = "svar+{token}@svarbot.localhost"
UNSUBSCRIBE = "avmeld+{token}@svarbot.localhost"
OWN = ("undersokelse@svarbot.localhost",)
TOKEN = "n4rvgk2a7b5c6d2e3f4g5h6j7k2m3p4q"  # noqa: S105 - a synthetic invitation token
TODAY = date(2019, 10, 2)

BOUNCES = sorted(p for p in (SISIMAI / "bsd").glob("*.eml")
                 if p.name.startswith(("lhost-", "rhost-", "rfc3464-")))
AUTO_REPLIES = sorted((SISIMAI / "bsd").glob("rfc3834-*.eml"))
COMPLAINTS = sorted((SISIMAI / "bsd").glob("arf-*.eml"))
NOT_BOUNCES = sorted((SISIMAI / "not").glob("*.eml"))

#: Sisimai files under lhost-* that report no delivery failure, and what they are instead.
NOT_A_FAILURE = {
    "lhost-amazonses-11.eml": (MailKind.UNKNOWN, "complaint"),  # SES Complaint notification
    "lhost-amazonses-12.eml": (MailKind.UNKNOWN, "ses-notification:no-failure"),  # Delivery
    "lhost-amazonses-13.eml": (MailKind.UNKNOWN, "ses-notification:no-failure"),  # Delivery
    "lhost-fml-02.eml": (MailKind.UNKNOWN, "mailing-list"),  # "you are not a member"
    "lhost-fml-03.eml": (MailKind.UNKNOWN, "mailing-list"),  # list loop alert
}


def read(raw: bytes, *, new_text: str | None = None, today: date = TODAY) -> Classification:
    return classify(parse_mail(raw), reply_pattern=REPLY, unsubscribe_pattern=UNSUBSCRIBE,
                    today=today, own_addresses=OWN, new_text=new_text)


def read_file(path: Path, **kwargs: object) -> Classification:
    return read(path.read_bytes(), **kwargs)  # type: ignore[arg-type]


def with_token(raw: bytes) -> bytes:
    """The message as if delivered to our reply address, so that "no token" cannot hide a
    wrong class."""
    return f"Delivered-To: svar+{TOKEN}@svarbot.localhost\n".encode() + raw


def mail(headers: str, body: str = "Ja\n") -> bytes:
    return f"{headers.strip()}\nContent-Type: text/plain; charset=utf-8\n\n{body}".encode()


# --- the corpus -----------------------------------------------------------------------------


def test_corpus_is_complete() -> None:
    assert (len(BOUNCES), len(AUTO_REPLIES), len(COMPLAINTS), len(NOT_BOUNCES)) == (
        606, 6, 17, 3)


@pytest.mark.parametrize("path", BOUNCES, ids=lambda p: p.name)
def test_every_sisimai_bounce_is_a_bounce(path: Path) -> None:
    raw = with_token(path.read_bytes())
    result = read(raw)
    if path.name in NOT_A_FAILURE:
        assert (result.kind, result.reason) == NOT_A_FAILURE[path.name]
        return
    assert result.kind is MailKind.BOUNCE, result.reason
    assert result.bounce is not None


def test_bounce_count() -> None:
    kinds = [read_file(p).kind for p in BOUNCES]
    assert kinds.count(MailKind.BOUNCE) == 601
    assert MailKind.ANSWER not in kinds


@pytest.mark.parametrize("path", AUTO_REPLIES, ids=lambda p: p.name)
def test_every_rfc3834_file_is_an_auto_reply(path: Path) -> None:
    result = read(with_token(path.read_bytes()))
    assert result.kind is MailKind.AUTO_REPLY
    assert result.bounce is None


@pytest.mark.parametrize("path", COMPLAINTS, ids=lambda p: p.name)
def test_arf_reports_are_never_answers(path: Path) -> None:
    result = read(with_token(path.read_bytes()))
    assert result.kind in (MailKind.UNKNOWN, MailKind.AUTO_REPLY)
    assert result.kind is not MailKind.UNKNOWN or result.reason == "complaint"


def test_most_arf_reports_are_complaints() -> None:
    reasons = [read_file(p).reason for p in COMPLAINTS]
    assert reasons.count("complaint") == 16


def test_non_bounces() -> None:
    """Two ordinary messages (one with an attached message) and a plain-text notice from
    postmaster about a full mailbox, which is read as a soft bounce on purpose."""
    results = {p.name: read_file(p) for p in NOT_BOUNCES}
    assert results["is-not-bounce-01.eml"].kind is MailKind.UNKNOWN
    assert results["is-not-bounce-02.eml"].kind is MailKind.UNKNOWN
    assert results["is-not-bounce-01.eml"].reason == "no-token"
    assert results["is-not-bounce-02.eml"].reason == "no-token"
    notice = results["rb-issue-368-bug.eml"]
    assert notice.kind is MailKind.BOUNCE
    assert notice.bounce is not None
    assert not notice.bounce.permanent
    # with a token, the ordinary messages are answers and still no bounce
    for name in ("is-not-bounce-01.eml", "is-not-bounce-02.eml"):
        assert read(with_token((SISIMAI / "not" / name).read_bytes())).kind is MailKind.ANSWER


@pytest.mark.parametrize(
    ("name", "permanent", "status", "recipient"),
    [
        ("lhost-amavis-01.eml", True, "5.1.1", "neko@example.co.jp"),
        ("lhost-activehunter-01.eml", True, "5.1.1", "kijitora@example.org"),
        ("lhost-exchange2007-02.eml", False, "5.2.2", "kijitora@example.edu"),  # mailbox full
        ("lhost-gmail-06.eml", False, "4.2.2", "kijitora@example.jp"),
        ("lhost-gmail-16.eml", False, "5.2.2", "mailboxfull@bouncehammer.jp"),
        ("lhost-amazonses-17.eml", False, "4.4.7", "kijitora@example.com"),  # expired
        ("lhost-amazonses-09.eml", True, "5.1.1", "bounce@simulator.amazonses.com"),  # SES
        ("lhost-verizon-02.eml", True, None, None),  # broken MIME, "550 … no such user"
    ],
)
def test_hard_and_soft_bounces(name: str, permanent: bool, status: str | None,
                               recipient: str | None) -> None:
    result = read_file(SISIMAI / "bsd" / name)
    assert result.kind is MailKind.BOUNCE
    assert result.bounce is not None
    assert result.bounce.permanent is permanent
    assert result.bounce.status == status
    if recipient is not None:
        assert recipient in result.bounce.recipients


def test_bounces_give_recipients_and_original_ids() -> None:
    bounces = [b for b in (read_file(p).bounce for p in BOUNCES) if b is not None]
    with_recipients = sum(1 for b in bounces if b.recipients)
    with_id = sum(1 for b in bounces if b.original_message_id)
    assert with_recipients >= 560
    assert with_id >= 520
    assert all("@" in r for b in bounces for r in b.recipients)


def test_dsn_fields() -> None:
    result = read_file(SISIMAI / "bsd" / "lhost-amavis-01.eml")
    assert result.reason == "dsn"
    assert result.bounce is not None
    assert result.bounce.diagnostic is not None
    assert result.bounce.diagnostic.startswith("550 5.1.1 <neko@example.co.jp>")
    assert result.bounce.original_message_id == (
        "<Qdmail.0.0.0e_8ed60e1eb3e559f02254e3437c3110b1@example.net>")


def test_corpus_is_fast_enough() -> None:
    raws = [p.read_bytes() for p in [*BOUNCES, *AUTO_REPLIES, *COMPLAINTS]]
    start = time.perf_counter()
    for raw in raws:
        read(raw)
    per_message = (time.perf_counter() - start) / len(raws)
    assert per_message < 0.05


# --- a bounce of our own invitation ---------------------------------------------------------

OUR_DSN = f"""From: Mail Delivery System <MAILER-DAEMON@mx.kommune.no>
To: undersokelse@svarbot.localhost
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Meldingen kunne ikke leveres.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.kommune.no

Final-Recipient: rfc822; {{recipient}}
Action: {{action}}
Status: {{status}} (mailbox)
Diagnostic-Code: smtp; 550 {{status}} User unknown

--B
Content-Type: text/rfc822-headers

From: Svarbot <undersokelse@svarbot.localhost>
To: kari.nordmann@kommune.no
Reply-To: svar+{TOKEN}@svarbot.localhost
Message-ID: <20191002080000.1@svarbot.localhost>
References: <r-{TOKEN}@svarbot.localhost>
Subject: Invitasjon

--B--
"""


@pytest.mark.parametrize(
    ("action", "status", "permanent"),
    [("failed", "5.1.1", True), ("failed", "4.2.2", False), ("delayed", "4.4.1", False),
     ("failed", "5.2.2", False), ("failed", "5.7.1", True)],
)
def test_our_bounce_is_correlated(action: str, status: str, permanent: bool) -> None:
    raw = OUR_DSN.format(recipient="Kari.Nordmann@kommune.no", action=action, status=status)
    result = read(raw.encode())
    assert result.kind is MailKind.BOUNCE
    assert (result.token, result.token_source) == (TOKEN, "original")
    assert result.bounce is not None
    assert result.bounce.permanent is permanent
    assert result.bounce.status == status
    assert result.bounce.recipients == ("kari.nordmann@kommune.no",)
    assert result.bounce.original_message_id == "<20191002080000.1@svarbot.localhost>"


def test_delivered_dsn_is_no_bounce() -> None:
    raw = OUR_DSN.format(recipient="kari@kommune.no", action="delivered", status="2.0.0")
    result = read(raw.encode())
    assert result.kind is MailKind.UNKNOWN
    assert result.reason == "dsn:no-failure"


def test_exchange_ndr_header_without_dsn_part() -> None:
    raw = mail("""From: Microsoft Outlook <Ikke.svar@kommune.no>
To: undersokelse@svarbot.localhost
Subject: Kan ikke leveres: Invitasjon
X-MS-Exchange-Message-Is-Ndr:""", "Leveringen til disse mottakerne mislyktes:\n\n"
        "kari.nordmann@kommune.no\n\n550 5.1.10 RESOLVER.ADR.RecipientNotFound\n")
    result = read(raw)
    assert (result.kind, result.reason) == (MailKind.BOUNCE, "exchange-ndr")
    assert result.bounce is not None
    assert result.bounce.permanent
    assert result.bounce.status == "5.1.10"
    assert result.bounce.recipients == ("kari.nordmann@kommune.no",)


# --- auto-replies (synthetic Norwegian) -----------------------------------------------------


def test_exchange_out_of_office_nb() -> None:
    result = read_file(MAIL / "exchange_oof_nb.eml")
    assert result.kind is MailKind.AUTO_REPLY
    assert result.return_date == date(2019, 10, 7)


def test_exchange_headers_alone_mark_an_auto_reply() -> None:
    raw = mail(f"From: kari@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\n"
               "Subject: Undersøkelse\n"
               "x-ms-exchange-generated-message-source: Mailbox Rules Agent")
    assert read(raw).reason == "mailbox-rules-agent"


def test_gmail_vacation_nb() -> None:
    result = read_file(MAIL / "gmail_vacation_nb.eml")
    assert (result.kind, result.reason) == (MailKind.AUTO_REPLY, "auto-submitted")
    assert (result.token, result.token_source) == (TOKEN, "references")
    assert result.return_date == date(2019, 10, 12)


def test_plain_automatisk_svar_without_headers() -> None:
    result = read_file(MAIL / "plain_autosvar_nb.eml")
    assert (result.kind, result.reason) == (MailKind.AUTO_REPLY, "subject:automatisk svar")
    assert result.return_date == date(2019, 10, 14)


@pytest.mark.parametrize(
    ("subject", "reason"),
    [("Autosvar: Undersøkelse", "subject:autosvar"),
     ("Fraværende: Undersøkelse", "subject:fraværende"),
     ("Fraværsmelding", "subject:fraværsmelding"),
     ("Out of Office: Survey", "subject:out of office"),
     ("Automatic reply: Survey", "subject:automatic reply"),
     ("Auto: Survey", "subject:auto"),
     ("Abwesenheitsnotiz: Umfrage", "subject:abwesenheitsnotiz"),
     ("Frånvaro: Enkät", "subject:frånvaro")],
)
def test_auto_reply_subjects(subject: str, reason: str) -> None:
    raw = mail(f"From: kari@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: {subject}")
    assert (read(raw).kind, read(raw).reason) == (MailKind.AUTO_REPLY, reason)


@pytest.mark.parametrize(
    ("header", "reason"),
    [("Auto-Submitted: auto-replied", "auto-submitted"),
     ("X-Autoreply: yes", "x-autoreply"),
     ("Precedence: bulk", "precedence:bulk"),
     ("Precedence: auto_reply", "precedence:auto_reply"),
     ("Return-Path: <>", "null-return-path"),
     ("X-Apple-Action: VACATION", "x-apple-action")],
)
def test_auto_reply_headers(header: str, reason: str) -> None:
    raw = mail(f"From: kari@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: SV: x\n"
               f"{header}")
    assert (read(raw).kind, read(raw).reason) == (MailKind.AUTO_REPLY, reason)


def test_noreply_sender_is_automatic() -> None:
    raw = mail(f"From: noreply@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: x")
    assert read(raw).reason == "noreply-from"


def test_auto_response_suppress_alone_is_an_ordinary_reply() -> None:
    result = read_file(MAIL / "outlook_answer_nb.eml")
    assert (result.kind, result.token, result.token_source) == (
        MailKind.ANSWER, TOKEN, "recipient")


def test_auto_submitted_no_is_human() -> None:
    raw = mail(f"From: k@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: SV: x\n"
               "Auto-Submitted: no")
    assert read(raw).kind is MailKind.ANSWER


# --- return dates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "today", "expected"),
    [
        ("Jeg er tilbake 14. oktober.", date(2019, 10, 2), date(2019, 10, 14)),
        ("Jeg er tilbake på jobb mandag 7.10.", date(2019, 10, 2), date(2019, 10, 7)),
        ("Er tilbake igjen 14.10.2019", date(2019, 10, 2), date(2019, 10, 14)),
        ("Jeg er fraværende til og med 11. oktober", date(2019, 10, 2), date(2019, 10, 12)),
        ("Ferie t.o.m. 11.10", date(2019, 10, 2), date(2019, 10, 12)),
        ("Eg er attende på kontoret 14. okt.", date(2019, 10, 2), date(2019, 10, 14)),
        ("Eg er på ferie fram til 21.10.19.", date(2019, 10, 2), date(2019, 10, 21)),
        ("I am back on Monday 7 October.", date(2019, 10, 2), date(2019, 10, 7)),
        ("Returning October 14th.", date(2019, 10, 2), date(2019, 10, 14)),
        ("Out of the office until 11/10", date(2019, 10, 2), date(2019, 10, 11)),
        ("I am away through Oct 11, 2019", date(2019, 10, 2), date(2019, 10, 12)),
        ("Tilbake 6. januar", date(2019, 12, 20), date(2020, 1, 6)),
        ("Til og med 31. desember", date(2019, 12, 20), date(2020, 1, 1)),
        ("tilbake 2020-01-06", date(2019, 12, 20), date(2020, 1, 6)),
        ("Tilbake i uke 42", date(2019, 10, 2), date(2019, 10, 14)),
        ("Eg er attende måndag", date(2019, 10, 2), date(2019, 10, 7)),
        ("Ferie. Ring sentralbordet kl 08.00 til 16.00", date(2019, 10, 2), None),
        ("Jeg er på kurs i dag.", date(2019, 10, 2), None),
        ("Tilbake 30. februar", date(2019, 10, 2), None),
    ],
)
def test_return_dates(text: str, today: date, expected: date | None) -> None:
    assert parse_return_date(text, today=today) == expected


# --- forwards -------------------------------------------------------------------------------


def test_forward_from_central_mailbox() -> None:
    result = read_file(MAIL / "forward_central_nb.eml")
    assert (result.kind, result.reason) == (MailKind.FORWARD, "forward:marker")


def test_outlook_forward_header_block() -> None:
    result = read_file(MAIL / "forward_outlook_nb.eml")
    assert (result.kind, result.reason) == (MailKind.FORWARD, "forward:header-block")


def test_outlook_reply_with_header_block_is_no_forward() -> None:
    assert read_file(MAIL / "crlf_outlook_answer_nb.eml").kind is MailKind.ANSWER


def test_forward_subject_without_forwarded_message_is_no_forward() -> None:
    raw = mail(f"From: k@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: VS: x", "Ja\n")
    assert read(raw).kind is MailKind.ANSWER


def test_attached_message_with_forward_subject() -> None:
    raw = (SISIMAI / "not" / "is-not-bounce-02.eml").read_bytes()
    raw = raw.replace(b"Subject: original as attachment", b"Subject: Fwd: original")
    assert read(with_token(raw)).reason == "forward:attachment"


FORWARD_BODIES = sorted(
    p for p in FORWARDS.glob("*_body*.txt")
    if "variant_4" not in p.name and ("_no_" in p.name or "_en_" in p.name)
)


@pytest.mark.parametrize("path", FORWARD_BODIES, ids=lambda p: p.name)
def test_forward_corpus_norwegian_and_english(path: Path) -> None:
    body = path.read_bytes().decode("utf-8-sig")
    raw = mail(f"From: k@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: VS: x",
               body)
    assert read(raw).kind is MailKind.FORWARD


@pytest.mark.parametrize("path", sorted(FORWARDS.glob("*_body_variant_4.txt")),
                         ids=lambda p: p.name)
def test_forward_corpus_replies_are_no_forwards(path: Path) -> None:
    body = path.read_bytes().decode("utf-8-sig")
    raw = mail(f"From: k@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: SV: x", body)
    assert read(raw).kind is MailKind.ANSWER


def test_forward_corpus_all_languages() -> None:
    bodies = [p for p in FORWARDS.glob("*_body*.txt") if "variant_4" not in p.name]
    found = 0
    for path in bodies:
        body = path.read_bytes().decode("utf-8-sig")
        raw = mail(f"From: k@x.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: Fwd: x", body)
        found += read(raw).kind is MailKind.FORWARD
    assert found / len(bodies) > 0.9


# --- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "source"),
    [("outlook_answer_nb.eml", "recipient"), ("reply_cc_only.eml", "recipient"),
     ("references_only.eml", "references"), ("delivered_to.eml", "recipient")],
)
def test_token_sources(name: str, source: str) -> None:
    result = read_file(MAIL / name)
    assert (result.kind, result.token, result.token_source) == (MailKind.ANSWER, TOKEN, source)


def test_token_in_subject_tag() -> None:
    raw = mail(f"From: k@kommune.no\nTo: undersokelse@svarbot.localhost\n"
               f"Subject: SV: Undersøkelse [svar:{TOKEN.upper()}]")
    assert read(raw).token_source == "subject"  # noqa: S105
    parsed = parse_mail(raw)
    assert find_token(parsed, reply_pattern=REPLY, unsubscribe_pattern=UNSUBSCRIBE) == (
        TOKEN, "subject")


def test_reply_address_in_subject() -> None:
    raw = mail(f"From: k@kommune.no\nTo: undersokelse@svarbot.localhost\n"
               f"Subject: Svar til svar+{TOKEN}@svarbot.localhost.")
    assert read(raw).token == TOKEN


def test_from_alone_identifies_nobody() -> None:
    raw = mail(f"From: svar+{TOKEN}@svarbot.localhost\nTo: undersokelse@svarbot.localhost\n"
               "Subject: SV: x")
    parsed = parse_mail(raw)
    assert find_token(parsed, reply_pattern=REPLY, unsubscribe_pattern=UNSUBSCRIBE) == (
        None, None)


def test_reference_on_another_domain_is_ignored() -> None:
    raw = mail(f"From: k@kommune.no\nTo: x@svarbot.localhost\nSubject: SV: x\n"
               f"References: <r-{TOKEN}@evil.example>")
    result = read(raw)
    assert (result.kind, result.reason, result.token) == (MailKind.UNKNOWN, "no-token", None)


def test_other_domain_or_short_token_is_no_token() -> None:
    for to in (f"svar+{TOKEN}@example.com", "svar+short@svarbot.localhost"):
        raw = mail(f"From: k@kommune.no\nTo: {to}\nSubject: SV: x")
        assert read(raw).reason == "no-token"


def test_reply_address_wins_over_unsubscribe_address() -> None:
    other = "a" * 32
    raw = mail(f"From: k@kommune.no\nTo: avmeld+{other}@svarbot.localhost, "
               f"svar+{TOKEN}@svarbot.localhost\nSubject: SV: x")
    assert (read(raw).kind, read(raw).token) == (MailKind.ANSWER, TOKEN)


def test_template_without_token_is_a_configuration_error() -> None:
    parsed = parse_mail(mail("From: k@kommune.no\nSubject: x"))
    with pytest.raises(ValueError, match="token"):
        find_token(parsed, reply_pattern="svar@x", unsubscribe_pattern=UNSUBSCRIBE)


# --- opt-out, questions, answers, loops -----------------------------------------------------


def test_unsubscribe_address() -> None:
    result = read_file(MAIL / "unsubscribe.eml")
    assert (result.kind, result.reason, result.token) == (
        MailKind.OPT_OUT, "unsubscribe-address", TOKEN)


def test_stopp() -> None:
    assert read_file(MAIL / "stopp.eml").reason == "command:stop"


def test_stopp_in_trimmed_text_decides() -> None:
    path = MAIL / "reply_cc_only.eml"
    assert read_file(path, new_text="avmeld").kind is MailKind.OPT_OUT
    assert read_file(path, new_text="Vi måtte stoppe prosjektet").kind is MailKind.ANSWER


def test_stop_in_subject() -> None:
    raw = mail(f"From: k@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: Avmeld", "")
    assert read(raw).reason == "subject:stop"


def test_question() -> None:
    result = read_file(MAIL / "question_nb.eml")
    assert (result.kind, result.reason) == (MailKind.QUERY, "question")


@pytest.mark.parametrize("text", ["Ja", "4", "Nei.", "Svært fornøyd"])
def test_short_answers_are_answers(text: str) -> None:
    raw = mail(f"From: k@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: SV: x",
               f"{text}\n\n> Hvem har ansvaret?\n")
    assert read(raw).kind is MailKind.ANSWER


@pytest.mark.parametrize(
    "name",
    ["base64_body.eml", "broken_mime_no_boundary.eml", "unknown_charset.eml",
     "latin1_no_charset.eml", "html_only.eml", "flowed_delsp.eml"],
)
def test_odd_encodings_still_answer(name: str) -> None:
    assert read_file(MAIL / name).kind is MailKind.ANSWER


def test_own_message_is_a_loop() -> None:
    assert (read_file(MAIL / "loop_own_message.eml").reason) == "loop"


def test_x_loop_marker_is_a_loop() -> None:
    raw = mail(f"From: k@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: SV: x\n"
               "X-Loop: Undersokelse@Svarbot.localhost")
    assert read(raw).reason == "loop"
    assert classify(parse_mail(raw), reply_pattern=REPLY, unsubscribe_pattern=UNSUBSCRIBE,
                    today=TODAY).kind is MailKind.ANSWER  # not ours without own_addresses


def test_mailing_list_traffic() -> None:
    raw = mail(f"From: k@kommune.no\nTo: svar+{TOKEN}@svarbot.localhost\nSubject: SV: x\n"
               "List-Id: <ledere.kommune.no>")
    assert read(raw).reason == "mailing-list"


def test_no_token() -> None:
    raw = mail("From: k@kommune.no\nTo: undersokelse@svarbot.localhost\nSubject: Hei")
    assert (read(raw).kind, read(raw).reason) == (MailKind.UNKNOWN, "no-token")


@given(st.binary(max_size=1500))
def test_classify_never_raises_on_parsable_bytes(raw: bytes) -> None:
    try:
        parsed: ParsedMail = parse_mail(with_token(raw))
    except BadMail:
        return
    result = classify(parsed, reply_pattern=REPLY, unsubscribe_pattern=UNSUBSCRIBE,
                      today=TODAY)
    assert isinstance(result.kind, MailKind)
