"""A whole campaign's logs carry no address, token or answer text (import → answer → export).

Every log record of every svarbot logger, at DEBUG, is collected while contacts are imported,
respondents answer through the engine into the anonymised store, and the answers are exported
and reported. Then the collected text is searched for every address, token and free-text answer
that passed through.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.conversation.steps import apply_step
from flows.loader import load_shipped
from flows.simulate import Persona, converse
from storage.aggregate import build_report
from storage.answers import AnswerStore, LinkKey
from storage.contacts import import_contacts, load_contacts
from storage.db import session_factory, transaction
from storage.export import export_answers
from storage.frame import write_frame
from storage.migrate import init_database, open_database
from storage.schema import Answer, Invitation, InvitationStatus, Respondent

NOW = datetime(2019, 10, 16, 10, 30, tzinfo=UTC)


def test_logs_of_a_full_cycle_hold_no_identifiers_or_answer_text(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No email, token or free-text answer appears in any log line of a full cycle."""
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    frame = tmp_path / "mayors.csv"
    write_frame(frame, mayors=True, seed=4)
    q = load_shipped("ordforer-2020")
    store = AnswerStore(LinkKey.from_env("KEY", {"KEY": "k" * 40}))
    rng = random.Random(4)
    with caplog.at_level(logging.DEBUG):
        init_database(url)
        factory = session_factory(open_database(url))
        contacts = load_contacts(frame).contacts[:30]
        import_contacts(factory, "ordforer-2020", contacts, questionnaire="ordforer-2020")
        with transaction(factory) as session:
            rows = session.execute(select(Invitation, Respondent).join(
                Respondent, Respondent.id == Invitation.respondent_id)).all()
            for invitation, respondent in rows:
                transcript = converse(q, rng, channel="email", now=NOW,
                                      persona=Persona(typo_rate=0.3))
                for step in transcript.steps:
                    apply_step(session, store, invitation, respondent, step, now=NOW,
                               questionnaire=q)
        with open_database(url).connect() as connection:
            export = export_answers(connection, "ordforer-2020", q)
            build_report(connection, "ordforer-2020", q, ("size_class",), 5)
    with factory() as session:
        tokens = session.scalars(select(Invitation.token)).all()
        emails = session.scalars(select(Respondent.email)).all()
        texts = [v for v in session.scalars(select(Answer.value)).all()
                 if isinstance(v, str) and len(v) > 12]
        finished = session.scalars(select(Invitation).where(
            Invitation.status == InvitationStatus.FINISHED)).all()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert len(caplog.records) > 3, "the cycle should have logged something to search"
    assert finished, "some respondents finished, so answers went through the store"
    assert texts, "free-text answers were stored, so there was text that could leak"
    assert len(export.rows) >= len(finished)
    for secret in [*tokens, *emails, *texts]:
        assert secret not in logged
