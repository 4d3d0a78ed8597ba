"""`svarbot find TEXT`: which respondent an operator means, by a piece of a name or address.

Operators know people by name or address ("kari.nordmann@…", "Nordmann"), while `svarbot log`
and `svarbot plan` need to know which respondent. This command lists the matches with what
those commands take (the respondent id; the invitation id per survey) and where each person
stands; `log --respondent` and `plan --respondent` take the same text and use the one match.

The search is the dashboard's (`storage.dashboard.find_respondents`: the text anywhere in the
address or the name, case-insensitive), so the terminal and the /find page agree on who
matches; a number also finds the respondent with that id. Words come from the history's
tables (`storage.history.WORDS`), in bokmål or English.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from bot.cli.common import config_option, open_configured
from bot.cli.common import fail as _fail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from storage.history import Words
    from storage.schema import Invitation, Respondent

#: The width the table is made for: a terminal of 80 columns.
WIDTH = 80
#: How many matches a search lists (the dashboard's limit).
LIMIT = 50

lang_option = click.option("--lang", type=click.Choice(("nb", "en")), default="nb",
                           show_default=True, help="The language of the output: bokmål or "
                                                   "English.")


def matching(session: Session, text: str) -> list[Respondent]:
    """The respondents `text` names: the dashboard's search, and for a number the respondent
    with that id first."""
    from storage.dashboard import find_respondents
    from storage.schema import Respondent

    found = find_respondents(session, text, limit=LIMIT)
    needle = text.strip()
    if needle.isascii() and needle.isdigit():
        by_id = session.get(Respondent, int(needle))
        if by_id is not None:
            found = [by_id, *(r for r in found if r.id != by_id.id)]
    return found


def invitations(session: Session, respondents: list[Respondent]) -> dict[int, list[Invitation]]:
    """Each respondent's invitations, by respondent id, in survey order (one query)."""
    from sqlalchemy import select

    from storage.schema import Invitation

    result: dict[int, list[Invitation]] = {r.id: [] for r in respondents}
    if not result:
        return result
    for invitation in session.scalars(
            select(Invitation).where(Invitation.respondent_id.in_(list(result)))
            .order_by(Invitation.survey_id, Invitation.id)):
        result[invitation.respondent_id].append(invitation)
    return result


def _surveys_cell(invited: list[Invitation], words: Words) -> str:
    if not invited:
        return words("find.not_invited")
    return "\n".join(words("find.invitation", i.survey_id,
                           words.status("invitation", str(i.status)), i.id) for i in invited)


def print_matches(session: Session, found: list[Respondent], text: str, words: Words, *,
                  err: bool = False) -> None:
    """The matches as a table that fits 80 columns (on stderr with `err`)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    invited = invitations(session, found)
    headers = [words(f"find.column.{column}")
               for column in ("id", "name", "address", "municipality", "surveys")]
    rows = [[str(r.id), r.name, r.email, f"{r.municipality_no} {r.municipality_name}",
             _surveys_cell(invited[r.id], words)] for r in found]
    table = Table(title=words("find.title", text), title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False)
    for i, (header, width) in enumerate(zip(headers, _widths(headers, rows), strict=True)):
        table.add_column(header, overflow="fold", width=width,
                         justify="right" if i == 0 else "left")
    for row in rows:
        table.add_row(*row)
    Console(width=WIDTH, stderr=err, highlight=False).print(table)
    if len(found) >= LIMIT:
        click.echo(words("find.more", LIMIT), err=err)


def _widths(headers: list[str], rows: list[list[str]]) -> list[int]:
    """Column widths that add up to 80 columns with the table's separators: the id, the
    municipality and the surveys as wide as they need (within reason), the rest shared by
    the name (up to half) and the address, which are wrapped or folded when longer."""
    def longest(i: int) -> int:
        return max(len(line) for row in [headers, *rows] for line in row[i].splitlines() or [""])

    content = WIDTH - 3 * (len(headers) - 1)
    fixed = {0: longest(0), 3: min(18, longest(3)), 4: min(24, longest(4))}
    rest = content - sum(fixed.values())
    name, address = longest(1), longest(2)
    if name + address <= rest:
        shared = {1: name, 2: address}
    else:
        name_width = min(name, max(10, rest // 2))
        shared = {1: name_width, 2: max(10, rest - name_width)}
    widths = {**fixed, **shared}
    return [widths[i] for i in range(len(headers))]


def resolve(session: Session, text: str, words: Words, *,
            survey: str | None = None) -> Respondent:
    """The one respondent `text` names: an id, or a piece of a name or address that fits one
    person (in `survey`, if given). An exact address or name wins over partial matches.

    Exits 2 when nobody matches, and 1 after listing the matches (on stderr) when several do.
    """
    from storage.schema import Respondent

    needle = text.strip()
    if needle.isascii() and needle.isdigit():
        found_by_id = session.get(Respondent, int(needle))
        if found_by_id is None:
            _fail(words("find.no_id", needle))
        return found_by_id
    found = matching(session, needle)
    if survey is not None:
        invited = invitations(session, found)
        found = [r for r in found if any(i.survey_id == survey for i in invited[r.id])]
    if not found:
        if survey is not None:
            _fail(words("find.none_in_survey", needle, survey))
        _fail(words("find.none", needle))
    if len(found) == 1:
        return found[0]
    folded = needle.casefold()
    exact = [r for r in found if folded in (r.email.casefold(), r.name.casefold())]
    if len(exact) == 1:
        return exact[0]
    _ambiguous(session, needle, found, words)


def _ambiguous(session: Session, text: str, found: list[Respondent], words: Words) -> NoReturn:
    click.echo(f"svarbot: {words('find.ambiguous', text, len(found))}", err=True)
    print_matches(session, found, text, words, err=True)
    sys.exit(1)


@click.command("find")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@lang_option
@config_option
def find_command(text: str, as_json: bool, lang: str, config_path: str | None) -> None:
    """List the respondents with TEXT in their name or address (or with id TEXT).

    Each line has the respondent id (for `svarbot log --respondent`), the name, the address,
    the 2019 municipality, and per survey the invitation's status and id (for `svarbot plan
    SURVEY --respondent`). The same search as the dashboard's /find page. Exit status 1 when
    nobody matches.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from storage.db import session_factory
    from storage.history import Words

    words = Words(lang)
    if not text.strip():
        _fail(words("find.none", text))
    engine = open_configured(config_path)
    try:
        with session_factory(engine)() as session:
            found = matching(session, text)
            if not found:
                click.echo(words("find.none", text.strip()))
                sys.exit(1)
            if as_json:
                invited = invitations(session, found)
                for r in found:
                    click.echo(json.dumps({
                        "id": r.id, "name": r.name, "email": r.email,
                        "municipality_no": r.municipality_no,
                        "municipality_name": r.municipality_name,
                        "invitations": [{"id": i.id, "survey": i.survey_id,
                                         "status": str(i.status)} for i in invited[r.id]]},
                        ensure_ascii=False))
                return
            print_matches(session, found, text.strip(), words)
    except SQLAlchemyError as exc:
        _fail(words("log.database", str(getattr(exc, "orig", exc)).strip().splitlines()[0]))
    finally:
        engine.dispose()


COMMANDS: list[click.Command] = [find_command]
