"""`svarbot log` in one language: every code the product writes into the event tables has
words in bokmål and English, an output in one language has no word of the other, and no
internal code (`header_block`, `no_token`, `x-failed-recipients` …) is ever shown raw.

The codes are gathered from their producers: partly read out of the source (the mail
classifier's and the Telegram reader's reasons, the quarantine reasons, the trim rules, the
engine's event kinds, the statuses), partly listed here where they are built from pieces (a
server's reply after `RCPT:`, a retry count). A producer that starts writing a new code makes
`test_every_code_the_product_writes_has_words` name it. The command's own outputs are checked
the same way in `test_log.py`, on a history made by the real sender and dispatcher.
"""

from __future__ import annotations

import dataclasses
import re
import string
import typing
from pathlib import Path

import pytest

import flows.events
from bot.channels.base import Verdict
from bot.channels.email import trim
from storage.history import LANGUAGES, WORDS, Words, inbox_detail, outbox_detail, reason_words
from storage.schema import InboxStatus, InvitationStatus, OutboxStatus

ROOT = Path(__file__).resolve().parents[1]

#: Words that are English and not Norwegian: none may appear in a bokmål output.
ENGLISH = ("invitation", "reminder", "confirmation", "queued", "sent", "sending", "retry",
           "attempt", "attempts", "bounced", "bounce", "received", "incoming", "email", "answer",
           "question", "reply", "handled", "processed", "quarantined", "released", "ignored",
           "waiting", "pending", "invited", "delivered", "started", "finished", "opted",
           "closed", "survey", "signature", "quoted", "header", "marker", "delimiter",
           "inline", "review", "accepted", "replayed", "operator", "events", "recipient",
           "button", "link", "unknown", "none", "the", "was", "of", "from", "given", "page",
           "notice", "report", "address", "no", "not")
#: Words that are Norwegian and not English: none may appear in an English output.
NORWEGIAN = ("invitasjon", "påminnelse", "svarside", "bekreftelse", "sendt", "sendes", "kø",
             "forsøk", "gitt", "avvist", "mottatt", "innkommende", "e-post", "svar", "spørsmål",
             "behandlet", "karantene", "sluppet", "ignorert", "venter", "invitert", "levert",
             "påbegynt", "fullført", "avmeldt", "lukket", "stengt", "undersøkelse",
             "undersøkelsen", "signatur", "sitatet", "hendelser", "ingen", "tid", "hva",
             "detalj", "adresse", "mottaker", "avsender", "knapp", "lenke", "ukjent", "og",
             "av", "etter", "fra", "til", "ikke", "med", "som", "melding", "serveren")
#: What a foreign word in the output is found by: the words, outside quoted text.
_QUOTED = re.compile(r"«[^»]*»|“[^”]*”")


def _read(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def _literals(path: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, _read(path)))


def _bad_mail() -> set[str]:
    """The reasons the mail reader gives for a message it cannot read, from every module."""
    return {reason for path in sorted((ROOT / "bot" / "channels" / "email").glob("*.py"))
            for reason in re.findall(r'BadMail\("(\w+)"', path.read_text(encoding="utf-8"))}


def _engine_kinds() -> set[str]:
    kinds = set()
    for event in typing.get_args(flows.events.Event):
        kinds |= {f.default for f in dataclasses.fields(event) if f.name == "kind"}
    return {str(kind) for kind in kinds}


