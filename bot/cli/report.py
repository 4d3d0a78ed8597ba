"""The `svarbot report` and `svarbot export answers` commands; registered by bot.cli.

Both read only the answer side of the database (`responses`, `answers`) and the survey's
questionnaire. `report` publishes counts and shares with small cells hidden (storage.aggregate);
`export answers` writes the analyst's raw file (storage.export). Errors are one line: exit 2 for
a configuration or database problem, 1 for a survey that is not in the database.
"""

from __future__ import annotations

import csv
import io
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
    from sqlalchemy import Connection

    from bot.config import SurveySettings
    from bot.results.fieldwork import Fieldwork
    from bot.results.published import Results
    from flows.model import Questionnaire
    from storage.export import Format


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

#: What `--format` offers ("table" is the former name of "terminal").
FORMATS = ("terminal", "html", "pdf", "xlsx", "csv", "json")
_BINARY = ("pdf", "xlsx")


def _parse_by(by: str, option: str = "--by") -> tuple[str, ...]:
    from storage.aggregate import STRATA, check_by

    parts = tuple(part.strip() for part in by.split(",") if part.strip())
    if option != "--by":
        unknown = [p for p in parts if p not in STRATA]
        if unknown:
            _fail(f"{option}: unknown stratum '{unknown[0]}' (known: {', '.join(STRATA)})")
        return parts
    try:
        return check_by(list(parts))
    except ValueError as exc:
        _fail(str(exc))


def _survey_settings(config_path: str | None, survey_id: str) -> SurveySettings | None:
    from bot.cli.common import load_config

    return next((s for s in load_config(config_path).surveys if s.id == survey_id), None)


def _sample_note(frame: str | None) -> str | None:
    if frame is None:
        return None
    return (f"Utvalget er trukket fra rammen {Path(frame).name}, stratifisert (se "
            "`svarbot sample`); vektene regnes mot den samme rammen.")


@click.command("report")
@click.option("--survey", "survey_id", required=True, help="The survey to report on.")
@click.option("--by", default="", metavar="STRATA",
              help="One or two of respondent_type, sector, landsdel, size_class, "
                   "comma-separated (e.g. sector,landsdel).")
@click.option("--format", "fmt", type=click.Choice([*FORMATS, "table"]), default="terminal",
              show_default=True,
              help="terminal tables; html (one self-contained file) or pdf to read and print; "
                   "xlsx for Excel; csv or json: one row per published cell, for scripts.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (needed for pdf and xlsx); default: standard output.")
@click.option("--weighted/--unweighted", default=True, show_default=True,
              help="Weight the shares to the frame by the survey's weight_by strata.")
@click.option("--weight-by", default=None, metavar="STRATA",
              help="Strata to weight by (default: surveys[].weight_by in the configuration).")
@click.option("--frame", type=click.Path(dir_okay=False), default=None,
              help="The contacts file the sample was drawn from (default: surveys[].frame).")
@click.option("--compare", "previous", type=click.Path(dir_okay=False), default=None,
              metavar="PREVIOUS.csv",
              help="The previous wave's published figures (PREVIOUS.yaml beside it maps the "
                   "questions; default: surveys[].previous).")
@click.option("--config", "config_path", envvar="SVARBOT_CONFIG", help=CONFIG_HELP)
def report(survey_id: str, by: str, fmt: str, out: Path | None, weighted: bool,
           weight_by: str | None, frame: str | None, previous: str | None,
           config_path: str | None) -> None:
    """Counts and shares per question and option, with cells of fewer than k respondents
    hidden (':'), and other cells hidden so the hidden ones cannot be worked out, here or
    from any coarser report of the same survey. Weighted to the frame, with 95 % margins of
    error, and the change since the previous wave when it is given."""
    from bot.results.compare import ComparisonError, compare, load_previous
    from bot.results.estimates import Frame, WeightingError, estimate
    from bot.results.fieldwork import fieldwork
    from bot.results.published import Changes, Estimates, publish_results
    from storage.aggregate import build_report
    from storage.contacts import ContactsError

    fmt = "terminal" if fmt == "table" else fmt
    if fmt in _BINARY and out is None:
        _fail(f"{fmt} is a binary format: give --out FILE.{fmt}")
    dims = _parse_by(by)
    survey = _survey_settings(config_path, survey_id)
    frame = frame or (survey.frame if survey else None)
    weights = (_parse_by(weight_by, "--weight-by") if weight_by is not None
               else tuple(survey.weight_by) if survey else ())
    if not weighted or frame is None:
        weights = () if weight_by is None else weights
    previous = previous or (survey.previous if survey else None)
    with _answer_store(config_path, survey_id) as (connection, questionnaire, k):
        result = build_report(connection, survey_id, questionnaire, dims, k)
        try:
            population = Frame.load(frame) if frame is not None else None
            estimates = (estimate(connection, result, questionnaire,
                                  weight_by=weights if weighted else (), frame=population)
                         if population is not None or weights else Estimates())
            changes = (compare(result, estimates, load_previous(previous))
                       if previous else Changes())
        except (WeightingError, ComparisonError) as exc:
            _fail(str(exc))
        except ContactsError as exc:
            _fail(f"--frame {frame}: {exc.problems[0]}")
        results = publish_results(result, estimates, changes)
        work = fieldwork(connection, result, questionnaire.title.nb, survey)
    _write_report(results, work, fmt, out, _sample_note(frame))


