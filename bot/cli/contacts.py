"""The `svarbot` commands for contact lists and samples: `import`, `sample`, `demo-frame`.

They are thin: reading, checking, sampling and writing live in `storage.contacts`,
`storage.sampling` and `storage.frame`; this module turns their results and errors into what an
operator reads. Exit statuses as everywhere in svarbot: 1 when an input file has problems (each
printed as `FILE:LINE: message`, and nothing is written), 2 for how svarbot was called (a
missing file, a bad option, the configuration, a database that does not exist yet). No
traceback reaches the user, and nothing printed to a log names a person or an address.

Heavy modules (SQLAlchemy, rich, the storage code) are imported inside the commands, so that
`svarbot --help` and the other commands do not pay for them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from bot.cli.common import CONFIG_HELP
from bot.cli.common import fail as _fail

if TYPE_CHECKING:
    from rich.table import Table

    from storage.contacts import ContactsFile
    from storage.sampling import Replacement, Sample

SURVEY_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
#: Files with at least this many rows get a progress bar (on a terminal).
PROGRESS_FROM = 1000


def _problems(problems: list[str], label: str, what: str) -> NoReturn:
    for problem in problems:
        click.echo(problem, err=True)
    count = len(problems)
    click.echo(f"{label}: {count} problem{'s' if count != 1 else ''}; {what}", err=True)
    sys.exit(1)


def _existing_file(path: str) -> None:
    if not Path(path).is_file():
        _fail(f"{path}: no such file")


def _load(path: str, what: str) -> ContactsFile:
    """A checked contacts file, its warnings printed; exits 1 listing its problems."""
    from storage.contacts import ContactsError, load_contacts

    _existing_file(path)
    try:
        loaded = load_contacts(path)
    except ContactsError as exc:
        _problems(exc.problems, path, what)
    for warning in loaded.parsed.warnings:
        click.echo(warning, err=True)
    return loaded


# --- import ---------------------------------------------------------------------------------


def _sqlite_file_missing(url: str) -> str | None:
    """The path of an SQLite database file that does not exist yet, else None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if Path(database).exists() else database


