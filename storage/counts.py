"""The answer counts (`answer_counts`): what the report counts, kept exactly in step with `answers`.

`svarbot report` needs, per answer id, stratum and category, how many answered. Counting that
from `answers` ⨝ `responses` on every report is a GROUP BY over every answer (seconds on SQLite
for a million); this table holds the counts themselves, a few thousand rows, and the report
groups those instead (`storage.aggregate`).

* **Categories.** A row's `value_key` is the answer's value as JSON (`"helse"`, `4`,
  `"dont_know"`), so the report classifies it exactly as it would classify the answer itself:
  number bands and known options are applied when reading, and changing them needs no recount.
  A list (multiple choice) counts once as `[]` (answered) and once per distinct option as
  `["x"]`.
* **Never a text.** A free-text answer counts only as `"answered"`, and only when it is not
  empty; so does any answer id the questionnaire does not know. The questionnaire is what says
  which answers are free text, which is why `AnswerStore.record` and `recount` take it.
* **Strata.** `""` stands for a missing stratum (NULL cannot be part of a primary key). Answer
  id `""` counts the responses themselves, with or without answers, so the report's strata and
  its consistency check need neither `responses` nor `answers`.
* **In step.** `AnswerStore.record` works out the rows a response contributes before and after
  its change and applies the difference in the same transaction; rows that reach 0 are deleted.
  `recount` rebuilds a survey's counts from `answers` ⨝ `responses`: migration 0002's
  back-fill, and a repair if the table was ever bypassed. The counts are aggregate-only, so
  `seal` keeps them (and rewrites them like the other answer-side rows).
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy import String as SqlString
from sqlalchemy import cast as sql_cast
from sqlalchemy.sql.expression import TableClause

from flows.model import ItemType, Questionnaire
from storage.db import StorageError
from storage.schema import Answer, AnswerCount, Response

#: The answer id of the rows that count responses (no item can have an empty id).
RESPONSES = ""
#: The category of a free text that is not empty.
ANSWERED = "answered"
ANSWERED_KEY = json.dumps(ANSWERED)
#: The value key of an answer that is a list (a multiple choice), whatever it holds.
LIST_KEY = "[]"

#: The columns of a count row's key after survey_id, in primary-key order.
KEY_COLUMNS = ("answer_id", "value_key", "respondent_type", "sector", "landsdel", "size_class",
               "completed")
PRIMARY_KEY = ("survey_id", *KEY_COLUMNS)

#: (respondent_type, sector, landsdel, size_class, completed), missing strata as "".
StratumKey = tuple[str, str, str, str, bool]
#: (answer_id, value_key, *StratumKey): one row of a survey's counts.
CountKey = tuple[str, str, str, str, str, str, bool]


class Tables(NamedTuple):
    """The tables `recount` reads and writes (a migration passes its own definitions)."""

    responses: TableClause
    answers: TableClause
    counts: TableClause


def model_tables() -> Tables:
    """The tables as the models define them now."""
    return Tables(cast(Table, Response.__table__), cast(Table, Answer.__table__),
                  cast(Table, AnswerCount.__table__))


# --- pure: which rows an answer counts in -----------------------------------------------------


def counted_by_value(questionnaire: Questionnaire) -> frozenset[str]:
    """The answer ids whose values are categories (every answer id but free text)."""
    return frozenset(key for item in questionnaire.items if item.type is not ItemType.TEXT
                     for key in item.keys)


def dumps(value: object) -> str:
    """A value as canonical JSON (the same value always gives the same key)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def loads(key: str | None) -> object:
    """A value key (or stored JSON) back as a value; None if it is not JSON."""
    if key is None:
        return None
    try:
        value: object = json.loads(key)
    except ValueError:
        return None
    return value


def value_keys(value: object, *, by_value: bool) -> tuple[str, ...]:
    """The value keys one stored answer counts under (empty: it counts nowhere).

    `value` is the answer as read back from the database (JSON-decoded). With `by_value` (a
    category item): the value itself, or for a list `[]` plus one `["x"]` per distinct option
    (as text, the way the report compares options). Otherwise (free text): `"answered"` unless
    the answer is empty, and never anything of the text.
    """
    if not by_value:
        return () if value is None or value == "" else (ANSWERED_KEY,)
    if isinstance(value, list):
        options = dict.fromkeys(str(v) for v in value)
        return (LIST_KEY, *(dumps([option]) for option in options))
    return (dumps(value),)


