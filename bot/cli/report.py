"""The `svarbot report` and `svarbot export answers` commands; registered by bot.cli.

Both read only the answer side of the database (`responses`, `answers`) and the survey's
questionnaire. `report` publishes counts and shares with small cells hidden (storage.aggregate);
`export answers` writes the analyst's raw file (storage.export). Errors are one line: exit 2 for
a configuration or database problem, 1 for a survey that is not in the database.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bot.cli.common import CONFIG_HELP
from bot.cli.common import fail as _fail

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import Connection

    from flows.model import Questionnaire
    from storage.aggregate import PublishedTable, Report

#: Strata side by side in one terminal table; more continue in the next table.
_MAX_STRATA_COLUMNS = 6


def _questionnaire(reference: str, survey_id: str) -> Questionnaire:
    """The survey's questionnaire: a file path, or the id of a shipped one (exit 2 if broken)."""
    from flows.loader import QuestionnaireError, load_reference

    try:
        return load_reference(reference)
    except QuestionnaireError as exc:
        _fail(f"survey {survey_id}: questionnaire {reference}: {exc.problems[0]}")


@contextmanager
def _answer_store(config_path: str | None, survey_id: str,
                  ) -> Iterator[tuple[Connection, Questionnaire, int]]:
    """The open database, the survey's questionnaire and k; every failure is one line."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from bot.cli.common import load_config
    from storage.db import StorageError
    from storage.migrate import open_database
    from storage.schema import Survey

    settings = load_config(config_path)
    url = settings.database.url
    try:
        engine = open_database(url)
    except StorageError as exc:
        _fail(str(exc))
    try:
        with engine.connect() as connection:
            found = connection.execute(
                select(Survey.questionnaire).where(Survey.id == survey_id)).scalar_one_or_none()
            if found is None:
                known = sorted(connection.execute(select(Survey.id)).scalars())
                _fail(f"no survey '{survey_id}' in the database "
                      f"(known: {', '.join(known) or 'none'})", status=1)
            yield connection, _questionnaire(found, survey_id), settings.privacy.min_cell
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        _fail(f"cannot read the database: {reason[0] if reason else type(exc).__name__}")
    finally:
        engine.dispose()


# --- report -----------------------------------------------------------------------------------


def _percent(share: float | None) -> str:
    return ":" if share is None else f"{share * 100:.0f} %"


def _count(n: int | None) -> str:
    return ":" if n is None else f"{n:,}".replace(",", "\u00a0")


def _cell(table: PublishedTable, category: int, column: int) -> str:
    count = table.counts[category][column]
    if count is None:
        return ":"
    if table.spec.kind == "text":
        return _count(count)
    return f"{_count(count)}\n[dim]{_percent(table.share(category, column))}[/dim]"


def _title(table: PublishedTable) -> str:
    spec = table.spec
    title = f"{spec.number}. {spec.item.text.nb}"
    return f"{title}\n    {spec.row_label}" if spec.row_label else title


def _chunks(report: Report) -> list[list[int]]:
    """Column indices per terminal table: at most a few strata side by side, total last."""
    strata = list(range(len(report.columns) - 1))
    total = len(report.columns) - 1
    if not strata:
        return [[total]]
    parts = [strata[n:n + _MAX_STRATA_COLUMNS]
             for n in range(0, len(strata), _MAX_STRATA_COLUMNS)]
    parts[-1].append(total)
    return parts


def _rich_tables(report: Report, table: PublishedTable) -> list[Table]:
    """One question as terminal tables: categories down, strata across (split when many)."""
    from rich.table import Table

    out = []
    for n, columns in enumerate(_chunks(report)):
        title = _title(table) + (" (forts.)" if n else "")
        rich_table = Table(title=title, title_justify="left", show_lines=True)
        rich_table.add_column("Svar", min_width=20, ratio=1)
        for j in columns:
            column = report.columns[j]
            header = column.label.replace(" / ", "\n")
            rich_table.add_column(header, justify="right", no_wrap=True,
                                  style="bold" if column.key is None else None)
        for i, category in enumerate(table.spec.categories):
            rich_table.add_row(category.label, *(_cell(table, i, j) for j in columns))
        if table.spec.kind != "text":
            rich_table.add_row("Antall svar", *(_count(table.respondents[j]) for j in columns))
        out.append(rich_table)
    return out


def _footnote(report: Report) -> str:
    return (f":  Tallet vises ikke: færre enn {report.k} svar i cellen eller gruppen, eller "
            f"skjult i tillegg slik at skjulte tall ikke kan regnes ut fra summene.\n"
            "   Prosent er andel av dem i gruppen som svarte på spørsmålet. Svar i fritekst "
            "publiseres aldri; bare antallet som skrev noe vises.")


def print_report(report: Report, console: Console) -> None:
    """The report as readable terminal tables, one per question, with the footnote."""
    by = f", fordelt på {', '.join(report.by)}" if report.by else ""
    console.print(f"[bold]Undersøkelse {report.survey_id}[/bold] "
                  f"(spørreskjema {report.questionnaire_id}){by}")
    for table in report.tables:
        for rich_table in _rich_tables(report, table):
            console.print()
            console.print(rich_table)
    console.print()
    console.print(_footnote(report))


def _parse_by(by: str) -> tuple[str, ...]:
    from storage.aggregate import check_by

    try:
        return check_by([part.strip() for part in by.split(",") if part.strip()])
    except ValueError as exc:
        _fail(str(exc))


@click.command("report")
@click.option("--survey", "survey_id", required=True, help="The survey to report on.")
@click.option("--by", default="", metavar="STRATA",
              help="One or two of respondent_type, sector, landsdel, size_class, "
                   "comma-separated (e.g. sector,landsdel).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Terminal tables, or CSV / JSON for scripts.")
@click.option("--config", "config_path", envvar="SVARBOT_CONFIG", help=CONFIG_HELP)
def report(survey_id: str, by: str, fmt: str, config_path: str | None) -> None:
    """Counts and shares per question and option, with cells of fewer than k respondents
    hidden (':'), and other cells hidden so the hidden ones cannot be worked out."""
    from storage.aggregate import build_report, report_json, report_rows

    dims = _parse_by(by)
    with _answer_store(config_path, survey_id) as (connection, questionnaire, k):
        result = build_report(connection, survey_id, questionnaire, dims, k)
    if fmt == "json":
        click.echo(json.dumps(report_json(result), ensure_ascii=False, indent=1))
    elif fmt == "csv":
        header, rows = report_rows(result)
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    else:
        from rich.console import Console

        print_report(result, Console())


# --- export -------------------------------------------------------------------------------------


@click.group("export")
def export() -> None:
    """Export data for analysts."""


@export.command("answers")
@click.option("--survey", "survey_id", required=True, help="The survey to export.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "json"]), default="csv",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (mode 0600); default: standard output (csv, json).")
@click.option("--config", "config_path", envvar="SVARBOT_CONFIG", help=CONFIG_HELP)
def export_answers_command(survey_id: str, fmt: str, out: Path | None,
                           config_path: str | None) -> None:
    """The anonymised answers, one row per response in random order: strata columns and one
    column per answer id, no response ids, no dates. Free text is included: this is raw
    material for analysis, not for publication."""
    from storage.export import export_answers, write_export

    if fmt == "xlsx" and out is None:
        _fail("xlsx is a binary format: give --out FILE.xlsx")
    with _answer_store(config_path, survey_id) as (connection, questionnaire, _k):
        data = export_answers(connection, survey_id, questionnaire)
    try:
        write_export(data, "xlsx" if fmt == "xlsx" else "json" if fmt == "json" else "csv",
                     out, sys.stdout)
    except OSError as exc:
        _fail(f"{out}: cannot write: {exc.strerror or exc}")
    if out is not None:
        click.echo(f"{out}: {len(data.rows)} responses", err=True)


COMMANDS: list[click.Command] = [report, export]
