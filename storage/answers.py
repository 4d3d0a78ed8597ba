"""The anonymised answer store: answers kept apart from the people who gave them.

A response is found from an invitation only through `response_links`, whose key is
HMAC-SHA256(link key, token). The link key lives in an environment variable, never in the
database, so a copy of the database alone cannot tie a response to a token. A response carries
a random id, four coarse strata and the day of the latest answer: nothing that orders it
against the invitations, and no time of day.

Every change to a response also updates `answer_counts` (what the report reads) in the same
transaction, so the counts always equal what `answers` ⨝ `responses` would give (see
`storage.counts`).

`seal` cuts the link for good: it deletes the survey's links and every remaining copy of the
answers on the identity side (conversation state, message bodies), and `scrub` then rewrites
the tables on disk so that neither deleted bytes nor the physical order of rows remain to be
read. Backups and PostgreSQL's write-ahead log archives are beyond its reach: seal before
they are taken, or expire them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Select,
    Table,
    bindparam,
    delete,
    insert,
    inspect,
    null,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from flows.model import AnswerValue, Questionnaire
from storage import counts
from storage.db import StorageError
from storage.schema import (
    Answer,
    AnswerCount,
    DeskQuery,
    InboxMessage,
    Invitation,
    OutboxMessage,
    OutboxStatus,
    Respondent,
    RespondentRole,
    Response,
    ResponseLink,
    Survey,
    SurveyStatus,
)

log = logging.getLogger(__name__)

#: A shorter key could be guessed from the tokens in a stolen database.
MIN_KEY_CHARS = 16
_UNSENT = (OutboxStatus.QUEUED, OutboxStatus.RETRY, OutboxStatus.SENDING)


# --- the link -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkKey:
    """The secret that links invitations to responses; never printed, logged or stored."""

    secret: bytes = field(repr=False)

    @classmethod
    def from_env(cls, variable: str, environ: Mapping[str, str] | None = None) -> LinkKey:
        """The key held by the environment variable `variable` (config privacy.link_key_env).

        Raises:
            StorageError: the variable is unset, empty or too short; the message says which
                variable to set (and never shows its value).
        """
        value = (os.environ if environ is None else environ).get(variable, "")
        if not value.strip():
            raise StorageError(f"the link key is missing: set the environment variable "
                               f"{variable} to a long random secret (keep it outside the "
                               "database, and keep it safe: answers are linked with it)")
        if len(value) < MIN_KEY_CHARS:
            raise StorageError(f"the link key in {variable} is too short: use at least "
                               f"{MIN_KEY_CHARS} random characters")
        return cls(value.encode("utf-8"))

    def __repr__(self) -> str:
        return "LinkKey(<hidden>)"


def link(key: LinkKey, token: str) -> str:
    """The link of an invitation token: HMAC-SHA256 under the link key, as hex."""
    return hmac.new(key.secret, token.encode("utf-8"), hashlib.sha256).hexdigest()


# --- strata ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Strata:
    """The only facts about a respondent the answer side may know."""

    respondent_type: str
    sector: str | None
    landsdel: str | None
    size_class: str | None


def strata_for(respondent: Respondent) -> Strata:
    """A respondent's coarse strata: role, sector, landsdel and size class, nothing else."""
    return Strata(respondent_type=RespondentRole(respondent.role).value,
                  sector=respondent.sector, landsdel=respondent.landsdel,
                  size_class=respondent.size_class)


# --- recording ------------------------------------------------------------------------------


def _open_survey(session: Session, survey_id: str) -> Survey:
    survey = session.get(Survey, survey_id)
    if survey is None:
        raise StorageError(f"unknown survey {survey_id!r}")
    if survey.status == SurveyStatus.SEALED:
        raise StorageError(f"survey {survey_id} is sealed: no answers can be recorded")
    return survey


def _tables() -> tuple[Table, Table, Table]:
    return (cast(Table, Response.__table__), cast(Table, ResponseLink.__table__),
            cast(Table, Answer.__table__))


def _statements() -> tuple[Executable, ...]:
    responses, links, answers = _tables()
    return (insert(responses), insert(links), insert(answers),
            update(answers).where(answers.c.response_id == bindparam("k_response"),
                                  answers.c.answer_id == bindparam("k_answer"))
            .values(value=bindparam("v")),
            select(answers.c.answer_id, answers.c.value)
            .where(answers.c.response_id == bindparam("k_response")),
            select(links.c.survey_id, links.c.response_id)
            .where(links.c.link == bindparam("k_link")))


