"""Recognising control commands ("hjelp", "tilbake", "endre 3", "stopp") and questions.

Respondents steer the dialogue with ordinary words in bokmål, nynorsk and English, and the
same words turn up inside answers ("Vi måtte stoppe prosjektet", "Neste år"). A line is
therefore a command only when the whole line is one, so that an answer is never swallowed as
a command. Telegram-style `/hjelp` and `/stop@botname` are accepted too.

`looks_like_question` lets the bot notice a question meant for a person ("Hvem skal svare på
dette?") and offer it to the contact person instead of re-asking it as a bad answer.

Pure and total: no I/O, and no function here raises on any string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from flows.answers import normalise

__all__ = ["Command", "CommandKind", "looks_like_question", "read_command"]

#: A longer line is never a command; checked before any work is done.
_MAX_COMMAND = 200
_MAX_QUESTION = 10_000


class CommandKind(StrEnum):
    """What a respondent can ask the bot to do instead of answering."""

    HELP = "help"
    BACK = "back"
    SKIP = "skip"
    CHANGE = "change"
    PAUSE = "pause"
    RESUME = "resume"
    STATUS = "status"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Command:
    """A command line.

    Attributes:
        number: for CHANGE, the item number ("endre 3"); None when the line names no item
            ("endre"), and the bot then asks which.
    """

    kind: CommandKind
    number: int | None = None


def _phrases(kind: CommandKind, *phrases: str) -> dict[str, CommandKind]:
    return {_words_key(phrase): kind for phrase in phrases}


_WORD_RE = re.compile(r"[^\W_]+")
#: Characters that may appear in a command line besides letters and digits.
_ALLOWED = frozenset(" -_#'.")
#: A line of only those and letters and digits (`\w` is `str.isalnum()` and `_`).
_ALLOWED_RE = re.compile(r"[\w \-#'.]*")


def _words_key(text: str) -> str:
    return " ".join(_WORD_RE.findall(normalise(text)))


_COMMANDS: dict[str, CommandKind] = {
    **_phrases(CommandKind.HELP, "hjelp", "help", "hjelp meg", "help me", "hjelpe"),
    **_phrases(
        CommandKind.BACK, "tilbake", "gå tilbake", "back", "go back", "attende", "gå attende",
        "forrige", "previous",
    ),
    **_phrases(
        CommandKind.SKIP, "hopp over", "hopp", "skip", "neste", "next", "vil ikke svare",
        "vil ikkje svare", "pass",
    ),
    **_phrases(
        CommandKind.PAUSE, "pause", "vent", "senere", "seinare", "later", "fortsett senere",
        "fortset seinare", "fortsett seinare", "fortset senere", "ta pause", "ta en pause",
    ),
    **_phrases(
        CommandKind.RESUME, "fortsett", "fortset", "videre", "vidare", "continue", "resume",
        "start", "start igjen", "start på nytt", "begynn igjen",
    ),
    **_phrases(
        CommandKind.STATUS, "status", "fremdrift", "framdrift", "progress",
        "hvor langt har jeg kommet", "kor langt har eg kome", "kor langt har eg komme",
    ),
    **_phrases(
        CommandKind.STOP, "stopp", "stop", "avslutt", "meld meg av", "meld meg ut", "avmeld",
        "meld av", "unsubscribe", "opt out", "opt-out", "ikke kontakt meg", "ikkje kontakt meg",
        "ikke kontakt meg mer", "ikkje kontakt meg meir", "jeg vil ikke delta",
        "eg vil ikkje delta", "jeg vil ikkje delta", "eg vil ikke delta",
    ),
    **_phrases(
        CommandKind.CHANGE, "endre", "endra", "change", "korriger", "endre svar", "endra svar",
        "change answer",
    ),
}  # fmt: skip

#: The words before the item number of a CHANGE command ("endre svar 3").
_CHANGE_PREFIXES = frozenset(
    _words_key(p)
    for p in (
        "endre", "endre svar", "endre svaret", "endre spørsmål", "endre svar på",
        "endre svaret på", "endra", "endra svar", "endra svaret", "endra spørsmål",
        "endra svar på", "change", "change answer", "change question", "rett", "rett svar",
        "korriger", "korriger svar", "korriger spørsmål", "edit",
    )
)  # fmt: skip
_NUMBER_FILLERS = frozenset({"nr", "nummer", "number", "no"})
#: Commands that may end in a question mark ("hjelp?", "hvor langt har jeg kommet?").
_QUESTION_KINDS = frozenset({CommandKind.HELP, CommandKind.STATUS})


def read_command(line: str) -> Command | None:
    """The command this single line is, or None.

    The WHOLE line must be the command (after `normalise`, which drops a trailing `.`/`!`), so
    that an answer containing the word "stopp" is not a command. A leading `/` and a Telegram
    `@botname` suffix are ignored. A lone `?` is HELP.
    """
    if len(line) > _MAX_COMMAND:
        return None
    norm = normalise(line)
    known = _KNOWN.get(norm)
    if known is not None:
        return known
    if norm.isascii() and norm.replace(" ", "").isalnum():
        # Plain words ("ja", "vi har samarbeidet med andre kommuner") that are no command
        # phrase (those are all known): only "endre 3" and the like remain.
        if not norm[-1].isdigit():
            return None
        kind, number = _change(norm.split(" "))
        return None if kind is None else Command(kind, number)
    return _command(norm)


def _command(norm: str) -> Command | None:
    """`read_command` of a normalised line."""
    if not norm:
        return None
    if not norm.replace("?", "").strip():
        return Command(CommandKind.HELP)
    if norm.startswith("/"):
        first, _, rest = norm[1:].partition(" ")
        norm = f"{first.partition('@')[0]} {rest}".strip()
    asked = norm.endswith("?")
    if asked:
        norm = normalise(norm.rstrip("? "))
    if not _ALLOWED_RE.fullmatch(norm):
        return None
    words = _WORD_RE.findall(norm)
    if not words:
        return None
    kind = _COMMANDS.get(" ".join(words))
    if kind is None:
        if asked:
            return None  # "endre 3?" is not a command
        kind, number = _change(words)
        if kind is None:
            return None
        return Command(kind, number)
    if asked and kind not in _QUESTION_KINDS:
        return None
    return Command(kind)


def _change(words: list[str]) -> tuple[CommandKind | None, int | None]:
    number = words[-1]
    if not (number.isascii() and number.isdigit() and len(number) <= 3):
        return None, None
    head = words[:-1]
    if head and head[-1] in _NUMBER_FILLERS:
        head = head[:-1]
    if " ".join(head) not in _CHANGE_PREFIXES or not 1 <= int(number) <= 999:
        return None, None
    return CommandKind.CHANGE, int(number)


def _known_commands() -> dict[str, Command]:
    """The commands of the most common lines, worked out in advance by the rules above.

    Only lines that `normalise` leaves as they are qualify, so that looking a normalised line
    up here gives exactly what reading it would.
    """
    lines = ["?", *_COMMANDS, *(f"/{phrase}" for phrase in _COMMANDS)]
    known: dict[str, Command] = {}
    for line in lines:
        command = _command(line)
        if command is not None and normalise(line) == line:
            known[line] = command
    return known


_KNOWN = _known_commands()


# --- questions ------------------------------------------------------------------------------

_INTERROGATIVES = frozenset(
    {
        # bokmål
        "hvem", "hva", "hvor", "hvorfor", "hvordan", "nar", "hvilken", "hvilke", "hvilket",
        # nynorsk
        "kven", "kva", "kor", "kvar", "kvifor", "korleis",
        # English
        "who", "what", "where", "why", "how", "when", "which", "whom", "whose",
    }
)  # fmt: skip
_QUESTION_VERBS = frozenset(
    {
        "kan", "skal", "ma", "er", "har", "gjelder", "gjeld", "bor", "vil", "skulle", "kunne",
        "burde", "trenger", "treng", "finnes", "fins", "blir", "vert",
        "can", "could", "should", "must", "is", "are", "do", "does", "did", "may", "will",
        "would", "shall",
    }
)  # fmt: skip
_CONJUNCTIONS = frozenset({"men", "but", "og", "and", "eller", "or", "sa", "so", "altsa"})
_CLAUSE_RE = re.compile(r"[,.;:!?()\n]")


def looks_like_question(text: str) -> bool:
    """True when the text is clearly a question to a person rather than an answer.

    It must contain a `?` and either start with an interrogative (hvem, kva, how …) or a
    question verb (kan, gjelder, is …), have a later clause that starts with an interrogative
    ("Ja, men hva med SFO?"), or mention the contact person. "?", "5?" and "ja?" are not.
    """
    capped = text[:_MAX_QUESTION]
    if "?" not in capped:
        return False
    norm = normalise(capped)
    if "kontaktperson" in norm or "contact person" in norm:
        return True
    first = True
    for clause in _CLAUSE_RE.split(norm):
        if clause.isascii() and clause.replace(" ", "").isalnum():
            words = clause.split()  # the same words, found faster
        else:
            words = _WORD_RE.findall(clause)
        if not words:
            continue
        start = 0
        while start < len(words) - 1 and words[start] in _CONJUNCTIONS:
            start += 1
        word = words[start]
        if word in _INTERROGATIVES:
            return True
        if first and start == 0 and len(words) > 1 and word in _QUESTION_VERBS:
            return True
        first = False
    return False