def stratum_key(respondent_type: str, sector: str | None, landsdel: str | None,
                size_class: str | None, completed: bool) -> StratumKey:
    """A response's strata as they appear in a count row's key."""
    return (respondent_type, sector or "", landsdel or "", size_class or "", bool(completed))


def response_counts(stratum: StratumKey, answers: Mapping[str, object],
                    by_value: Collection[str]) -> Counter[CountKey]:
    """The count rows one response contributes to: itself, and each of its answers."""
    counts: Counter[CountKey] = Counter({(RESPONSES, "", *stratum): 1})
    for answer_id, value in answers.items():
        for key in value_keys(value, by_value=answer_id in by_value):
            counts[(answer_id, key, *stratum)] += 1
    return counts


def difference(before: Counter[CountKey], after: Counter[CountKey]) -> dict[CountKey, int]:
    """What to add to each count row (negative: take away) to go from `before` to `after`."""
    changes = {key: after[key] - before[key] for key in before.keys() | after.keys()}
    return {key: n for key, n in changes.items() if n}


# --- the table ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _upsert(dialect: str, table: TableClause) -> Executable:
    """INSERT … ON CONFLICT (primary key) DO UPDATE SET n = n + excluded.n.

    Built once per table: `record` runs it for every answered message, and a statement built
    anew has to be keyed for SQLAlchemy's compiled cache each time.
    """
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(table)
        return lite.on_conflict_do_update(index_elements=list(PRIMARY_KEY),
                                          set_={"n": table.c.n + lite.excluded.n})
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(table)
        return pg.on_conflict_do_update(index_elements=list(PRIMARY_KEY),
                                        set_={"n": table.c.n + pg.excluded.n})
    raise StorageError(f"answer counts: the {dialect} database is not supported")


def _key_params(row: Mapping[str, object]) -> dict[str, object]:
    return {f"k_{column}": row[column] for column in PRIMARY_KEY}


def _where_key(table: TableClause) -> list[ColumnElement[bool]]:
    return [table.c[column] == bindparam(f"k_{column}") for column in PRIMARY_KEY]


def apply(connection: Connection, survey_id: str, changes: Mapping[CountKey, int],
          table: TableClause | None = None) -> None:
    """Add `changes` to the survey's count rows; delete the rows that reach 0.

    Rows are touched in key order, so concurrent writers on PostgreSQL take their row locks in
    the same order and cannot deadlock each other.
    """
    table = model_tables().counts if table is None else table
    rows = [{"survey_id": survey_id, **dict(zip(KEY_COLUMNS, key, strict=True)), "n": n}
            for key, n in sorted(changes.items()) if n]
    if not rows:
        return
    connection.execute(_upsert(connection.dialect.name, table), rows)
    emptied = [_key_params(row) for row in rows if cast(int, row["n"]) < 0]
    if emptied:
        connection.execute(delete(table).where(*_where_key(table), table.c.n <= 0), emptied)


def touch(connection: Connection, survey_id: str, table: TableClause | None = None) -> None:
    """Rewrite the survey's count rows unchanged (a fresh row version, as `seal` needs)."""
    table = model_tables().counts if table is None else table
    connection.execute(update(table).where(table.c.survey_id == survey_id)
                       .values(n=table.c.n))


def _by_position(width: int) -> list[ColumnElement[Any]]:
    # PostgreSQL cannot match a bound parameter in SELECT to the same one in GROUP BY.
    return [literal_column(str(n)) for n in range(1, width + 1)]