#: The statements `record` runs for (nearly) every message, built once: a statement built
#: anew, values and all, costs more in SQLAlchemy's compile-cache lookup than its execution.
(_INSERT_RESPONSE, _INSERT_LINK, _INSERT_ANSWERS, _UPDATE_ANSWER, _SELECT_ANSWERS,
 _SELECT_LINK) = _statements()


def _insert_response(connection: Connection, survey_id: str, link_value: str,
                     strata: Strata, completed: bool, today: dt.date) -> str:
    """A new response (random id) and its link, written at once.

    Plain inserts rather than ORM objects: the answers that follow are written the same way
    and must find their response already there (a foreign key), without a flush.
    """
    response_id = secrets.token_hex(16)
    connection.execute(_INSERT_RESPONSE, {
        "id": response_id, "survey_id": survey_id, "completed": completed,
        "answered_on": today, **_strata_values(strata)})
    connection.execute(_INSERT_LINK, {"link": link_value, "survey_id": survey_id,
                                      "response_id": response_id})
    return response_id


def _strata_values(strata: Strata) -> dict[str, str | None]:
    """The strata as stored; an empty one is stored as missing (None), like one never given."""
    return {"respondent_type": strata.respondent_type, "sector": strata.sector or None,
            "landsdel": strata.landsdel or None, "size_class": strata.size_class or None}


def _apply_strata(response: Response, strata: Strata) -> None:
    for column, value in _strata_values(strata).items():
        setattr(response, column, value)


def _stratum(response: Response) -> counts.StratumKey:
    return counts.stratum_key(response.respondent_type, response.sector, response.landsdel,
                              response.size_class, response.completed)


def _stored_values(connection: Connection, response_id: str) -> dict[str, object]:
    """The response's answers as the database holds them (after its own conversions: SQLite,
    for one, stores the JSON number 4.0 as 4), which is what any recount will read."""
    rows = connection.execute(_SELECT_ANSWERS, {"k_response": response_id})
    return {answer_id: value for answer_id, value in rows}


#: The integers SQLite keeps as integers; a larger one it turns into a float.
_INT64 = range(-(2**63), 2**63)


def _read_back_as_written(value: object, *, nested: bool = False) -> bool:
    """Whether every database gives `value` back exactly as written, type and all.

    Then the counts after a change can be worked out from the values in hand instead of being
    read back. Texts, booleans, None, 64-bit integers, and lists and objects of plain values
    (stored as JSON text, kept verbatim) are. A float on its own is not (SQLite's numeric
    affinity stores 4.0 as 4 and 1e16 as an integer), nor is a larger integer (a float in
    SQLite), nor anything else (a tuple comes back a list, an enum member a plain text).
    """
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return True
    if kind is int:
        return nested or value in _INT64
    if kind is float:
        return nested
    if kind is list:
        return all(_read_back_as_written(item, nested=True) for item in cast(list[object], value))
    if kind is dict:
        return all(type(key) is str and _read_back_as_written(item, nested=True)
                   for key, item in cast(dict[object, object], value).items())
    return False


def _apply_answers(connection: Connection, response_id: str, stored: Mapping[str, object],
                   answers: Mapping[str, AnswerValue], removed: list[str]) -> dict[str, object]:
    """Write the change against `stored` (the answers before it); the answers after it.

    `answers` are inserted or changed, `removed` ids deleted unless also in `answers`; a value
    equal to the stored one is left alone. One statement per kind of change. The result is
    what the database holds now: read back only when a written value may have been converted.
    """
    table = _tables()[2]
    after = dict(stored)
    deleted = [answer_id for answer_id in dict.fromkeys(removed)
               if answer_id in stored and answer_id not in answers]
    added: list[dict[str, object]] = []
    changed: list[dict[str, object]] = []
    exact = True
    for answer_id, value in answers.items():
        if answer_id not in stored:
            added.append({"response_id": response_id, "answer_id": answer_id, "value": value})
        elif stored[answer_id] != value:
            changed.append({"k_response": response_id, "k_answer": answer_id, "v": value})
        else:
            continue
        after[answer_id] = value
        exact = exact and _read_back_as_written(value)
    if deleted:
        connection.execute(delete(table).where(table.c.response_id == response_id,
                                               table.c.answer_id.in_(deleted)))
        for answer_id in deleted:
            del after[answer_id]
    if added:
        connection.execute(_INSERT_ANSWERS, added)
    if changed:
        connection.execute(_UPDATE_ANSWER, changed)
    return after if exact else _stored_values(connection, response_id)