@contextmanager
def _progress(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr for big files on a terminal; a no-op otherwise."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    if total < PROGRESS_FROM or not console.is_terminal:
        yield lambda _n: None
        return
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _one_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


@click.command("import")
@click.argument("file")
@click.option("--survey", "survey_id", required=True, metavar="ID",
              help="The survey to invite the contacts to (created if missing).")
@click.option("--dry-run", is_flag=True, help="Check the file and count what would change; "
                                              "write nothing.")
@click.option("--config", "config_path", envvar="SVARBOT_CONFIG", help=CONFIG_HELP)
def import_command(file: str, survey_id: str, dry_run: bool, config_path: str | None) -> None:
    """Import the contacts in FILE (CSV) and invite them to a survey.

    Every row is checked first; each problem is printed as FILE:LINE: message and nothing is
    imported (exit status 1). Re-importing a file changes nothing; an edited row updates the
    respondent and keeps the invitation. Columns: name, email, role, municipality_no, sector
    (for unit leaders), and optionally unit_type, phone, telegram, lang. UTF-8 or
    Windows-1252, `,` or `;` separated.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from bot.cli.common import load_config
    from storage.contacts import SurveyClosedError, database_ready, import_contacts
    from storage.db import StorageError, make_engine, session_factory

    if not SURVEY_ID.match(survey_id):
        _fail(f"--survey {survey_id!r}: use letters, digits, '-' and '_' (at most 64)")
    settings = load_config(config_path)
    configured = next((s for s in settings.surveys if s.id == survey_id), None)
    if configured is None:
        click.echo(f"svarbot: warning: survey {survey_id!r} is not in the configuration "
                   f"(if new, it gets questionnaire {survey_id!r})", err=True)
    contacts = _load(file, "nothing imported").contacts
    url = settings.database.url
    missing = _sqlite_file_missing(url)
    if missing is not None:
        if dry_run:
            click.echo(f"{file}: dry run: {len(contacts)} rows are valid; there is no "
                       f"database at {missing} yet, so all would be new")
            return
        _fail(f"no database at {missing}; create it with `svarbot init`")
    try:
        engine = make_engine(url)
        try:
            if not database_ready(engine):
                _fail("the database has no svarbot tables; create them with `svarbot init`")
            with _progress(len(contacts), "importing") as advance:
                result = import_contacts(
                    session_factory(engine), survey_id, contacts,
                    questionnaire=configured.questionnaire if configured else None,
                    default_lang=configured.default_lang if configured else "nb",
                    dry_run=dry_run, progress=advance)
        finally:
            engine.dispose()
    except SurveyClosedError as exc:
        _fail(str(exc))
    except (StorageError, SQLAlchemyError) as exc:
        _fail(f"database: {_one_line(exc)}")
    prefix = "dry run, nothing written: " if dry_run else ""
    click.echo(f"{file}: {prefix}{result.summary()}")


# --- sample ---------------------------------------------------------------------------------


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def _sample_table(result: Sample, n: int) -> Table:
    from rich.table import Table

    table = Table(title=f"Sample of {n} by {', '.join(result.strata)}")
    for name in result.strata:
        table.add_column(name)
    for column in ("frame", "sample", "% of stratum", "% of sample"):
        table.add_column(column, justify="right")
    for row in result.rows:
        table.add_row(*row.key, str(row.frame), str(row.sample), _percent(row.sample, row.frame),
                      _percent(row.sample, n))
    frame = sum(r.frame for r in result.rows)
    table.add_row(*(["total"] + [""] * (len(result.strata) - 1)), str(frame), str(n),
                  _percent(n, frame), _percent(n, n), style="bold")
    return table


def _replacement_table(result: Replacement) -> Table:
    from rich.table import Table

    table = Table(title=f"Substitutes by {', '.join(result.strata)}")
    for name in result.strata:
        table.add_column(name)
    for column in ("to replace", "substitutes", "left in frame"):
        table.add_column(column, justify="right")
    for row in result.rows:
        table.add_row(*row.key, str(row.replaced), str(row.substitutes), str(row.left))
    return table


@dataclass(frozen=True, slots=True)
class Seed:
    """The seed of a draw, and whether svarbot chose it (then the summary says how to draw
    the same again)."""

    value: int
    fresh: bool = False

    def summary(self, what: str) -> str:
        """`seed 7`, or for a fresh seed how to repeat the draw."""
        if not self.fresh:
            return f"seed {self.value}"
        return f"seed {self.value}: run again with --seed {self.value} to draw the same {what}"


def _draw(frame: str, out: str, *, n: int | None, strata: tuple[str, ...], seed: Seed,
          minimum: int, force: bool) -> None:
    from rich.console import Console

    from storage.sampling import write_sample

    if n is None:
        _fail("--n is required (or --replace to draw substitutes)")
    if Path(out).exists() and not force:
        _fail(f"{out} exists; a sample in use must not be overwritten (use --force to draw "
              f"anew, or --replace for substitutes)")
    loaded = _load(frame, "nothing written")
    result = write_sample(loaded, out, n=n, strata=strata, seed=seed.value, minimum=minimum)
    Console().print(_sample_table(result, n))
    if not result.minimum_met:
        click.echo(f"svarbot: warning: {len(result.rows)} strata cannot all get "
                   f"{minimum} units in a sample of {n}; allocated in proportion only", err=True)
    click.echo(f"{out}: {n} units from {sum(r.frame for r in result.rows)} "
               f"in {len(result.rows)} strata ({seed.summary('sample')})")


def _replace(frame: str, gone: str, previous: str, out: str, *, strata: tuple[str, ...],
             seed: Seed) -> None:
    from rich.console import Console

    from storage.contacts import ContactsError
    from storage.sampling import write_replacement

    _existing_file(gone)
    loaded_frame = _load(frame, "nothing written")
    loaded_sample = _load(previous, "nothing written")
    try:
        result = write_replacement(loaded_frame, loaded_sample, gone, out, strata=strata,
                                   seed=seed.value)
    except ContactsError as exc:
        _problems(exc.problems, gone, "nothing written")
    for warning in result.warnings:
        click.echo(warning, err=True)
    Console().print(_replacement_table(result))
    click.echo(f"{out}: {len(result.lines)} substitutes added "
               f"({seed.summary('substitutes')})")
    if result.shortfall:
        click.echo(f"svarbot: warning: {result.shortfall} units could not be replaced: "
                   f"their strata have no undrawn units left", err=True)


@click.command("sample")
@click.argument("frame")
@click.option("--n", "n", type=click.IntRange(min=1), help="Sample size.")
@click.option("--strata", default="sector,landsdel,size", show_default=True,
              help="Comma-separated stratum names, from: sector, landsdel, size, county, role, "
                   "unit_type, lang.")
@click.option("--seed", type=int,
              help="Random seed; the same frame, strata and seed give the same sample. "
                   "Default: a fresh one, printed with the result so the draw can be "
                   "repeated.")
@click.option("--min-per-stratum", "minimum", type=click.IntRange(min=0), default=2,
              show_default=True, help="Units every stratum gets at least (all, if smaller).")
@click.option("--out", required=True, help="The sample file to write (frame's columns).")
@click.option("--replace", "gone", metavar="BOUNCED.csv",
              help="Draw substitutes for the units in this file (matched by its email column).")
@click.option("--sample", "previous", metavar="PATH",
              help="With --replace: the sample the units were drawn in (default: --out).")
@click.option("--force", is_flag=True, help="Overwrite an existing --out with a new sample.")
def sample_command(frame: str, n: int | None, strata: str, seed: int | None, minimum: int,
                   out: str, gone: str | None, previous: str | None, force: bool) -> None:
    """Draw a stratified random sample from FRAME (a contacts CSV) into --out.

    \b
    Draw:     svarbot sample FRAME.csv --n 1200 --seed 2020 --out SAMPLE.csv
    Replace:  svarbot sample FRAME.csv --replace BOUNCED.csv --seed 2021 --out SAMPLE.csv

    Without --seed a fresh seed is drawn and printed with the result ("seed 48213: run again
    with --seed 48213 …"), so that the same draw can be made again.

    Each stratum gets --min-per-stratum units (or all it has), the rest is shared in
    proportion to stratum sizes and rounded so the total is exactly N. A table per stratum is
    printed. With --replace, each unit of BOUNCED.csv that is in the sample (read from
    --sample, or --out) gets a substitute from the same stratum that was never drawn; --out is
    rewritten as the previous sample (bounced units stay, so they are never drawn again)
    followed by the substitutes. Use the same --strata as for the draw. Re-import the sample
    with `svarbot import` to invite the substitutes.
    """
    from storage.sampling import SamplingError, new_seed, parse_strata

    chosen = Seed(seed) if seed is not None else Seed(new_seed(), fresh=True)
    try:
        names = parse_strata(strata)
        if gone is None:
            _draw(frame, out, n=n, strata=names, seed=chosen, minimum=minimum, force=force)
            return
        if n is not None:
            _fail("--n is not used with --replace (one substitute per unit replaced)")
        _replace(frame, gone, previous or out, out, strata=names, seed=chosen)
    except SamplingError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or out}: {exc.strerror or exc}")


# --- demo-frame -----------------------------------------------------------------------------


@click.command("demo-frame")
@click.option("--units", type=click.IntRange(1, 1_000_000), help="Unit leaders in the frame.")
@click.option("--mayors", is_flag=True,
              help="Write the mayors' frame instead: every 2019 kommune and fylkeskommune (439).")
@click.option("--seed", default=2019, show_default=True, help="Seed for the made-up people.")
@click.option("--out", required=True, help="The frame file to write (a contacts CSV).")
def demo_frame_command(units: int | None, mayors: bool, seed: int, out: str) -> None:
    """Write a synthetic but realistic frame on the real 2019 municipality list.

    Unit leaders are spread over the kommuner roughly by population and over the five sectors;
    names and addresses are made up. The file is valid input for `svarbot import` and
    `svarbot sample`.
    """
    from storage.frame import write_frame

    if mayors == (units is not None):
        _fail("give either --units N (unit leaders) or --mayors (the mayors' frame)")
    try:
        count = write_frame(out, units=units or 0, mayors=mayors, seed=seed)
    except OSError as exc:
        _fail(f"{out}: {exc.strerror or exc}")
    click.echo(f"{out}: {count} {'mayors' if mayors else 'unit leaders'} (seed {seed})")


COMMANDS: list[click.Command] = [import_command, sample_command, demo_frame_command]