def _codes() -> dict[str, set[str]]:
    """Every code the product writes, by the namespace `Words.code` reads it in."""
    classify = "bot/channels/email/classify.py"
    signals = (_literals(classify, r'return "([a-z][a-z0-9+:.-]*)"')
               | _literals(classify, r'result\(MailKind\.\w+, "([^"]+)"\)')
               | _literals(classify, r'"((?:command|subject):stop)"')
               | set(re.findall(r'"(x-[a-z-]+)"', _read(classify).split("_AUTOREPLY_HEADERS = ")
                                [1].split(")")[0]))
               | _literals("bot/channels/telegram/updates.py", r'reason="(\w+)"')
               | {"from:mailer-daemon", "from:postmaster", "precedence:bulk",
                  "precedence:auto_reply", "subject:automatisk svar", "subject:out of office",
                  "dsn:no-failure", "subject+flufl:no-failure",
                  # the dispatcher's and the inbox's own reasons for ignoring a message
                  "hard bounce 5.1.1", "hard bounce", "soft bounce 4.2.2",
                  "sender not tied to an invitation", "tap on an answered question",
                  "discarded by an operator",
                  # bot/desk/answer.py's DeskError texts (a desk answer not sent)
                  "the answer is empty", "the answer is longer than 4000 characters",
                  "the question is closed; it opens again when the respondent writes",
                  "survey ordforer-2020 is not in the configuration",
                  "no channel reaches the respondent (no address, chat blocked)"})
    signals = {code for code in signals if code and not code.endswith(":")}
    quarantine = (_bad_mail()
                  | _literals("bot/channels/telegram/updates.py", r'Unreadable\("(\w+)"\)')
                  | _literals("bot/conversation/dispatch.py", r'reason="(\w+)"')
                  | _literals("bot/channels/email/imap_reader.py", r'reason="(\w+)"')
                  | {"no_token", str(Verdict.FORWARD), str(Verdict.UNKNOWN),
                     str(Verdict.COMPLAINT),
                     "too_large: 25000000 bytes; headers kept, body left on the server",
                     "desk_sender: a reply to the desk's mail from another address",
                     "no_token: no-token", "forward: forward:marker", "unknown: loop"})
    trim_source = "bot/channels/email/trim.py"
    rules = (set(trim._BOUNDARY_RULE.values())
             | _literals(trim_source, r'rule(?:, review)? = "(\w+)"')
             | _literals(trim_source, r'return keep(?:\[:pos\])?, "(\w+)"')
             | {"needs review", "survey closed", "start_unknown", "start_missing",
                "link held by another user", "query 12"})
    reasons = ({"invitation sent", "bounce", "bounce report", "spam complaint", "survey closed",
                "adressen rettet av en operatør", "stoppet av en operatør", "status before 0003"}
               | {f"conversation: {kind}" for kind in _engine_kinds()}
               | {"conversation: answer_recorded, page_completed, paused"})
    delivery = ({"accepted", "replayed by operator", "survey closed", "tap answered",
                 "keyboard changed", "invalid bot token", "RCPT: refused",
                 "400: chat not found",
                 # codes built from pieces: a server's or Telegram's reply, an exception name
                 "250 2.0.0 Ok: queued as 4ABC", "RCPT: 451 4.3.0 try later",
                 "RCPT: 550 5.1.1 User unknown", "DATA: 554 5.7.1 rejected as spam",
                 "MAIL FROM: 553 5.7.1 sender rejected", "login: 535 5.7.8 bad credentials",
                 "451 4.4.2 timeout", "connection: SMTPServerDisconnected",
                 "connection: lost (SMTPServerDisconnected)",
                 "connection: no answer within 30 s (SMTPTimeoutError)",
                 "connect: 421 4.7.0 try again later", "connect: refused (ConnectionRefusedError)",
                 "connect: TLS handshake failed (WRONG_VERSION_NUMBER)", "connect: OSError",
                 "connect: STARTTLS extension not supported by server",
                 "connect: no answer (TimeoutError)", "deadline: no result within 45.0 s",
                 "smtp: STARTTLS extension not supported by server", "error: RuntimeError",
                 "render failed: KeyError", "bad payload: TypeError",
                 "unknown operation 'fly'", "network: NetworkError",
                 "429: retry after 3 s", "403: Forbidden: bot was blocked by the user",
                 "400: Bad Request: message is not modified", "message 4711",
                 "gave up after 9 attempts: RCPT: 451 4.3.0 try later",
                 "late result retry: 451 4.3.0 try later", "hard bounce 5.1.1",
                 "soft bounce 4.2.2", "soft bounce"})
    return {"signal": signals, "quarantine": quarantine, "rule": rules, "reason": reasons,
            "delivery": delivery, "received": {"8117 bytes"},
            "released": {"was no_token", "was too_large"},
            "class": {str(v) for v in Verdict} - {"ignore"} | {"start", "desk_answer"},
            "kind": {"invitation", "reminder", "page", "confirmation", "closed", "info",
                     "ack", "desk_reply", "desk_notice", "alert"},
            "invitation": {str(s) for s in InvitationStatus},
            "event": ({str(s) for s in OutboxStatus} | {str(s) for s in InboxStatus}
                      | {"soft_bounce", "ignored", "released"}),
            "channel": {"email", "telegram"}}


def _said(words: Words, namespace: str, code: str) -> str:
    if namespace == "reason":
        return reason_words(code, words)
    if namespace in ("invitation", "event"):
        return words.status(namespace if namespace == "invitation" else "outbox", code)
    if namespace == "channel":
        return words.channel(code)
    return words.code(namespace, code)


