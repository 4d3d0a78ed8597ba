"""Tests for flows.commands: whole-line commands in three languages, and questions to a person.

The important property is negative: words that are commands must not turn an answer that
merely contains them into a command, and an answer must not be mistaken for a question.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.commands import Command, CommandKind, looks_like_question, read_command
from flows.loader import load_shipped
from flows.render import chat_choices

_WORDS = {
    CommandKind.HELP: ("hjelp", "help", "hjelp meg", "Hjelp!", "HJELP", "?", "??", "hjelp?"),
    CommandKind.BACK: ("tilbake", "gå tilbake", "Gå tilbake.", "back", "attende", "forrige",
                       "previous"),
    CommandKind.SKIP: ("hopp over", "hopp", "skip", "neste", "Neste!", "next", "vil ikke svare",
                       "vil ikkje svare", "pass"),
    CommandKind.PAUSE: ("pause", "vent", "senere", "seinare", "later", "fortsett senere",
                        "fortset seinare"),
    CommandKind.RESUME: ("fortsett", "fortset", "videre", "vidare", "continue", "resume",
                         "start", "start igjen", "Start igjen!"),
    CommandKind.STATUS: ("status", "fremdrift", "framdrift", "progress",
                         "hvor langt har jeg kommet", "Hvor langt har jeg kommet?",
                         "kor langt har eg kome"),
    CommandKind.STOP: ("stopp", "Stopp.", "STOP", "avslutt", "meld meg av", "meld meg ut",
                       "avmeld", "unsubscribe", "opt out", "opt-out", "ikke kontakt meg",
                       "ikkje kontakt meg", "jeg vil ikke delta", "Eg vil ikkje delta."),
}  # fmt: skip
_CASES = [(text, kind) for kind, texts in _WORDS.items() for text in texts]


@pytest.mark.parametrize(("text", "kind"), _CASES)
def test_command_words(text: str, kind: CommandKind) -> None:
    assert read_command(text) == Command(kind)


@pytest.mark.parametrize(("text", "kind"), [c for c in _CASES if not c[0].startswith("?")])
def test_command_words_with_a_telegram_slash(text: str, kind: CommandKind) -> None:
    assert read_command("/" + text) == Command(kind)
    assert read_command("  " + text + "  ") == Command(kind)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/hjelp", Command(CommandKind.HELP)),
        ("/stop", Command(CommandKind.STOP)),
        ("/help@SvarBot", Command(CommandKind.HELP)),
        ("/start", Command(CommandKind.RESUME)),
        ("/endre_3", Command(CommandKind.CHANGE, 3)),
    ],
)
def test_telegram_commands(text: str, expected: Command) -> None:
    assert read_command(text) == expected


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("endre 3", 3),
        ("Endre 3.", 3),
        ("endre svar 12", 12),
        ("endre spørsmål 3", 3),
        ("endre sporsmal 4", 4),
        ("endre nr. 4", 4),
        ("endre #5", 5),
        ("change 7", 7),
        ("change answer 7", 7),
        ("rett 2", 2),
        ("korriger 4", 4),
        ("endra 5", 5),
        ("endra spørsmål 6", 6),
        ("endre 1", 1),
        ("endre 999", 999),
        ("ENDRE 42", 42),
    ],
)
def test_change_with_item_number(text: str, number: int) -> None:
    assert read_command(text) == Command(CommandKind.CHANGE, number)


@given(st.integers(min_value=1, max_value=999), st.sampled_from(("endre", "change", "endra")))
def test_change_any_item_number(number: int, word: str) -> None:
    assert read_command(f"{word} {number}") == Command(CommandKind.CHANGE, number)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ja", None),
        ("Vi har samarbeidet med andre kommuner", None),
        ("vi har 3", None),
        ("ja 3", None),
        ("endre 3", Command(CommandKind.CHANGE, 3)),
        ("Endre svaret på nr 4", Command(CommandKind.CHANGE, 4)),
        ("Hjelp meg", Command(CommandKind.HELP)),
        ("Gå tilbake", Command(CommandKind.BACK)),
        ("Hopp over", Command(CommandKind.SKIP)),
        ("hopp over 3", None),
    ],
)
def test_plain_word_lines(text: str, expected: Command | None) -> None:
    assert read_command(text) == expected


@given(st.sampled_from(sorted(_CASES)), st.sampled_from(("", "!", ".", " ", "?")))
def test_command_words_read_the_same_however_written(
    case: tuple[str, CommandKind], end: str
) -> None:
    text, kind = case
    expected = read_command(text + end)
    assert read_command(text.upper() + end) == expected
    if not text.startswith("?"):
        assert read_command(f"/{text}{end}") == expected
    if not end:
        assert expected == Command(kind)


def test_change_without_a_number_asks_which() -> None:
    assert read_command("endre") == Command(CommandKind.CHANGE)
    # "rett" alone is also an ordinary word ("correct"), so it needs the number.
    assert read_command("rett") is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ja",
        "4",
        "hjelpe til med noe",
        "vi måtte stoppe prosjektet",
        "Stopp det der",
        "neste år",
        "Neste uke passer bedre",
        "pass på",
        "hopp over dette, det gjelder ikke oss",
        "stopp?",
        "endre?",
        "endre 3?",
        "endre 0",
        "endre 1000",
        "endre 3 og 4",
        "endre tre",
        "rett og slett",
        "endre: 3",
        "status: ferdig",
        "/start abc123",
        "hjelp, jeg forstår ikke spørsmål 3",
        "tilbake til start",
        "x" * 5000,
    ],
)
def test_not_commands(text: str) -> None:
    assert read_command(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "Hvem skal svare på dette?",
        "Gjelder dette også SFO?",
        "Kan jeg svare for hele kommunen?",
        "Ja, men hva med SFO?",
        "Nei. Hvorfor spør dere om dette?",
        "Hva menes med tjenesteinnovasjon?",
        "Kva meiner de med dette?",
        "Korleis skal eg svare?",
        "Kven er kontaktperson?",
        "Når er fristen?",
        "Må vi svare på alle spørsmålene?",
        "Skal vi ta med private barnehager?",
        "Er det greit å svare på engelsk?",
        "Har dere en papirversjon?",
        "Bør rådmannen svare?",
        "Who should answer this?",
        "Can I answer for the whole municipality?",
        "Is this anonymous?",
        "Does this include schools?",
        "How long does it take?",
        "Hvem er kontaktpersonen for undersøkelsen?",
        "Jeg lurer på hvem som er kontaktperson?",
        "4, men hvordan regner dere dette?",
    ],
)
def test_questions(text: str) -> None:
    assert looks_like_question(text)


@pytest.mark.parametrize(
    "text",
    [
        "?",
        "??",
        "ja",
        "5?",
        "ja?",
        "Ja",
        "Hvem skal svare på dette",  # no question mark
        "Helse og omsorg?",
        "Vet ikke?",
        "ca. 40?",
        "3, kanskje 4?",
        "Vi har innført det i fjor?",
        "",
    ],
)
def test_not_questions(text: str) -> None:
    assert not looks_like_question(text)


# --- robustness -----------------------------------------------------------------------------


@given(st.text())
def test_read_command_never_raises(text: str) -> None:
    result = read_command(text)
    assert result is None or isinstance(result, Command)
    if result is not None and result.number is not None:
        assert result.kind is CommandKind.CHANGE
        assert 1 <= result.number <= 999


@given(st.text())
def test_looks_like_question_never_raises(text: str) -> None:
    result = looks_like_question(text)
    assert isinstance(result, bool)
    if "?" not in text:
        assert not result


@given(st.text(min_size=1, max_size=40))
def test_huge_texts_are_fast(seed: str) -> None:
    text = (seed * (20_000 // len(seed) + 1))[:20_000]
    start = time.perf_counter()
    command = read_command(text)
    looks_like_question(text)
    looks_like_question(text + "?")
    assert time.perf_counter() - start < 0.5
    assert command is None  # a 20,000 character line is never a command


@pytest.mark.parametrize(
    ("text", "is_question"),
    [
        ("hvem " * 1000 + "?", True),
        ("?" + " hvem" * 4000, True),
        ("hvem " * 4000 + "?", False),  # the '?' lies beyond the part that is read
        ("?" * 20_000, False),
        ("hjelp " * 4000, False),
        ("\x00😀,?" * 5000, False),
    ],
    ids=range(6),
)
def test_pathological_texts_are_fast(text: str, is_question: bool) -> None:
    start = time.perf_counter()
    command = read_command(text)
    question = looks_like_question(text)
    assert time.perf_counter() - start < 0.5
    assert question is is_question
    assert command is None


def test_no_chat_button_sends_a_command() -> None:
    """A tap sends its reply as text: no reply of any button of the shipped questionnaires,
    in any language, may be taken for a command ("neste", "pass", "stopp")."""
    for q_id in ("virksomhetsleder-2020", "ordforer-2020"):
        q = load_shipped(q_id)
        for lang in q.languages:
            replies = {c.reply for item in q.items for c in chat_choices(item, lang)}
            assert replies
            assert [r for r in replies if read_command(r) is not None] == [], (q_id, lang)
            assert not any(looks_like_question(r) for r in replies)
