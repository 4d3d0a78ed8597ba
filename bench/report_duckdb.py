"""Time `svarbot report` on 1,000,000 answers against the same GROUP BY in DuckDB (goal: ≤ 3x).

Builds an SQLite answer store with 40,000 responses × 25 answers (a synthetic questionnaire with
every kind of item) the way an existing database gets its answer counts: a schema at revision
0001, the rows written straight into `responses` and `answers`, then `storage.migrate.upgrade`
(migration 0002 back-fills `answer_counts`; timed and shown, not part of the comparison). Then
it times:

* svarbot: `storage.aggregate.build_report(..., by=("sector",))`, the query layer (reading
  `answer_counts`) plus disclosure control, exactly as `svarbot report --by sector` runs it
  (rendering excluded), and the counts query alone;
* for comparison, the same report counted from the answers (`build_report_from_answers`, the
  GROUP BY over every answer that the counts replace), and checks that both reports are equal;
* DuckDB: the exported rows (`storage.export`, CSV) loaded into DuckDB and unpivoted to one row
  per answer beforehand; only `GROUP BY answer_id, sector, value` is timed.

DuckDB (A) and svarbot's report (B) run in `--pairs` pairs, interleaved, the order swapped
every pair (bench/interleave.py; machines here are shared and noisy); printed per pair: A, B
and its counts query, and B/A; then the median B/A, its spread (min–max) and PASS or MISS
against ≤ 3x. The report counted from the answers, for comparison only, is timed `--repeat`
times (best and median).

    .venv/bin/python bench/report_duckdb.py [--responses 40000] [--pairs 5] [--repeat 3]
                                            [--keep DIR --reuse]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleave import Spread, pairs, verdict

from flows.loader import parse
from flows.model import Item, ItemType, Questionnaire
from storage.aggregate import (
    build_report,
    build_report_from_answers,
    grouped_counts,
    grouped_values,
    key_specs,
)
from storage.db import make_engine
from storage.export import STRATA_COLUMNS, export_answers, write_csv
from storage.migrate import init_database, upgrade

SURVEY = "bench"
SECTORS = ("helse", "oppvekst", "sosial", "kultur", "teknisk")
LANDSDELER = ("Oslo", "Innlandet", "Vestlandet", "Trøndelag", "Nord-Norge", "Agder og Sør-Øst",
              "Akershus")
SIZES = ("small", "medium", "large")


def questionnaire_yaml() -> str:
    """25 items: 8 single, 4 multi, 6 scale, 5 yes/no, 1 number, 1 free text."""
    items = []
    options = "[" + ", ".join(f"{{id: o{n}, label: 'Valg {n}'}}" for n in range(1, 6)) + "]"
    many = "[" + ", ".join(f"{{id: m{n}, label: 'Tiltak {n}'}}" for n in range(1, 7)) + "]"
    for n in range(8):
        items.append(f"{{id: s{n}, type: single, text: 'Enkeltvalg {n}', options: {options}}}")
    for n in range(4):
        items.append(f"{{id: m{n}, type: multi, text: 'Flervalg {n}', options: {many}}}")
    for n in range(6):
        items.append(f"{{id: g{n}, type: scale, text: 'Skala {n}', "
                     "scale: {min: 1, max: 6, dont_know: true}}")
    for n in range(5):
        items.append(f"{{id: y{n}, type: yesno, dont_know: true, text: 'Ja/nei {n}'}}")
    items.append("{id: ansatte, type: number, min: 0, max: 5000, text: 'Ansatte'}")
    items.append("{id: fritt, type: text, text: 'Fritekst'}")
    body = "\n".join(f"      - {item}" for item in items)
    return (f"spec_version: 1\nid: bench\ntitle: Bench\npages:\n  - id: p\n    title: P\n"
            f"    items:\n{body}\n")


def answer(item: Item, rng: random.Random) -> object:
    """A plausible answer, skewed so that some cells are small."""
    if item.type is ItemType.SINGLE:
        return rng.choices([o.id for o in item.options], weights=[40, 30, 20, 9, 1])[0]
    if item.type is ItemType.MULTI:
        return [o.id for o in item.options if rng.random() < 0.3]
    if item.type is ItemType.SCALE:
        return rng.choice([1, 2, 3, 4, 5, 6, 6, 5, 4, "dont_know"])
    if item.type is ItemType.YESNO:
        return rng.choices(["yes", "no", "dont_know"], weights=[60, 35, 5])[0]
    if item.type is ItemType.NUMBER:
        return int(rng.lognormvariate(3, 1.2)) % 5000
    return "" if rng.random() < 0.7 else "Et svar med egne ord."


def build(path: Path, q: Questionnaire, responses: int, seed: int) -> int:
    """Create the SQLite answer store at schema revision 0001; return the number of answers."""
    init_database(f"sqlite:///{path}", revision="0001")
    rng = random.Random(seed)
    rows, answers = [], []
    for _ in range(responses):
        response_id = secrets.token_hex(16)
        rows.append((response_id, SURVEY, "unit_leader",
                     rng.choices(SECTORS, weights=[30, 35, 15, 10, 10])[0],
                     rng.choice(LANDSDELER), rng.choice(SIZES), 1, "2019-10-14"))
        answers += [(response_id, item.id, json.dumps(answer(item, rng))) for item in q.items]
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO surveys (id, questionnaire, status, created_at) "
                           "VALUES (?, 'bench.yaml', 'open', '2019-10-01 00:00:00')", [SURVEY])
        connection.executemany("INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        connection.executemany("INSERT INTO answers VALUES (?, ?, ?)", answers)
    return len(answers)


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, float]:
    """(best, median) seconds of `repeat` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--responses", type=int, default=40_000)
    parser.add_argument("--pairs", type=int, default=5,
                        help="interleaved DuckDB/svarbot pairs (default 5)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the report counted from the answers (default 3)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--keep", type=Path, help="Build in this folder and keep the files.")
    parser.add_argument("--reuse", action="store_true",
                        help="With --keep: time the database already built there.")
    args = parser.parse_args()
    q = parse(questionnaire_yaml(), "bench.yaml")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="svarbot-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "answers.db"
    if not (args.reuse and db.exists()):
        db.unlink(missing_ok=True)
        started = time.perf_counter()
        n_answers = build(db, q, args.responses, args.seed)
        print(f"built {n_answers:,} answers ({args.responses:,} responses) in "
              f"{time.perf_counter() - started:.1f} s: {db}")
        started = time.perf_counter()
        before, after = upgrade(f"sqlite:///{db}", questionnaires=lambda _reference: q)
        print(f"`db upgrade` {before} -> {after} back-filled answer_counts in "
              f"{time.perf_counter() - started:.1f} s")

    engine = make_engine(f"sqlite:///{db}")
    specs = key_specs(q)
    by = ("sector",)
    with engine.connect() as connection:
        count_rows = connection.exec_driver_sql("SELECT count(*) FROM answer_counts").scalar()
        report = build_report(connection, SURVEY, q, by, 5)
        if report != build_report_from_answers(connection, SURVEY, q, by, 5):
            raise SystemExit("the report from answer_counts differs from the one from answers")
        hidden = sum(v is None for t in report.tables for row in t.counts for v in row)
        raw = best_of(args.repeat,
                      lambda: build_report_from_answers(connection, SURVEY, q, by, 5))
        raw_query = best_of(args.repeat,
                            lambda: list(grouped_values(connection, SURVEY, by, specs)))
        export = export_answers(connection, SURVEY, q)

        csv_path = folder / "answers.csv"
        with csv_path.open("w", encoding="utf-8", newline="") as stream:
            write_csv(export, stream)
        duck = duckdb.connect()
        duck.execute("CREATE TABLE wide AS SELECT * FROM read_csv(?, all_varchar=true)",
                     [str(csv_path)])
        answer_columns = ", ".join('"' + c.replace('"', '""') + '"'
                                   for c in export.header[len(STRATA_COLUMNS):])
        unpivot = ("CREATE TABLE long AS SELECT answer_id, sector, value FROM wide UNPIVOT "  # noqa: S608 - our own column names, quoted
                   f"INCLUDE NULLS (value FOR answer_id IN ({answer_columns}))")
        duck.execute(unpivot)
        rows = duck.execute("SELECT count(*) FROM long").fetchone()
        group_by = ("SELECT answer_id, sector, value, count(*) FROM long "
                    "GROUP BY answer_id, sector, value")

        def time_duckdb() -> float:
            started = time.perf_counter()
            duck.execute(group_by).fetchall()
            return time.perf_counter() - started

        def time_svarbot() -> tuple[float, float]:
            started = time.perf_counter()
            build_report(connection, SURVEY, q, by, 5)
            whole = time.perf_counter() - started
            started = time.perf_counter()
            list(grouped_counts(connection, SURVEY, by, specs))
            return whole, time.perf_counter() - started

        time_duckdb()  # warm-up, untimed
        time_svarbot()
        print(f"report: {len(report.tables)} tables by sector, {hidden} of the shown counts "
              f"hidden;\n  identical from answer_counts and from the answers")
        print(f"answer_counts rows: {count_rows:,}; DuckDB rows (answers in the export): "
              f"{rows[0] if rows else 0:,}")
        print(f"{args.pairs} pairs; A = DuckDB's GROUP BY on the export, B = svarbot's report "
              f"(query +\ndisclosure control; the answer_counts query alone timed after it)")
        print(f"{'pair':>4} {'order':<6}{'A ms':>8}{'B ms':>8}{'B query ms':>12}{'B/A':>7}")
        ratios, b_times, queries, a_times = [], [], [], []
        for pair, first, a, (b, b_query) in pairs(args.pairs, time_duckdb, time_svarbot):
            ratios.append(b / a)
            a_times.append(a)
            b_times.append(b)
            queries.append(b_query)
            print(f"{pair:>4} {first:<6}{a * 1000:>8.1f}{b * 1000:>8.1f}"
                  f"{b_query * 1000:>12.1f}{b / a:>6.1f}x", flush=True)
        duck.close()
    engine.dispose()

    spread = Spread.of(ratios)
    print(f"svarbot / DuckDB (B/A): {spread.text(1, 'x')}")
    print(f"  B median {statistics.median(b_times) * 1000:.1f} ms (the counts query "
          f"{statistics.median(queries) * 1000:.1f} ms), A median "
          f"{statistics.median(a_times) * 1000:.1f} ms")
    print(f"  goal ≤ 3x: {verdict(spread.median <= 3)}")
    print(f"before answer_counts: the report counted from the answers, best "
          f"{raw[0] * 1000:.0f} ms,\n  median {raw[1] * 1000:.0f} ms (its GROUP BY over the "
          f"answers {raw_query[1] * 1000:.0f} ms), {args.repeat} runs")

if __name__ == "__main__":
    main()