class AnswerStore:
    """Records answers by invitation token without ever storing the token."""

    def __init__(self, key: LinkKey) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "AnswerStore(<key hidden>)"

    def response_id(self, session: Session, token: str) -> str | None:
        """The id of the response recorded for this token, or None (none yet, or sealed)."""
        found = session.get(ResponseLink, link(self._key, token))
        return None if found is None else found.response_id

    def record(self, session: Session, *, survey_id: str, token: str, strata: Strata,
               answers: Mapping[str, AnswerValue], removed: list[str], completed: bool,
               today: dt.date, questionnaire: Questionnaire | None = None) -> str:
        """Store answers for the invitation with `token`; return the response id.

        The first call creates the response (random id) and its link; later calls with the
        same token update it: `answers` are inserted or changed, `removed` answer ids deleted
        (an id in both is kept with its new value). `today` is the day, never a time. An
        empty stratum is stored as missing.

        `answer_counts` follows in the same transaction. The survey's questionnaire says
        which answers are free text: those, and answer ids it does not know, are counted only
        as answered, never by their text. Pass `questionnaire` when it is at hand; otherwise it
        is read from the survey's reference (a shipped id or a file, as `svarbot report` does).

        Raises:
            TypeError: `today` is a datetime (a time of day must never reach this side).
            StorageError: the survey is unknown or sealed, or (without `questionnaire`) its
                questionnaire cannot be read.
        """
        if isinstance(today, dt.datetime) or not isinstance(today, dt.date):
            raise TypeError("today must be a date, not a datetime")
        survey = _open_survey(session, survey_id)
        link_value = link(self._key, token)
        connection = session.connection()
        found = connection.execute(_SELECT_LINK, {"k_link": link_value}).first()
        if found is not None and found.survey_id != survey_id:
            raise StorageError("this invitation's answers belong to another survey")
        if questionnaire is None:
            questionnaire = counts.survey_questionnaire(survey_id, survey.questionnaire)
        by_value = counts.counted_by_value(questionnaire)
        before: Counter[counts.CountKey] = Counter()
        if found is None:
            response_id = _insert_response(connection, survey_id, link_value, strata,
                                           completed, today)
            stored: dict[str, object] = {}
            stratum = counts.stratum_key(strata.respondent_type, strata.sector, strata.landsdel,
                                         strata.size_class, completed)
        else:
            # Locked (PostgreSQL) so that two messages of one respondent, handled at once,
            # count their changes one after the other rather than from the same "before".
            response = session.get_one(Response, found.response_id, with_for_update=True)
            response_id = response.id
            stored = _stored_values(connection, response_id)
            before = counts.response_counts(_stratum(response), stored, by_value)
            _apply_strata(response, strata)
            response.completed = completed
            response.answered_on = today
            stratum = _stratum(response)
        after = counts.response_counts(
            stratum, _apply_answers(connection, response_id, stored, answers, removed), by_value)
        counts.apply(connection, survey_id, counts.difference(before, after))
        return response_id


class NoAnswerStore(AnswerStore):
    """For a process that never records an answer (`svarbot web` without the link key): the
    pages only re-show a page or answer a question, which records nothing. Should anything
    try, it fails loudly instead of linking an answer with a made-up key."""

    def __init__(self) -> None:
        super().__init__(LinkKey(b"\0" * 32))

    def record(self, session: Session, **_kwargs: object) -> str:
        raise StorageError("this process records no answers (the link key is not set)")

    def response_id(self, session: Session, token: str) -> str | None:
        raise StorageError("this process reads no answers (the link key is not set)")


# --- sealing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SealResult:
    """What sealing did (counts only)."""

    already_sealed: bool
    links_deleted: int = 0
    sessions_cleared: int = 0
    messages_cleared: int = 0


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


#: What a desk query's text becomes when its survey is sealed.
SEALED_TEXT = "(fjernet ved forsegling)"