def _grouped_from_answers(connection: Connection, survey_id: str, by_value: Collection[str],
                          tables: Tables) -> Iterable[tuple[CountKey, int]]:
    """Every count row recomputed from `answers` ⨝ `responses` (rows may repeat a key).

    Free text never leaves the database: the query itself turns it into "answered" or nothing.
    """
    responses, answers = tables.responses, tables.answers
    strata = (responses.c.respondent_type, func.coalesce(responses.c.sector, ""),
              func.coalesce(responses.c.landsdel, ""), func.coalesce(responses.c.size_class, ""),
              responses.c.completed)
    found = connection.execute(
        select(*strata, func.count()).where(responses.c.survey_id == survey_id)
        .group_by(*_by_position(len(strata))))
    for respondent_type, sector, landsdel, size_class, completed, n in found:
        yield ((RESPONSES, "",
                *stratum_key(respondent_type, sector, landsdel, size_class, completed)), int(n))
    raw = sql_cast(answers.c.value, SqlString)
    empty = or_(raw.is_(None), raw.in_(['""', "null"]))
    value = case((answers.c.answer_id.in_(sorted(by_value)), raw),
                 (empty, literal("")), else_=literal(ANSWERED_KEY))
    grouped = connection.execute(
        select(answers.c.answer_id, *strata, value, func.count())
        .join_from(answers, responses, answers.c.response_id == responses.c.id)
        .where(responses.c.survey_id == survey_id)
        .group_by(*_by_position(len(strata) + 2)))
    for answer_id, respondent_type, sector, landsdel, size_class, completed, text, n in grouped:
        stratum = stratum_key(respondent_type, sector, landsdel, size_class, completed)
        if answer_id in by_value:
            keys = value_keys(loads(text), by_value=True)
        else:
            keys = (ANSWERED_KEY,) if text == ANSWERED_KEY else ()
        for key in keys:
            yield (answer_id, key, *stratum), int(n)


def counts_from_answers(connection: Connection, survey_id: str, questionnaire: Questionnaire,
                        tables: Tables | None = None) -> Counter[CountKey]:
    """What the survey's counts must be, recomputed from `answers` ⨝ `responses`."""
    found: Counter[CountKey] = Counter()
    for key, n in _grouped_from_answers(connection, survey_id, counted_by_value(questionnaire),
                                        tables or model_tables()):
        found[key] += n
    return found


def recount(connection: Connection, survey_id: str, questionnaire: Questionnaire,
            tables: Tables | None = None) -> int:
    """Rebuild the survey's counts from its answers; return the number of count rows."""
    tables = tables or model_tables()
    found = counts_from_answers(connection, survey_id, questionnaire, tables)
    connection.execute(delete(tables.counts).where(tables.counts.c.survey_id == survey_id))
    rows = [{"survey_id": survey_id, **dict(zip(KEY_COLUMNS, key, strict=True)), "n": n}
            for key, n in sorted(found.items())]
    if rows:
        connection.execute(insert(tables.counts), rows)
    return len(rows)


def stored_counts(connection: Connection, survey_id: str,
                  table: TableClause | None = None) -> Counter[CountKey]:
    """The survey's count rows as they are in the table."""
    table = model_tables().counts if table is None else table
    rows = connection.execute(select(*(table.c[c] for c in KEY_COLUMNS), table.c.n)
                              .where(table.c.survey_id == survey_id))
    return Counter({cast(CountKey, tuple(row[:-1])): int(row[-1]) for row in rows})


def load_questionnaire(reference: str) -> Questionnaire:
    """A survey's questionnaire from its reference: a file path, or a shipped id.

    The same rule `svarbot report` follows. Raises flows.loader.QuestionnaireError.
    """
    from flows.loader import load_reference

    return load_reference(reference)


_LOADED: dict[tuple[object, ...], Questionnaire] = {}
_LOADED_MAX = 32


def survey_questionnaire(survey_id: str, reference: str) -> Questionnaire:
    """`load_questionnaire`, kept while the file is unchanged (`record` needs it per answer).

    Raises:
        StorageError: the questionnaire cannot be read; answers cannot be counted without it.
    """
    from flows.loader import QuestionnaireError

    path = Path(reference)
    if path.is_file():
        stat = path.stat()
        key: tuple[object, ...] = ("file", str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    else:
        key = ("shipped", reference)
    found = _LOADED.get(key)
    if found is None:
        try:
            found = load_questionnaire(reference)
        except QuestionnaireError as exc:
            raise StorageError(f"survey {survey_id}: its questionnaire {reference} cannot be "
                               f"read ({exc.problems[0]}), so its answers cannot be counted"
                               ) from exc
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[key] = found
    return found
