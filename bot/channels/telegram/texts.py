"""What the bot says in the chat on its own account (not the questionnaire's words).

Bokmål, nynorsk and English. A chat that is not bound to an invitation yet gets the language
its Telegram app is set to, when that is one of ours, else bokmål.
"""

from __future__ import annotations

_NOTICES: dict[str, tuple[str, str, str]] = {
    "start_missing": (
        "Hei! Denne chatten hører til en spørreundersøkelse. Åpne lenken «Svar heller på "
        "mobilen i Telegram» i e-posten du fikk, så kommer spørsmålene her.",
        "Hei! Denne chatten høyrer til ei spørjeundersøking. Opne lenka «Svar heller på "
        "mobilen i Telegram» i e-posten du fekk, så kjem spørsmåla her.",
        "Hello! This chat belongs to a survey. Open the link \"Answer on your phone in "
        "Telegram\" in the email you received, and the questions will appear here."),
    "start_unknown": (
        "Vi kjenner ikke igjen denne lenken. Den kan være gammel eller skrevet av feil. "
        "Bruk lenken i den nyeste e-posten fra oss, eller svar på e-posten.",
        "Vi kjenner ikkje att denne lenka. Ho kan vere gammal eller skriven av feil. "
        "Bruk lenka i den nyaste e-posten frå oss, eller svar på e-posten.",
        "We do not recognise this link. It may be old or mistyped. Use the link in our "
        "latest email, or reply to the email."),
    "start_taken": (
        "Denne lenken er allerede tatt i bruk av en annen Telegram-bruker. Invitasjonen er "
        "personlig: har du fått den videresendt, kan du be om din egen hos kontaktpersonen.",
        "Denne lenka er allereie teken i bruk av ein annan Telegram-brukar. Invitasjonen er "
        "personleg: har du fått han vidaresend, kan du be om din eigen hos kontaktpersonen.",
        "This link is already in use by another Telegram user. The invitation is personal: "
        "if it was forwarded to you, ask the contact person for your own."),
    "edited": (
        "Endringer i meldinger du har sendt, leses ikke. Skriv svaret på nytt, eller skriv "
        "«endre» og nummeret på spørsmålet.",
        "Endringar i meldingar du har sendt, blir ikkje lesne. Skriv svaret på nytt, eller "
        "skriv «endre» og nummeret på spørsmålet.",
        "Edits to messages you have sent are not read. Write the answer again, or write "
        "\"change\" and the question's number."),
    "unreadable": (
        "Vi kan bare lese tekst her. Skriv svaret, eller trykk på en knapp.",
        "Vi kan berre lese tekst her. Skriv svaret, eller trykk på ein knapp.",
        "We can only read text here. Type your answer, or tap a button."),
    "closed": (
        "Undersøkelsen er avsluttet, så vi tar ikke imot flere svar. Takk for at du ville "
        "svare!",
        "Undersøkinga er avslutta, så vi tek ikkje imot fleire svar. Takk for at du ville "
        "svare!",
        "The survey has closed, so we no longer take answers. Thank you for wanting to take "
        "part!"),
    "by_email": (
        "Greit! Resten av spørsmålene kommer på e-post. Svarene dine så langt er tatt vare på.",
        "Greitt! Resten av spørsmåla kjem på e-post. Svara dine så langt er tekne vare på.",
        "Fine! The rest of the questions will come by email. Your answers so far are kept."),
}

_TAPS: dict[str, tuple[str, str, str]] = {
    "stale": ("Dette spørsmålet er allerede besvart.", "Dette spørsmålet er alt svara på.",
              "This question has already been answered."),
    "ok": ("Registrert", "Registrert", "Recorded"),
}

#: The bot's command menu (setMyCommands), in bokmål: the words the engine reads as commands.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("hjelp", "Forklar spørsmålet igjen"),
    ("tilbake", "Gå til forrige spørsmål"),
    ("hopp", "Hopp over spørsmålet"),
    ("status", "Hvor langt har jeg kommet?"),
    ("pause", "Fortsett senere"),
    ("epost", "Få resten på e-post"),
    ("stopp", "Meld meg av undersøkelsen"),
)

_LANGS = ("nb", "nn", "en")


def lang_of(code: str | None) -> str:
    """One of our languages for a Telegram language code ("nb", "no", "nn", "en-GB" …)."""
    base = (code or "").lower().split("-")[0]
    if base in ("nn",):
        return "nn"
    if base == "en":
        return "en"
    return "nb"


def notice(key: str, lang: str) -> str:
    """A notice in `lang` (bokmål when unknown)."""
    return _NOTICES[key][_LANGS.index(lang) if lang in _LANGS else 0]


def tap_answer(key: str, lang: str) -> str:
    """The short text shown over the chat when a button was pressed."""
    return _TAPS[key][_LANGS.index(lang) if lang in _LANGS else 0]
