"""Time the html and xlsx reports of both shipped surveys on 1,000,000 answers against DuckDB's
GROUP BY of the same rows (goal: ≤ 3x).

Setup (timed and printed, in no figure): an SQLite answer store holding the two shipped
questionnaires (`flows.loader.load_shipped`): "virksomhetsleder-2020" (41 answer ids) with
`--leaders` responses and "ordforer-2020" (18 answer ids) with `--mayors` responses, every
answer id answered in every response (show_if is not applied), 1,000,200 answers with the
defaults. The values are ones each item accepts (`storage.aggregate.key_specs` and the items:
option ids with skewed weights so that some cells are small, at most `max_choices` and
exclusive options alone in a multiple choice, yes/no/dont_know, scale points with their special
answers, numbers within the bounds, about a third of the free texts written); the first
responses are checked with `storage.aggregate.classify`. The strata are realistic: unit
leaders come from the synthetic frame (`storage.frame.unit_leader_rows`: kommuner by
population, sectors and unit types by their weights), mayors from the mayors' frame
(`storage.frame.mayor_rows`, repeated to reach `--mayors`); landsdel and size class are the
reference list's. Every respondent is invited (respondents and invitations, so that
`fieldwork` has invited counts) and about 45 % (unit leaders, varying by sector) or 70 %
(mayors) answer. The store is built the fast way bench/report_duckdb.py does: a schema at
revision 0001, rows written in bulk, then `storage.migrate.upgrade` (0002 back-fills
`answer_counts`). The same answers, one row per answer (answer_id, sector, value as stored),
are loaded into one DuckDB table per survey through a CSV file beforehand. The files are
built in a temporary folder, removed at the end unless `--keep` names one.

Then `--pairs` pairs, interleaved, the order swapped every pair (drift on a shared machine hits
both alike), after one untimed warm-up of each:

* A, the baseline: DuckDB's `SELECT answer_id, sector, value, count(*) … GROUP BY answer_id,
  sector, value` over each survey's table, rows fetched; only the queries are timed.
* B, svarbot: for each survey what `svarbot report --by sector --format html` and
  `--format xlsx` do on the shipped configuration (unweighted: no frame; k = 5), minus process
  start: `open_database`, `build_report(..., by=("sector",))`, `publish_results`, `fieldwork`
  (with the survey's plan from config.yaml), `render_html` written to a file (the template
  environment is cleared first, since every command compiles it anew) and `write_xlsx` to a
  file. The report is built once and rendered in both formats; each part is timed on its own.

Printed: each pair's A, B and B/A (and B's parts), then per figure (both formats; the html and
the xlsx command paths, i.e. counts + publish + that format; counts + suppression alone;
publish + fieldwork alone; html alone; xlsx alone) the median B, the median of the per-pair
ratios to A and their spread (min–max), and PASS or MISS against ≤ 3x.

    .venv/bin/python bench/report_formats.py [--leaders 21300] [--mayors 7050] [--pairs 5]
                                             [--keep DIR [--reuse]]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import random
import secrets
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from bot.config import SurveySettings
from bot.results import html as html_module
from bot.results.fieldwork import fieldwork
from bot.results.html import render_html
from bot.results.published import publish_results
from bot.results.xlsx import write_xlsx
from flows.loader import load_shipped
from flows.model import DONT_KNOW, NO, NOT_RELEVANT, YES, Item, ItemType, Questionnaire, Scale
from storage import reference
from storage.aggregate import DEFAULT_MIN_CELL, build_report, classify, key_specs
from storage.frame import mayor_rows, unit_leader_rows
from storage.migrate import init_database, open_database, upgrade

GOAL = 3.0
BY = ("sector",)
K = DEFAULT_MIN_CELL
#: Relative response propensity of unit leaders by sector (about 45 % overall).
SECTOR_PROPENSITY = {"helse": 1.05, "oppvekst": 1.1, "sosial": 0.9, "kultur": 0.85,
                     "teknisk": 0.75}
#: Non-responders' invitation statuses and their weights.
NOT_ANSWERED = (("delivered", 70), ("invited", 12), ("bounced", 10), ("opted_out", 8))
FREE_TEXTS = (
    "Vi har innført digitalt tilsyn om natten, og brukerne sover bedre.",
    "Samarbeid med nabokommunen om felles innkjøp av velferdsteknologi.",
    "For lite tid og midler til å prøve ut nye ting i en travel hverdag.",
    "Ny organisering av vaktplanen etter innspill fra de ansatte.",
    "Innbyggerdialog på nett før vedtak om ny skolestruktur.",
)


@dataclass(frozen=True, slots=True)
class Spec:
    """One shipped survey of the benchmark, as config.yaml sets it up."""

    survey_id: str
    role: str
    invite: str
    close: str
    #: Share of the invited who answer.
    rate: float


SPECS = (Spec("virksomhetsleder-2020", "unit_leader", "2019-W42-2 09:00", "2019-12-06 16:00",
              0.45),
         Spec("ordforer-2020", "mayor", "2019-W40-2 09:00", "2019-11-01 16:00", 0.70))


@dataclass(frozen=True, slots=True)
class Survey:
    """A survey as the benchmark times it."""

    spec: Spec
    questionnaire: Questionnaire
    settings: SurveySettings


@dataclass(frozen=True, slots=True)
class Contact:
    """One invited respondent: what the identity side stores, and the strata."""

    name: str
    email: str
    number: str
    place_name: str
    county: str
    sector: str | None
    unit_type: str | None
    landsdel: str
    size_class: str
    lang: str


# --- answers ------------------------------------------------------------------------------------


def _skewed(n: int) -> list[float]:
    """Weights for n alternatives, falling off so that the last ones are rare."""
    return [1 / (i + 1) ** 1.3 for i in range(n)]


def _scale_value(scale: Scale, rng: random.Random) -> object:
    special = rng.random()
    if scale.dont_know and special < 0.06:
        return DONT_KNOW
    if scale.not_relevant and special > 0.96:
        return NOT_RELEVANT
    points = list(range(scale.min, scale.max + 1))
    middle = (scale.min + scale.max) / 2 + 0.5
    return rng.choices(points, weights=[1 / (1 + abs(p - middle)) for p in points])[0]


def _yesno(dont_know: bool, rng: random.Random) -> str:
    if dont_know:
        return rng.choices((YES, NO, DONT_KNOW), weights=(55, 38, 7))[0]
    return rng.choices((YES, NO), weights=(58, 42))[0]


def _multi(item: Item, rng: random.Random) -> list[str]:
    exclusive = [o.id for o in item.options if o.exclusive]
    if exclusive and rng.random() < 0.05:
        return [rng.choice(exclusive)]
    others = [o.id for o in item.options if not o.exclusive]
    chosen = [o for n, o in enumerate(others) if rng.random() < 0.55 / (1 + 0.4 * n)]
    if not chosen:
        chosen = [others[0]]
    if item.max_choices is not None and len(chosen) > item.max_choices:
        chosen = sorted(rng.sample(chosen, item.max_choices), key=others.index)
    return chosen


def _number(item: Item, rng: random.Random) -> int:
    low = item.min if item.min is not None else 0
    high = item.max if item.max is not None else 10**6
    return max(low, min(high, int(rng.lognormvariate(3.2, 1.1))))


def item_answers(item: Item, rng: random.Random, contact: Contact) -> Iterator[
        tuple[str, object]]:
    """(answer id, value) for every answer id of `item`: values the item accepts."""
    ids = [o.id for o in item.options]
    if item.type is ItemType.GRID:
        for key in item.keys:
            if item.row_type == "scale" and item.scale is not None:
                yield key, _scale_value(item.scale, rng)
            else:
                yield key, _yesno(item.dont_know, rng)
    elif item.type is ItemType.SINGLE:
        known = {"sektor": contact.sector, "enhetstype": contact.unit_type,
                 "forvaltningsniva": "fylkeskommune" if len(contact.number) == 2 else "kommune"}
        given = known.get(item.id)
        if given in ids and rng.random() < 0.97:
            yield item.id, given
        else:
            yield item.id, rng.choices(ids, weights=_skewed(len(ids)))[0]
    elif item.type is ItemType.MULTI:
        yield item.id, _multi(item, rng)
    elif item.type is ItemType.SCALE and item.scale is not None:
        yield item.id, _scale_value(item.scale, rng)
    elif item.type is ItemType.YESNO:
        yield item.id, _yesno(item.dont_know, rng)
    elif item.type is ItemType.NUMBER:
        yield item.id, _number(item, rng)
    else:
        yield item.id, rng.choice(FREE_TEXTS) if rng.random() < 0.33 else ""


# --- the frame ----------------------------------------------------------------------------------


def _contact(row: tuple[str, ...], email: str) -> Contact:
    name, _email, _role, number, place_name, sector, unit_type, _phone, _telegram, lang = row
    place = reference.place(number)
    assert place is not None, number
    return Contact(name, email, number, place_name, place.county, sector or None,
                   unit_type or None, place.landsdel, place.size_class, lang)


def contacts(spec: Spec, invited: int, seed: int) -> list[Contact]:
    """`invited` respondents of the survey's kind, from the synthetic frames."""
    if spec.role == "unit_leader":
        return [_contact(row, row[1]) for row in unit_leader_rows(invited, seed)]
    frame = list(mayor_rows(seed))
    return [_contact(frame[n % len(frame)], f"{n // len(frame)}.{frame[n % len(frame)][1]}")
            for n in range(invited)]