def _known(words: Words, namespace: str, code: str) -> bool:
    if namespace == "reason" and code.startswith("conversation: "):
        return True  # every kind is checked as an engine event below
    if namespace in ("invitation", "event", "channel", "engine"):
        return f"{namespace}.{code}" in WORDS[words.lang]
    return words.known(namespace, code)


def _raw_codes() -> set[str]:
    """The codes that are plainly codes: joined by `_`, `:`, `+` or `-`."""
    return {code for codes in _codes().values() for code in codes
            if re.fullmatch(r"[a-z][a-z0-9]*(?:[_:+-][a-z0-9]+)+", code)}


def foreign_or_raw(text: str, lang: str) -> list[str]:
    """The other language's words and the raw codes in `text` (quoted text left out)."""
    plain = _QUOTED.sub(" ", text).casefold()
    foreign = ENGLISH if lang == "nb" else NORWEGIAN
    found = [w for w in foreign if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", plain)]
    found += [c for c in _raw_codes()
              if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", plain)]
    return found


# --- the tables -------------------------------------------------------------------------------


def test_both_tables_have_the_same_entries_and_placeholders() -> None:
    assert set(LANGUAGES) == set(WORDS) == {"nb", "en"}
    assert set(WORDS["nb"]) == set(WORDS["en"])
    fields = string.Formatter()
    for key, nb in WORDS["nb"].items():
        en = WORDS["en"][key]
        assert sorted(f for _, f, _, _ in fields.parse(nb) if f is not None) == sorted(
            f for _, f, _, _ in fields.parse(en) if f is not None), key


def test_every_code_the_product_writes_has_words() -> None:
    """A code that is not in the tables is shown as it is: this names every such code."""
    for lang in LANGUAGES:
        words = Words(lang)
        missing = sorted(f"{namespace}: {code!r}" for namespace, codes in _codes().items()
                         for code in codes if not _known(words, namespace, code))
        missing += [f"engine: {kind!r}" for kind in sorted(_engine_kinds())
                    if f"engine.{kind}" not in WORDS[lang]]
        assert missing == [], f"{lang}: no words for {missing}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_code_is_told_in_one_language_and_never_raw(lang: str) -> None:
    words = Words(lang)
    for namespace, codes in _codes().items():
        for code in sorted(codes):
            said = _said(words, namespace, code)
            assert said, (namespace, code)
            assert foreign_or_raw(said, lang) == [], (namespace, code, said)
    for key, text in WORDS[lang].items():
        assert foreign_or_raw(text.replace("{", "").replace("}", ""), lang) == [], key


def test_an_unknown_code_is_shown_as_it_is() -> None:
    words = Words("nb")
    assert words.code("rule", "brand_new_rule") == "brand_new_rule"
    assert not words.known("rule", "brand_new_rule")
    assert inbox_detail("processed", "brand_new_rule", "answer", words) == "brand_new_rule"
    assert reason_words("a reason nobody wrote words for", words) == (
        "a reason nobody wrote words for")
    assert outbox_detail("mystery [address] [token]", words=words) == (
        "mystery [adresse] [kode]")
    with pytest.raises(ValueError, match="no words for language 'de'"):
        Words("de")


def test_details_are_read_as_the_event_that_wrote_them() -> None:
    """The same code means different things in different events, and a server's words are
    quoted as they were said."""
    nb, en = Words("nb"), Words("en")
    assert inbox_detail("processed", "forward", "answer", nb) == (
        "lest over en videresendt melding (bør sjekkes)")
    assert inbox_detail("failed", "forward", None, nb) == "videresendt melding"
    assert inbox_detail("failed", "no_token: no-token", None, en) == (
        "cannot be tied to an invitation: no invitation code in the address, the subject "
        "or the thread")
    assert inbox_detail("processed", "answer", "answer", nb) == ""  # says nothing more
    assert inbox_detail("ignored", "precedence:bulk", "auto_reply", nb) == "massepost («bulk»)"
    assert inbox_detail("released", "was no_token", None, nb) == (
        "var i karantene: kan ikke knyttes til en invitasjon")
    assert outbox_detail("RCPT: 451 4.3.0 try later", words=en) == (
        "the server replied to the recipient address: “451 4.3.0 try later”")
    assert outbox_detail("gave up after 3 attempts: connection: SMTPServerDisconnected",
                         words=nb) == ("gitt opp etter 3 forsøk: forbindelsen med "
                                       "e-postserveren feilet (SMTPServerDisconnected)")
    assert reason_words("conversation: answer_recorded, page_completed, stopped", nb) == (
        "ba om å stoppe")
    assert reason_words("invitation sent", nb) == "invitasjonen er sendt"