def _clear_messages(session: Session, invitations: Select[int]) -> int:
    """Drop inbound and outbound bodies of the survey's invitations (they may hold answers)."""
    inbox = session.execute(update(InboxMessage).where(
        InboxMessage.invitation_id.in_(invitations), InboxMessage.raw.is_not(None))
        .values(raw=None))
    session.execute(update(OutboxMessage).where(
        OutboxMessage.invitation_id.in_(invitations), OutboxMessage.status.in_(_UNSENT))
        .values(status=OutboxStatus.DEAD))
    outbox = session.execute(update(OutboxMessage).where(
        OutboxMessage.invitation_id.in_(invitations), OutboxMessage.payload.is_not(None))
        .values(payload=null()))
    # A respondent's question to the contact person, and the reply, can quote their answers.
    queries = session.execute(update(DeskQuery).where(
        DeskQuery.invitation_id.in_(invitations), DeskQuery.text != SEALED_TEXT)
        .values(text=SEALED_TEXT, answer=null()))
    return _rowcount(inbox) + _rowcount(outbox) + _rowcount(queries)


def _rewrite_answer_rows(session: Session, survey_id: str) -> None:
    """Rewrite the survey's responses, answers and counts, so no row keeps the transaction
    stamp (PostgreSQL's xmin) it shared with an identity-side change when it was recorded.

    The counts keep their values: they are aggregates, and stay with the answers."""
    responses = select(Response.id).where(Response.survey_id == survey_id)
    session.execute(update(Response).where(Response.survey_id == survey_id)
                    .values(completed=Response.completed))
    session.execute(update(Answer).where(Answer.response_id.in_(responses))
                    .values(value=Answer.value))
    counts.touch(session.connection(), survey_id)


def seal(session: Session, survey_id: str, *, now: dt.datetime | None = None) -> SealResult:
    """Make the survey's answers impossible to tie to anyone, for good.

    Deletes the survey's response links, clears the conversation state of its invitations
    and the message bodies still held for them, and marks the survey sealed. Unsent messages
    are marked dead (their bodies are gone). The answers themselves stay. Run `scrub` on the
    engine after the transaction commits.

    Raises:
        StorageError: no such survey.
    """
    survey = session.get(Survey, survey_id)
    if survey is None:
        raise StorageError(f"unknown survey {survey_id!r}")
    if survey.status == SurveyStatus.SEALED:
        return SealResult(already_sealed=True)
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("PRAGMA secure_delete=ON")
    invitations = select(Invitation.id).where(Invitation.survey_id == survey_id)
    links = session.execute(delete(ResponseLink).where(ResponseLink.survey_id == survey_id))
    sessions = session.execute(update(Invitation).where(
        Invitation.survey_id == survey_id, Invitation.session_state.is_not(None))
        .values(session_state=None))
    messages = _clear_messages(session, invitations)
    _rewrite_answer_rows(session, survey_id)
    survey.status = SurveyStatus.SEALED
    survey.sealed_at = now or dt.datetime.now(dt.UTC)
    session.flush()
    result = SealResult(already_sealed=False, links_deleted=_rowcount(links),
                        sessions_cleared=_rowcount(sessions), messages_cleared=messages)
    log.info("survey %s sealed: %d links deleted, %d sessions and %d message bodies cleared",
             survey_id, result.links_deleted, result.sessions_cleared, result.messages_cleared)
    return result


def _scrub_sqlite(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("VACUUM")
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _scrub_postgresql(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        inspector = inspect(connection)
        for table in ("responses", "answers", AnswerCount.__tablename__):
            primary_key = inspector.get_pk_constraint(table)["name"] or f"{table}_pkey"
            quote = connection.dialect.identifier_preparer.quote
            connection.exec_driver_sql(f"CLUSTER {quote(table)} USING {quote(primary_key)}")
        connection.exec_driver_sql(
            "VACUUM FULL response_links, invitations, inbox, outbox")


def scrub(engine: Engine) -> None:
    """After `seal` has committed: rewrite the tables so deleted data is gone from the files.

    SQLite: VACUUM and truncate the write-ahead log. PostgreSQL: rewrite the answer tables in
    the order of their keys (CLUSTER) and the identity tables that held links or
    answers (VACUUM FULL). Both lock the tables briefly.

    Raises:
        StorageError: the rewrite failed (the seal itself stands; run it again later).
    """
    try:
        if engine.dialect.name == "sqlite":
            _scrub_sqlite(engine)
        elif engine.dialect.name == "postgresql":
            _scrub_postgresql(engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise StorageError(f"the survey is sealed, but rewriting the database files failed "
                           f"({reason}); run `svarbot seal` again to retry") from exc