def responders(people: Sequence[Contact], count: int, rng: random.Random) -> set[int]:
    """`count` of `people` drawn by their propensity to answer (weighted, no replacement)."""
    keys = [rng.random() ** (1 / SECTOR_PROPENSITY.get(p.sector or "", 1.0)) for p in people]
    return set(sorted(range(len(people)), key=keys.__getitem__, reverse=True)[:count])


# --- building the stores -----------------------------------------------------------------------


def settings(spec: Spec) -> SurveySettings:
    """The survey's settings as config.yaml has them: its plan, no frame (unweighted)."""
    return SurveySettings.model_validate(
        {"id": spec.survey_id, "questionnaire": spec.survey_id,
         "plan": {"invite": spec.invite, "close": spec.close}})


def _field_days(survey: Survey) -> tuple[dt.date, int]:
    plan = survey.settings.plan
    assert plan is not None
    return plan.invite.date(), (plan.close.date() - plan.invite.date()).days


def build(db: Path, surveys: Sequence[Survey], counts: dict[str, int], seed: int,
          long_csv: Path) -> dict[str, int]:
    """Create the store at revision 0001 and the CSV for DuckDB; answers per survey."""
    init_database(f"sqlite:///{db}", revision="0001")
    rng = random.Random(seed)
    respondents: list[tuple[object, ...]] = []
    invitations: list[tuple[object, ...]] = []
    responses: list[tuple[object, ...]] = []
    answers: list[tuple[str, str, str]] = []
    answered: dict[str, int] = {}
    now = "2019-12-10 12:00:00"
    with long_csv.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(("survey_id", "answer_id", "sector", "value"))
        for survey in surveys:
            spec, q = survey.spec, survey.questionnaire
            specs = {s.answer_id: s for s in key_specs(q)}
            wanted = counts[spec.survey_id]
            people = contacts(spec, round(wanted / spec.rate), seed)
            chosen = responders(people, wanted, rng)
            before = len(answers)
            checked = 0
            first_day, days = _field_days(survey)
            for n, person in enumerate(people):
                respondent_id = len(respondents) + 1
                respondents.append((respondent_id, person.name, person.email, None, None,
                                    spec.role, person.number, person.place_name, person.county,
                                    person.sector, person.unit_type, person.size_class,
                                    person.landsdel, person.lang, now))
                status = ("finished" if n in chosen else
                          rng.choices([s for s, _ in NOT_ANSWERED],
                                      weights=[w for _, w in NOT_ANSWERED])[0])
                invitations.append((len(invitations) + 1, respondent_id, spec.survey_id,
                                    secrets.token_urlsafe(24), status, 0, now, None,
                                    person.email, None, 0, None, now, now))
                if n not in chosen:
                    continue
                response_id = secrets.token_hex(16)
                responses.append((response_id, spec.survey_id, spec.role, person.sector,
                                  person.landsdel, person.size_class, 1,
                                  (first_day + dt.timedelta(
                                      days=int(rng.triangular(0, days, 0)))).isoformat()))
                for item in q.items:
                    for key, value in item_answers(item, rng, person):
                        if checked < 1000 and specs[key].kind != "text" and not classify(
                                specs[key], value):
                            raise SystemExit(f"{key}: {value!r} is not an accepted answer")
                        stored = json.dumps(value)
                        answers.append((response_id, key, stored))
                        writer.writerow((spec.survey_id, key, person.sector or "", stored))
                checked += 1
            answered[spec.survey_id] = len(answers) - before
    with sqlite3.connect(db) as connection:
        connection.executemany(
            "INSERT INTO surveys (id, questionnaire, status, created_at) "
            "VALUES (?, ?, 'open', '2019-10-01 00:00:00')",
            [(s.spec.survey_id, s.spec.survey_id) for s in surveys])
        connection.executemany(
            "INSERT INTO respondents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            respondents)
        connection.executemany(
            "INSERT INTO invitations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            invitations)
        connection.executemany("INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               responses)
        connection.executemany("INSERT INTO answers VALUES (?, ?, ?)", answers)
    return answered


def load_duckdb(long_csv: Path, surveys: Sequence[Survey]) -> duckdb.DuckDBPyConnection:
    """One table per survey (answer_id, sector, value), read from the CSV beforehand."""
    duck = duckdb.connect()
    duck.execute("CREATE TABLE answers_all AS SELECT * FROM read_csv(?, header=true, columns="
                 "{'survey_id': 'VARCHAR', 'answer_id': 'VARCHAR', 'sector': 'VARCHAR', "
                 "'value': 'VARCHAR'})", [str(long_csv)])
    for n, survey in enumerate(surveys):
        duck.execute(f"CREATE TABLE long_{n} AS SELECT answer_id, sector, value "  # noqa: S608 - our own table names
                     "FROM answers_all WHERE survey_id = ?", [survey.spec.survey_id])
    duck.execute("DROP TABLE answers_all")
    return duck


# --- the two sides ------------------------------------------------------------------------------


def time_duckdb(duck: duckdb.DuckDBPyConnection, surveys: Sequence[Survey]) -> float:
    """A: the GROUP BY of every survey's answers, rows fetched; seconds."""
    started = time.perf_counter()
    for n in range(len(surveys)):
        duck.execute(f"SELECT answer_id, sector, value, count(*) FROM long_{n} "  # noqa: S608 - our own table names
                     "GROUP BY answer_id, sector, value").fetchall()
    return time.perf_counter() - started


PARTS = ("counts", "publish", "html", "xlsx")


def time_svarbot(url: str, surveys: Sequence[Survey], out: Path) -> dict[str, float]:
    """B: report, publish, fieldwork, html and xlsx for every survey; seconds per part."""
    spent = dict.fromkeys(PARTS, 0.0)
    for survey in surveys:
        sid, q = survey.spec.survey_id, survey.questionnaire
        t0 = time.perf_counter()
        engine = open_database(url)
        with engine.connect() as connection:
            report = build_report(connection, sid, q, BY, K)
            t1 = time.perf_counter()
            results = publish_results(report)
            work = fieldwork(connection, report, q.title.nb, survey.settings)
        engine.dispose()
        t2 = time.perf_counter()
        html_module.environment.cache_clear()
        (out / f"{sid}.html").write_bytes(render_html(results, work).encode("utf-8"))
        t3 = time.perf_counter()
        write_xlsx(results, work, out / f"{sid}.xlsx")
        t4 = time.perf_counter()
        for part, seconds in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[part] += seconds
    return spent


# --- output -------------------------------------------------------------------------------------


FIGURES: tuple[tuple[str, Callable[[dict[str, float]], float]], ...] = (
    ("html + xlsx, both surveys (B)", lambda p: sum(p.values())),
    ("`report --format html` path", lambda p: p["counts"] + p["publish"] + p["html"]),
    ("`report --format xlsx` path", lambda p: p["counts"] + p["publish"] + p["xlsx"]),
    ("counts + suppression alone", lambda p: p["counts"]),
    ("publish + fieldwork alone", lambda p: p["publish"]),
    ("html alone (render + write)", lambda p: p["html"]),
    ("xlsx alone (write_xlsx)", lambda p: p["xlsx"]),
)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def summary(a_times: Sequence[float], b_parts: Sequence[dict[str, float]]) -> None:
    print()
    print(f"{'median over the pairs':31}{'B ms':>9}{'B/A':>8}{'spread B/A':>16}{'≤3x':>6}")
    for label, pick in FIGURES:
        values = [pick(p) for p in b_parts]
        ratios = [v / a for v, a in zip(values, a_times, strict=True)]
        ratio = statistics.median(ratios)
        spread = f"{min(ratios):.1f}–{max(ratios):.1f}x"
        verdict = "PASS" if ratio <= GOAL else "MISS"
        print(f"{label:31}{ms(statistics.median(values)):>9}{ratio:>7.1f}x{spread:>16}"
              f"{verdict:>6}")
    print(f"{'DuckDB GROUP BY (A)':31}{ms(statistics.median(a_times)):>9}"
          f"{'':>8}{ms(min(a_times)) + '–' + ms(max(a_times)) + ' ms':>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaders", type=int, default=21_300,
                        help="Responses to virksomhetsleder-2020 (41 answers each).")
    parser.add_argument("--mayors", type=int, default=7_050,
                        help="Responses to ordforer-2020 (18 answers each).")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--keep", type=Path, help="Build in this folder and keep the files.")
    parser.add_argument("--reuse", action="store_true",
                        help="With --keep: time the store already built there.")
    args = parser.parse_args()

    surveys = [Survey(spec, load_shipped(spec.survey_id), settings(spec)) for spec in SPECS]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="svarbot-bench-formats-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        run(args, surveys, folder)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, surveys: Sequence[Survey], folder: Path) -> None:
    """Set up in `folder`, then time the pairs and print the results."""
    db, long_csv = folder / "answers.db", folder / "answers.csv"
    url = f"sqlite:///{db}"
    if not (args.reuse and db.exists() and long_csv.exists()):
        db.unlink(missing_ok=True)
        started = time.perf_counter()
        answered = build(db, surveys, {SPECS[0].survey_id: args.leaders,
                                       SPECS[1].survey_id: args.mayors}, args.seed, long_csv)
        print(f"setup: {sum(answered.values()):,} answers "
              f"({', '.join(f'{s}: {n:,}' for s, n in answered.items())})")
        print(f"  built in {time.perf_counter() - started:.1f} s: {db}")
        started = time.perf_counter()
        before, after = upgrade(url)
        print(f"  `db upgrade` {before} -> {after} (answer_counts back-filled) in "
              f"{time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    duck = load_duckdb(long_csv, surveys)
    rows = 0
    for n in range(len(surveys)):
        found = duck.execute(f"SELECT count(*) FROM long_{n}").fetchone()  # noqa: S608 - our own table names
        rows += int(found[0]) if found else 0
    print(f"  DuckDB: {rows:,} rows loaded in {time.perf_counter() - started:.1f} s")

    out = folder / "out"
    out.mkdir(exist_ok=True)
    time_duckdb(duck, surveys)  # warm-up, untimed
    time_svarbot(url, surveys, out)
    for survey in surveys:
        sid = survey.spec.survey_id
        print(f"  {sid}: " + ", ".join(
            f"{fmt} {(out / f'{sid}.{fmt}').stat().st_size / 1e6:.2f} MB"
            for fmt in ("html", "xlsx")))

    a_times: list[float] = []
    b_parts: list[dict[str, float]] = []
    print()
    print(f"{'pair':>4} {'order':5}{'A ms':>8}{'B ms':>9}{'B/A':>8}"
          f"{'counts':>9}{'publish':>9}{'html':>9}{'xlsx':>9}")
    for pair in range(args.pairs):
        a_first = pair % 2 == 0
        if a_first:
            a = time_duckdb(duck, surveys)
            b = time_svarbot(url, surveys, out)
        else:
            b = time_svarbot(url, surveys, out)
            a = time_duckdb(duck, surveys)
        a_times.append(a)
        b_parts.append(b)
        total = sum(b.values())
        print(f"{pair + 1:>4} {'A,B' if a_first else 'B,A':5}{ms(a):>8}{ms(total):>9}"
              f"{total / a:>7.1f}x" + "".join(f"{ms(b[p]):>9}" for p in PARTS))
    duck.close()
    summary(a_times, b_parts)


if __name__ == "__main__":
    main()
