"""The interface's words in bokmål and English (`web.lang`); one language per page."""

from __future__ import annotations

from collections.abc import Callable

_TEXTS: dict[str, tuple[str, str]] = {
    # key: (nb, en)
    "app": ("svarbot", "svarbot"),
    "skip": ("Gå til innholdet", "Skip to content"),
    "nav": ("Hovedmeny", "Main menu"),
    "login": ("Logg inn", "Log in"),
    "logout": ("Logg ut", "Log out"),
    "logged_in_as": ("Logget inn som", "Logged in as"),
    "name": ("Brukernavn", "User name"),
    "password": ("Passord", "Password"),
    "login_failed": ("Feil brukernavn eller passord.", "Wrong user name or password."),
    "login_throttled": ("For mange mislykkede forsøk. Vent et kvarter og prøv igjen.",
                        "Too many failed attempts. Wait a quarter of an hour and try again."),
    "login_expired": ("Skjemaet var utløpt. Prøv igjen.", "The form had expired. Try again."),
    "desk": ("Spørsmål", "Questions"),
    "dashboard": ("Oversikt", "Overview"),
    "log": ("Leveringslogg", "Delivery log"),
    "attention": ("Trenger oppfølging", "Needs attention"),
    "outbox": ("Mislykkede", "Failed"),
    "quarantine": ("Karantene", "Quarantine"),
    "health": ("Drift", "Health"),
    "audit": ("Endringslogg", "Audit log"),
    "canned": ("Faste svar", "Canned replies"),
    "csv": ("Last ned som CSV", "Download as CSV"),
    "open": ("Åpne", "Open"),
    "answered": ("Besvarte", "Answered"),
    "closed": ("Lukkede", "Closed"),
    "is_open": ("Åpent", "Open"),
    "is_answered": ("Besvart", "Answered"),
    "is_closed": ("Lukket", "Closed"),
    "no_rows": ("Ingenting her nå.", "Nothing here now."),
    "who": ("Hvem", "Who"),
    "role": ("Rolle", "Role"),
    "municipality": ("Kommune", "Municipality"),
    "address": ("Adresse", "Address"),
    "channel": ("Kanal", "Channel"),
    "asked": ("Spurt", "Asked"),
    "age": ("Ventet", "Waiting"),
    "question": ("Spørsmålet", "The question"),
    "standing": ("Står ved", "Standing at"),
    "status": ("Status", "Status"),
    "your_answer": ("Ditt svar", "Your answer"),
    "answer_help": ("Svaret går til respondenten på {channel}, på {lang}, fulgt av siden "
                    "hen var ved.",
                    "The answer goes to the respondent by {channel}, in {lang}, followed by "
                    "the page they were at."),
    "send_answer": ("Send svaret", "Send the answer"),
    "close_query": ("Lukk uten svar", "Close without answer"),
    "use_canned": ("Sett inn et fast svar", "Insert a canned reply"),
    "insert": ("Sett inn", "Insert"),
    "answer_sent": ("Svaret er sendt til utboksen.", "The answer is on its way."),
    "query_closed": ("Spørsmålet er lukket.", "The question is closed."),
    "earlier_answer": ("Tidligere svar", "Earlier answer"),
    "title": ("Tittel", "Title"),
    "lang": ("Språk", "Language"),
    "text": ("Tekst", "Text"),
    "save": ("Lagre", "Save"),
    "delete": ("Slett", "Delete"),
    "new_canned": ("Nytt fast svar", "New canned reply"),
    "survey": ("Undersøkelse", "Survey"),
    "show": ("Vis", "Show"),
    "funnel": ("Hvor langt de har kommet", "How far they have got"),
    "by_stratum": ("Per stratum", "By stratum"),
    "per_day": ("Sendt og fullført per dag (UTC)", "Sent and finished per day (UTC)"),
    "under_target": ("under målet", "under target"),
    "target": ("Mål for svarprosent", "Target response rate"),
    "refreshes": ("Siden oppdaterer seg selv hvert {n}. sekund.",
                  "This page refreshes itself every {n} seconds."),
    "filter": ("Filtrer", "Filter"),
    "search_address": ("Søk på adresse", "Search by address"),
    "find": ("Finn respondent", "Find a respondent"),
    "find_help": ("Navn eller adresse, eller en del av dem", "Name or address, or part of it"),
    "day": ("Dag", "Day"),
    "kind": ("Type", "Kind"),
    "all": ("alle", "all"),
    "respondent": ("Respondent", "Respondent"),
    "timeline": ("Hendelser", "Events"),
    "resend": ("Send siden hen står ved på nytt", "Send the current page again"),
    "readdress": ("Rett adressen og inviter på nytt", "Correct the address and invite again"),
    "new_address": ("Ny e-postadresse", "New email address"),
    "stop": ("Stopp all kontakt", "Stop all contact"),
    "stop_help": ("Respondenten får ingen flere meldinger.", "The respondent gets no more "
                  "messages."),
    "done": ("Utført.", "Done."),
    "replay": ("Send på nytt", "Send again"),
    "replay_all": ("Send alle på nytt", "Send all again"),
    "release": ("Slipp fri", "Release"),
    "discard": ("Forkast", "Discard"),
    "download": ("Last ned", "Download"),
    "reason": ("Årsak", "Reason"),
    "headers": ("Hoder", "Headers"),
    "stuck": ("Står fast (ikke svart på {n} dager)", "Stuck (no reply for {n} days)"),
    "bounced_list": ("Bounce: trenger ny adresse eller erstatter",
                     "Bounced: needs a new address or a substitute"),
    "replace_hint": ("En erstatter fra samme stratum: svarbot sample --replace (se README).",
                     "A substitute from the same stratum: svarbot sample --replace "
                     "(see README)."),
    "first_rows": ("de {n} første vises; alle står i CSV-fila",
                   "the first {n} are shown; the CSV file has all"),
    "alerts": ("Varsler", "Alerts"),
    "no_alerts": ("Ingen varsler.", "No alerts."),
    "forbidden": ("Du har ikke tilgang til denne siden.", "You may not see this page."),
    "not_found": ("Siden finnes ikke.", "No such page."),
    "bad_form": ("Skjemaet kunne ikke brukes. Last siden på nytt og prøv igjen.",
                 "The form could not be used. Reload the page and try again."),
    "go_home": ("Til forsiden", "To the front page"),
}

_INDEX = {"nb": 0, "en": 1}


def translator(lang: str) -> Callable[..., str]:
    """`t(key, **values)` in `lang` (nb or en)."""
    index = _INDEX.get(lang, 0)

    def t(key: str, **values: object) -> str:
        text = _TEXTS[key][index]
        return text.format(**values) if values else text

    return t