def _write_report(results: Results, work: Fieldwork, fmt: str, out: Path | None,
                  sample_note: str | None) -> None:
    """Render `results` as `fmt` to `out` (or standard output)."""
    from bot.results.published import CELL_HEADER, cell_rows, results_json

    if fmt == "terminal":
        from rich.console import Console

        from bot.results.terminal import print_results

        print_results(results, Console(file=out.open("w", encoding="utf-8")) if out
                      else Console())
        return
    text: str | None = None
    if fmt == "json":
        text = json.dumps(results_json(results), ensure_ascii=False, indent=1) + "\n"
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CELL_HEADER)
        writer.writerows(cell_rows(results))
        text = buffer.getvalue()
    elif fmt in ("html", "pdf"):
        from bot.results.html import render_html

        text = render_html(results, work, sample_note=sample_note)
        if fmt == "pdf":
            from bot.results.pdf import render_pdf

            assert out is not None  # noqa: S101 - checked before the database was opened
            _write(out, render_pdf(text))
            return
    else:
        from bot.results.xlsx import write_xlsx

        assert out is not None  # noqa: S101 - checked before the database was opened
        try:
            write_xlsx(results, work, out, sample_note=sample_note)
        except OSError as exc:
            _fail(f"{out}: cannot write: {exc.strerror or exc}")
        click.echo(f"{out}: {len(results.questions)} questions", err=True)
        return
    if out is None:
        click.echo(text, nl=False)
    else:
        _write(out, text.encode("utf-8"))


def _write(out: Path, data: bytes) -> None:
    try:
        out.write_bytes(data)
    except OSError as exc:
        _fail(f"{out}: cannot write: {exc.strerror or exc}")
    click.echo(f"{out}: {len(data):,} bytes".replace(",", "\u00a0"), err=True)


# --- export -------------------------------------------------------------------------------------


@click.group("export")
def export() -> None:
    """Export data for analysts."""


@export.command("answers")
@click.option("--survey", "survey_id", required=True, help="The survey to export.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "json", "sav"]),
              default="csv", show_default=True,
              help="csv; xlsx (with a Kodebok sheet); json (multiple choice as lists, the "
                   "codebook in FILE.codebook.json beside it); sav for SPSS and R (variable "
                   "and value labels).")
@click.option("--labels", is_flag=True,
              help="Write the options' labels (bokmål) instead of their codes (csv, xlsx, "
                   "json; sav always has codes with value labels).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (mode 0600); default: standard output (csv, json).")
@click.option("--config", "config_path", envvar="SVARBOT_CONFIG", help=CONFIG_HELP)
def export_answers_command(survey_id: str, fmt: Format, labels: bool, out: Path | None,
                           config_path: str | None) -> None:
    """The anonymised answers, one row per response in random order: strata columns and one
    column per answer id, no response ids, no dates. Free text is included: this is raw
    material for analysis, not for publication."""
    from storage.export import codebook_path, export_answers, write_export

    if fmt in ("xlsx", "sav") and out is None:
        _fail(f"{fmt} is a binary format: give --out FILE.{fmt}")
    with _answer_store(config_path, survey_id) as (connection, questionnaire, _k):
        data = export_answers(connection, survey_id, questionnaire)
    try:
        write_export(data, fmt, out, sys.stdout, labels=labels)
    except OSError as exc:
        _fail(f"{out}: cannot write: {exc.strerror or exc}")
    except ValueError as exc:
        _fail(str(exc))
    if out is not None:
        extra = f"; codebook {codebook_path(out)}" if fmt == "json" else ""
        click.echo(f"{out}: {len(data.rows)} responses{extra}", err=True)


COMMANDS: list[click.Command] = [report, export]
