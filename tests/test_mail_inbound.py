"""Parsing inbound mail: body selection, charsets, broken MIME, size limits, recipients."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.email.inbound import BadMail, parse_mail, unflow

MAIL = Path(__file__).parent / "fixtures" / "mail"
TOKEN = "n4rvgk2a7b5c6d2e3f4g5h6j7k2m3p4q"  # noqa: S105 - a synthetic invitation token


def fixture(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def test_headers_are_decoded_and_ids_kept_with_brackets() -> None:
    mail = parse_mail(fixture("gmail_vacation_nb.eml"))
    assert mail.subject == "Fraværende: Undersøkelse om tjenestetilbudet"
    assert mail.message_id == "<CAF=x9q1v@mail.gmail.com>"
    assert mail.in_reply_to == "<20191002080000.1@svarbot.localhost>"
    assert mail.references == (f"<r-{TOKEN}@svarbot.localhost>",
                               "<20191002080000.1@svarbot.localhost>")
    assert mail.headers["auto-submitted"] == "auto-replied"
    assert mail.from_address == "ola.hansen@gmail.com"


def test_multipart_alternative_prefers_plain_text() -> None:
    mail = parse_mail(fixture("gmail_vacation_nb.eml"))
    assert not mail.text_is_html
    assert mail.text.startswith("Hei! Jeg er fraværende til og med 11. oktober")


def test_recipients_from_all_delivery_headers_lowercased() -> None:
    mail = parse_mail(fixture("delivered_to.eml"))
    assert mail.recipients == (
        "undersokelse@svarbot.localhost", f"svar+{TOKEN}@svarbot.localhost"
    )
    upper = parse_mail(fixture("outlook_answer_nb.eml"))
    assert upper.recipients == (f"svar+{TOKEN}@svarbot.localhost",)
    assert upper.from_address == "kari.nordmann@kommune.no"


def test_cc_is_a_recipient() -> None:
    mail = parse_mail(fixture("reply_cc_only.eml"))
    assert f"svar+{TOKEN}@svarbot.localhost" in mail.recipients
    assert mail.recipients[0] == "per.olsen@kommune.no"


def test_quoted_printable_latin1_declared() -> None:
    mail = parse_mail(fixture("outlook_answer_nb.eml"))
    assert "Emne: Spørsmål 3 av 10: Antall ansatte" in mail.text


def test_base64_body() -> None:
    mail = parse_mail(fixture("base64_body.eml"))
    assert mail.text == "Ja, vi har skriftlige rutiner for dette.\nDe ble revidert i år.\n"


def test_html_only_body_is_returned_raw_and_flagged() -> None:
    mail = parse_mail(fixture("html_only.eml"))
    assert mail.text_is_html
    assert mail.text.startswith("<html><body><div>Svært fornøyd</div>")


def test_unknown_charset_falls_back_to_utf8() -> None:
    mail = parse_mail(fixture("unknown_charset.eml"))
    assert mail.text == "Vi har 3 ansatte på avdelingen for øvrig.\n"
    assert mail.subject.startswith("SV:")


def test_latin1_without_declared_charset() -> None:
    mail = parse_mail(fixture("latin1_no_charset.eml"))
    assert mail.text == "Bærum og Aurskog-Høland samarbeider på tvers av grensene.\n"


def test_eight_bit_header_without_encoding_is_decoded() -> None:
    raw = "From: a@b.no\nSubject: Spørsmål\n\nJa\n".encode("latin-1")
    assert parse_mail(raw).subject == "Spørsmål"


def test_broken_mime_missing_boundary_is_still_read() -> None:
    mail = parse_mail(fixture("broken_mime_no_boundary.eml"))
    assert mail.text.strip() == "Ja, det stemmer."


def test_format_flowed_with_delsp_is_joined() -> None:
    mail = parse_mail(fixture("flowed_delsp.eml"))
    lines = mail.text.splitlines()
    assert lines[0] == ("Den største utfordringen er rekruttering av pedagoger til "
                        "barnehagene i distriktet.")
    assert "-- " in lines  # the signature separator is not a soft break
    assert "> Hva er den største utfordringen?" in lines


@pytest.mark.parametrize(
    ("text", "delsp", "expected"),
    [
        ("ab \ncd", False, "ab cd"),
        ("ab \ncd", True, "abcd"),
        ("> a \n> b\nc", False, "> a b\nc"),
        ("> a \nb", False, "> a \nb"),  # quote depth changes: no join
        (" From here", False, "From here"),  # space-stuffing undone
    ],
)
def test_unflow(text: str, delsp: bool, expected: str) -> None:
    assert unflow(text, delsp=delsp) == expected


def test_crlf_becomes_lf() -> None:
    raw = b"From: a@b.no\r\nSubject: x\r\n\r\nJa\r\n\r\nHilsen\r\n"
    assert parse_mail(raw).text == "Ja\n\nHilsen\n"


def test_nfd_is_normalised_to_nfc() -> None:
    raw = "From: a@b.no\nContent-Type: text/plain; charset=utf-8\n\nBa\u030arum\n".encode()
    assert parse_mail(raw).text == "B\u00e5rum\n"


def test_twenty_megabytes_is_refused_fast() -> None:
    head = b"From: a@b.no\nSubject: vedlegg\nContent-Type: application/pdf\n\n"
    raw = head + b"A" * 20_000_000
    start = time.perf_counter()
    with pytest.raises(BadMail) as caught:
        parse_mail(raw)
    assert time.perf_counter() - start < 0.05
    assert caught.value.reason == "too_large"


def test_limit_is_configurable() -> None:
    raw = fixture("base64_body.eml")
    with pytest.raises(BadMail, match="too_large"):
        parse_mail(raw, max_bytes=len(raw) - 1)
    assert parse_mail(raw, max_bytes=len(raw)).size == len(raw)


def test_text_is_capped() -> None:
    raw = b"From: a@b.no\nSubject: x\n\n" + b"ja " * 200_000
    assert len(parse_mail(raw).text) == 256 * 1024


def test_not_an_email() -> None:
    with pytest.raises(BadMail) as caught:
        parse_mail(b"\x00\x01 just some bytes without any header")
    assert caught.value.reason == "not_mime"


def test_no_body_at_all() -> None:
    raw = (b"From: a@b.no\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed;"
           b' boundary="b"\n\n--b\nContent-Type: application/pdf\n'
           b"Content-Transfer-Encoding: base64\n\nJVBERi0=\n--b--\n")
    with pytest.raises(BadMail) as caught:
        parse_mail(raw)
    assert caught.value.reason == "no_body"


def test_empty_body_is_empty_text() -> None:
    assert parse_mail(b"From: a@b.no\nSubject: Ja\n\n").text == ""


@given(st.binary(max_size=2000))
def test_random_bytes_parse_or_raise_badmail(raw: bytes) -> None:
    reason = None
    try:
        mail = parse_mail(raw)
    except BadMail as exc:
        reason = exc.reason
    else:
        assert mail.size == len(raw)
    assert reason in (None, "not_mime", "no_body")


@given(st.lists(st.sampled_from([
    b"From: a@b.no\n", b"To: svar+abc@x\n", b"Subject: =?x-bad?Q?=FF?=\n",
    b"Content-Type: multipart/mixed\n", b'Content-Type: text/plain; charset="\xff"\n',
    b"Content-Transfer-Encoding: base64\n", b"--b\n", b"\n", b"\xc3\xa5\xff\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n",
    b"Content-Type: message/delivery-status\n", b"Action: failed\nStatus: 5.1.1\n",
    b"References: <r-x@y> <a\n", b"format=flowed; delsp=yes \n",
]), max_size=30))
def test_mail_shaped_bytes_parse_or_raise_badmail(parts: list[bytes]) -> None:
    raw = b"".join(parts)
    with contextlib.suppress(BadMail):
        parse_mail(raw)


# --- body selection and headers, as `EmailMessage.get_body` and `policy.default` read them ---


def test_attached_text_is_not_the_body() -> None:
    raw = (b'From: a@b.no\nContent-Type: multipart/mixed; boundary="b"\n\n'
           b"--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=x.txt\n\n"
           b"vedlegg\n--b\nContent-Type: text/plain\n\nJa\n--b--\n")
    assert parse_mail(raw).text == "Ja"


def test_related_body_is_its_start_part() -> None:
    raw = (b'From: a@b.no\nContent-Type: multipart/related; boundary="b"; start="<two@x>"\n\n'
           b"--b\nContent-Type: text/plain\nContent-ID: <one@x>\n\nen\n"
           b"--b\nContent-Type: text/plain\nContent-ID: <two@x>\n\nto\n--b--\n")
    assert parse_mail(raw).text == "to"


def test_every_value_of_a_header_is_kept_decoded() -> None:
    raw = (b"From: a@b.no\nX-Loop: =?utf-8?q?=C3=98la?= <a@b.no>\nX-Loop: c@d.no\n"
           b"Subject: x\n\nJa\n")
    mail = parse_mail(raw)
    assert mail.header_values["x-loop"] == ("Øla <a@b.no>", "c@d.no")
    assert mail.headers["x-loop"] == "Øla <a@b.no>"
    assert "received" not in mail.header_values
    assert [kind for kind, _ in mail.parts] == ["text/plain"]


def test_folded_flowed_parameters_are_read() -> None:
    raw = b"From: a@b.no\nContent-Type: text/plain; format=flowed;\n\tdelsp=yes\n\nab \ncd\n"
    assert parse_mail(raw).text == "abcd\n"


def test_eight_bit_header_values_are_strings_for_other_readers() -> None:
    mail = parse_mail("From: Åse <a@b.no>\nSubject: x\n\nJa\n".encode("latin-1"))
    assert mail.message.get("from") == "\ufffdse <a@b.no>"  # as policy.default shows it
    assert mail.headers["from"] == "Åse <a@b.no>"


def test_parsing_costs_less_than_the_stdlib_default_policy() -> None:
    """Reading a message must not cost more than `policy.default` parsing it bare; reading
    it with that policy once cost twice as much."""
    import email
    from email.policy import default

    raw = fixture("outlook_answer_nb.eml")

    def best(read: object) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(20):
                read(raw)  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times)

    stdlib = best(lambda data: email.message_from_bytes(data, policy=default))
    assert best(parse_mail) < stdlib
