"""The desk and the dashboard over real HTTP: a running uvicorn on loopback, a test database
with real traffic (see `web_support`), httpx as the browser. Roles, sessions, CSRF,
throttling, headers, escaping, the figures against the database, the desk's answer by the
browser and by email, the operator's actions, CSV, and that no page shows an answer.
The same pages in headless Chromium: `test_web_browser.py`."""

from __future__ import annotations

import csv
import datetime as dt
import email
import io
import re
from collections.abc import Iterator
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import func, select
from web_support import (
    DESK,
    NOW,
    PRIVATE_NUMBER,
    PRIVATE_TEXT,
    SURVEY,
    Visitor,
    WebRun,
    World,
    context,
    deliver,
    web_world,
)

from bot.channels.email.clients import compose_reply
from bot.channels.email.compose import OutgoingMail, render
from bot.desk.notify import notify_desk
from bot.web.security import CSP
from storage.db import transaction
from storage.schema import (
    Answer,
    AuditEvent,
    DeskQuery,
    InboxMessage,
    InboxStatus,
    Invitation,
    InvitationStatus,
    OutboxMessage,
    OutboxStatus,
    QueryStatus,
    WebSession,
)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return web_world(tmp_path)


@pytest.fixture
def run(world: World) -> Iterator[WebRun]:
    with WebRun(context(world)) as running:
        yield running


def _visitor(run: WebRun, name: str) -> Visitor:
    return run.visitor(name)


OPERATOR_PAGES = ("/dashboard", "/log", "/attention", "/outbox", "/quarantine", "/health",
                  "/respondent/1", "/find?q=leder")
DESK_PAGES = ("/desk", "/desk?status=answered", "/desk?status=closed", "/desk/1",
              "/desk/canned")


# --- logging in ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "home"), [("ola", "/dashboard"), ("kari", "/desk"),
                                            ("admin", "/dashboard")])
def test_each_role_logs_in_and_lands_on_its_own_page(run: WebRun, name: str,
                                                     home: str) -> None:
    v = _visitor(run, name)
    front = v.http.get("/")
    assert front.status_code == 303
    assert front.headers["location"] == home
    page = v.http.get(home)
    assert page.status_code == 200
    assert f"<strong>{name}</strong>" in page.text


def test_a_wrong_password_is_refused_and_logged(run: WebRun, world: World) -> None:
    v = run.visitor()
    response = v.login("ola", "not-the-password")
    assert response.status_code == 401
    assert "Feil brukernavn eller passord" in response.text
    assert v.http.get("/dashboard").status_code == 303  # still not logged in
    with world.factory() as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "login failed" in actions


def test_logins_are_throttled_after_too_many_failures(run: WebRun) -> None:
    v = run.visitor()
    for _ in range(5):
        assert v.login("kari", "wrong-wrong-wrong").status_code == 401
    refused = v.login("kari")  # the right password, too late
    assert refused.status_code == 429
    assert "For mange mislykkede forsøk" in refused.text
    assert v.http.get("/desk").status_code == 303


def test_a_logged_out_session_cannot_be_used_again(run: WebRun, world: World) -> None:
    v = _visitor(run, "ola")
    cookie = v.http.cookies.get("svarbot_session")
    assert cookie
    assert v.post("/logout").status_code == 303
    thief = run.visitor()
    thief.http.cookies.set("svarbot_session", cookie)
    assert thief.http.get("/dashboard").status_code == 303
    with world.factory() as session:
        assert session.scalar(select(func.count()).select_from(WebSession)) == 0


def test_an_idle_session_ends(world: World) -> None:
    moments = [NOW]
    ctx = context(world)
    ctx.clock = lambda: moments[-1]
    with WebRun(ctx) as running:
        v = _visitor(running, "ola")
        assert v.http.get("/dashboard").status_code == 200
        moments.append(NOW + dt.timedelta(hours=world.settings.web.idle_hours, minutes=1))
        assert v.http.get("/dashboard").status_code == 303


def test_the_session_cookie_is_httponly_and_samesite(run: WebRun) -> None:
    v = run.visitor()
    form = v.http.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    response = v.http.post("/login", data={"name": "ola", "password": "operator-passord",
                                           "login_token": token.group(1)})
    cookie = next(h for h in response.headers.get_list("set-cookie")
                  if h.startswith("svarbot_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback; https public_url adds it


def test_a_login_without_its_form_token_is_refused(run: WebRun) -> None:
    v = run.visitor()
    response = v.http.post("/login", data={"name": "ola", "password": "operator-passord"})
    assert response.status_code == 400
    assert "svarbot_session" not in response.headers.get("set-cookie", "")


def test_next_after_login_stays_on_this_site(run: WebRun) -> None:
    v = run.visitor()
    form = v.http.get("/login?next=//evil.example/x")
    assert 'name="next" value=""' in form.text


# --- who may see what ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [*OPERATOR_PAGES, "/audit"])
def test_a_contact_person_gets_403_on_operator_pages(run: WebRun, path: str) -> None:
    response = _visitor(run, "kari").http.get(path)
    assert response.status_code == 403
    assert "ikke tilgang" in response.text


def test_an_operator_may_look_at_the_desk_but_not_answer(run: WebRun, world: World) -> None:
    v = _visitor(run, "ola")
    page = v.http.get("/desk/1")
    assert page.status_code == 200
    assert 'name="answer"' not in page.text
    assert v.post("/desk/1/answer", {"answer": "Hei"}).status_code == 403
    assert v.http.get("/audit").status_code == 403
    with world.factory() as session:
        assert session.get_one(DeskQuery, 1).status == QueryStatus.OPEN


def test_pages_need_a_login(run: WebRun) -> None:
    anonymous = run.visitor()
    for path in OPERATOR_PAGES + DESK_PAGES:
        response = anonymous.http.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login")
    assert anonymous.http.post("/desk/1/answer", data={"answer": "x"}).status_code == 403


def test_a_post_without_the_csrf_token_is_refused(run: WebRun, world: World) -> None:
    v = _visitor(run, "kari")
    assert v.http.post("/desk/1/answer", data={"answer": "Svar uten token"}).status_code == 400
    assert v.http.post("/desk/1/answer", data={"answer": "Feil token",
                                               "csrf": "x" * 43}).status_code == 400
    with world.factory() as session:
        assert session.scalar(select(func.count()).where(
            OutboxMessage.kind == "desk_reply")) == 0
        assert session.get_one(DeskQuery, 1).status == QueryStatus.OPEN


def test_every_response_carries_the_security_headers(run: WebRun) -> None:
    v = _visitor(run, "admin")
    for path in ("/login", "/dashboard", "/desk", "/static/app.css", "/no-such-page"):
        response = v.http.get(path)
        assert response.headers["content-security-policy"] == CSP, path
        assert "frame-ancestors 'none'" in CSP
        assert "'unsafe-inline'" not in CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert v.http.get("/dashboard").headers["cache-control"] == "no-store"
    assert "<script>" not in v.http.get("/dashboard").text.replace(
        '<script src="/static/refresh.js" defer></script>', "")


def test_markup_from_respondents_is_shown_as_text(run: WebRun) -> None:
    v = _visitor(run, "admin")
    for path in ("/desk", "/desk/1", "/desk/2", "/respondent/2", "/find?q=Per"):
        html = v.http.get(path).text
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
    assert "&lt;script&gt;alert(&#34;q&#34;)&lt;/script&gt;" in v.http.get("/desk/1").text
    assert "Per &lt;img src=x onerror=alert(&#34;n&#34;)&gt; Hansen" in v.http.get(
        "/desk/2").text


# --- the dashboard's figures --------------------------------------------------------------


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def _block(rows: list[list[str]], caption: str) -> list[list[str]]:
    start = rows.index([caption]) + 1
    end = next((i for i in range(start, len(rows)) if not rows[i]), len(rows))
    return rows[start:end]


def test_the_funnel_equals_the_database(run: WebRun, world: World) -> None:
    with transaction(world.factory) as session:
        session.get_one(Invitation, 4).status = InvitationStatus.FINISHED
        session.get_one(Invitation, 6).status = InvitationStatus.BOUNCED
        session.get_one(Invitation, 5).away_until = dt.date(2019, 10, 30)
    response = _visitor(run, "ola").http.get("/dashboard?format=csv")
    assert response.headers["content-type"].startswith("text/csv")
    funnel = {row[0]: row[1:] for row in _block(_csv(response.text),
                                                "Hvor langt de har kommet")[1:]}
    with world.factory() as session:
        def count(*where: object) -> int:
            return int(session.scalar(select(func.count()).select_from(Invitation)
                                      .where(Invitation.survey_id == SURVEY, *where)) or 0)
        sent = session.scalar(select(func.count()).where(
            OutboxMessage.kind == "invitation", OutboxMessage.status == OutboxStatus.SENT))
        open_queries = session.scalar(select(func.count()).where(
            DeskQuery.status == QueryStatus.OPEN))
        expected = {
            "I utvalget": count(), "Invitasjon sendt": sent,
            "Bounce, permanent": count(Invitation.status == InvitationStatus.BOUNCED),
            "Fullført": count(Invitation.status == InvitationStatus.FINISHED),
            "Borte (autosvar)": count(Invitation.away_until >= NOW.date()),
            "Åpne spørsmål til kontaktpersonen": open_queries,
        }
    for row, n in expected.items():
        assert int(funnel[row][-1]) == n, row  # the total column
    assert expected["I utvalget"] == 6
    assert expected["Åpne spørsmål til kontaktpersonen"] == 2


def test_strata_show_the_response_rate_and_mark_those_under_target(run: WebRun,
                                                                   world: World) -> None:
    with transaction(world.factory) as session:
        session.get_one(Invitation, 1).status = InvitationStatus.FINISHED
    v = _visitor(run, "ola")
    strata = _block(_csv(v.http.get("/dashboard?format=csv").text), "Per stratum")
    assert strata[0] == ["Sektor", "Landsdel", "Størrelse", "Utvalg", "Påbegynt", "Fullført",
                         "Svarprosent"]
    assert strata[1][:3] == ["helse", "Østlandet", "medium"]
    assert strata[1][3] == "6"
    assert strata[1][5] == "1"
    assert strata[1][6] == "17 %"
    assert "under målet" in v.http.get("/dashboard").text


def test_the_chart_is_an_svg_with_a_text_alternative(run: WebRun) -> None:
    html = _visitor(run, "ola").http.get("/dashboard").text
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html
    assert 'role="img"' in html
    assert re.search(r"<desc id=\"chart-desc\">[^<]*Meldinger sendt 6", html)
    assert 'data-refresh="15"' in html


def test_the_log_filters_by_status_kind_channel_day_and_address(run: WebRun) -> None:
    v = _visitor(run, "ola")
    def rows(query: str) -> list[list[str]]:
        return _csv(v.http.get(f"/log?{query}&format=csv").text)[1:]
    assert len(rows("status=sent")) == 6
    assert {r[1] for r in rows("kind=page")} == {"svarside"}
    assert rows("channel=telegram") == []
    assert len(rows(f"day={NOW.date().isoformat()}&status=dead")) == 1
    assert rows("day=2001-01-01") == []
    found = rows("address=leder3@")
    assert found
    assert {r[3] for r in found} == {"leder3@kommune3.example"}


def test_find_by_name_or_address(run: WebRun) -> None:
    v = _visitor(run, "ola")
    assert "/respondent/4" in v.http.get("/find?q=kommune3.example").text
    assert "/respondent/3" in v.http.get("/find?q=nummer2").text
    assert "/respondent/" not in v.http.get("/find?q=nobody-here").text


# --- the desk -----------------------------------------------------------------------------


def test_the_queue_shows_who_asks_and_where_they_stand(run: WebRun) -> None:
    rows = _csv(_visitor(run, "kari").http.get("/desk?format=csv").text)
    assert rows[0] == ["Spurt", "Ventet", "Hvem", "Rolle", "Kommune", "Adresse", "Kanal",
                       "Spørsmålet", "Står ved"]
    first = rows[1]
    assert first[2] == "Leder Nummer0"
    assert first[4] == "Kommune0"
    assert first[5] == "leder0@kommune0.example"
    assert first[6] == "e-post"
    assert "Hvem kan jeg kontakte" in first[7]
    assert first[8].startswith("spørsmål 1:")
    assert first[3] == "virksomhetsleder, Sykehjem eller bo- og behandlingssenter"


def test_an_answer_in_the_browser_is_queued_threaded_in_the_respondents_mail(
        run: WebRun, world: World) -> None:
    v = _visitor(run, "kari")
    page = v.http.get("/desk/1")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None
    answer = {"answer": "Du kan ringe meg på 400 00 000.", "nonce": nonce.group(1)}
    assert v.post("/desk/1/answer", answer).status_code == 303
    assert v.post("/desk/1/answer", answer).status_code == 303  # a second click: no second mail
    with world.factory() as session:
        rows = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "desk_reply")).all()
        assert len(rows) == 1
        query = session.get_one(DeskQuery, 1)
        inbound = session.scalars(select(InboxMessage).where(
            InboxMessage.external_id == "test:question:1")).one()
        audit = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "desk answered")).one()
    assert query.status == QueryStatus.ANSWERED
    assert query.answered_by == "kari"
    assert audit.actor == "kari"
    assert rows[0].invitation_id == 1
    assert rows[0].recipient == "leder0@kommune0.example"
    mail = OutgoingMail.from_payload(rows[0].payload or {})
    assert mail.in_reply_to == inbound.message_id
    assert mail.prompts[0].startswith("Svar fra kontaktpersonen")
    assert "400 00 000" in mail.prompts[0]
    assert any("1." in p for p in mail.prompts[1:])  # the page they were at follows
    assert "Svaret er sendt" in v.http.get("/desk/1?sent=1").text
    assert "/desk/1" not in v.http.get("/desk").text  # no longer open
    assert "/desk/1" in v.http.get("/desk?status=answered").text


def test_an_empty_answer_is_refused_and_nothing_is_sent(run: WebRun, world: World) -> None:
    v = _visitor(run, "kari")
    response = v.post("/desk/1/answer", {"answer": "   ", "nonce": "n1"})
    assert response.status_code == 400
    assert "the answer is empty" in response.text
    with world.factory() as session:
        assert session.get_one(DeskQuery, 1).status == QueryStatus.OPEN


def test_closing_without_answer_and_reopening_when_the_respondent_writes(
        run: WebRun, world: World) -> None:
    v = _visitor(run, "kari")
    assert v.post("/desk/2/close").status_code == 303
    with world.factory() as session:
        assert session.get_one(DeskQuery, 2).status == QueryStatus.CLOSED
    v.post("/desk/1/answer", {"answer": "Ring meg.", "nonce": "n2"})
    from web_support import invitation_bytes
    again = compose_reply(invitation_bytes(world.factory, world.settings, 1),
                          "Takk, men hvem betaler?", style="gmail_nb",
                          from_address="leder0@kommune0.example", from_name="Leder", now=NOW)
    deliver(world.factory, again, "test:again")
    assert world.dispatcher.handle_next() is not None
    with world.factory() as session:
        queries = session.scalars(select(DeskQuery).where(
            DeskQuery.invitation_id == 1)).all()
    assert len(queries) == 1  # the answered one is open again, not a second query
    assert queries[0].status == QueryStatus.OPEN
    with world.factory() as session:
        notices = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "desk_notice", OutboxMessage.recipient == DESK)).all()
    assert len(notices) == 3  # the reopened question is told to the desk again
    assert "hvem betaler" in queries[0].text
    assert "Hvem kan jeg kontakte" in queries[0].text


def test_canned_replies_are_kept_and_inserted(run: WebRun, world: World) -> None:
    v = _visitor(run, "kari")
    assert v.post("/desk/canned", {"title": "Hvem svarer", "lang": "nb",
                                   "text": "Lederen av virksomheten svarer."}).status_code == 303
    page = v.http.get("/desk/canned")
    assert "Lederen av virksomheten svarer." in page.text
    assert v.post("/desk/canned", {"id": "1", "title": "Hvem svarer", "lang": "nb",
                                   "text": "Den som leder enheten svarer."}).status_code == 303
    filled = v.http.get("/desk/1?canned=1").text
    assert "Den som leder enheten svarer.</textarea>" in filled
    assert v.post("/desk/canned/1/delete").status_code == 303
    assert "Den som leder enheten" not in v.http.get("/desk/canned").text
    with world.factory() as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert actions.count("canned reply saved") == 2
    assert "canned reply deleted" in actions


def _desk_notice(world: World) -> bytes:
    """The desk's mail about the first question (queued by the dispatcher when it came)."""
    now = NOW + dt.timedelta(hours=2)
    assert notify_desk(world.factory, world.settings, world.surveys, now=now) == 0
    with world.factory() as session:
        row = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "desk_notice").order_by(OutboxMessage.id)).first()
        assert row is not None
        assert row.recipient == DESK
        mail = OutgoingMail.from_payload(row.payload or {})
        return render(mail, message_id=row.message_id or "", settings=world.settings.email,
                      now=now).as_bytes()


def test_each_new_question_is_mailed_to_the_desk_with_who_asks(world: World) -> None:
    with world.factory() as session:
        notices = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "desk_notice")).all()
        assert [n.recipient for n in notices] == [DESK, DESK]
        assert all(q.notified_at is not None for q in session.scalars(select(DeskQuery)))
    raw = _desk_notice(world)
    message = email.message_from_bytes(raw, policy=default_policy)
    assert str(message["Subject"]).startswith("Spørsmål til kontaktpersonen")
    assert "List-Unsubscribe" not in message
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Leder Nummer0" in text
    assert "Kommune0 kommune" in text
    assert "Hvem kan jeg kontakte om dette?" in text
    assert "spørsmål 1:" in text
    assert "leder0@kommune0.example" not in raw.decode("utf-8", "replace")
    with world.factory() as session:
        key = session.get_one(DeskQuery, 1).reply_key
    assert key is not None
    assert key in str(message["Reply-To"])


def test_the_contact_persons_email_reply_reaches_the_respondent(world: World) -> None:
    notice = _desk_notice(world)
    reply = compose_reply(notice, "Det er rådmannen som vet dette. Hilsen Kari",
                          style="outlook_nb", from_address=DESK, from_name="Kari Nordmann",
                          now=NOW + dt.timedelta(hours=3))
    deliver(world.factory, reply, "test:desk-reply")
    assert world.dispatcher.handle_next() == "desk:answered"
    with world.factory() as session:
        query = session.get_one(DeskQuery, 1)
        answer = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "desk_reply")).one()
    assert query.status == QueryStatus.ANSWERED
    assert query.answered_by == f"email:{DESK}"
    assert answer.recipient == "leder0@kommune0.example"
    mail = OutgoingMail.from_payload(answer.payload or {})
    assert "rådmannen som vet dette" in mail.prompts[0]
    assert "Hvem kan jeg kontakte" not in mail.prompts[0]  # the quoted notice is trimmed
    assert mail.in_reply_to is not None


def test_a_reply_to_the_desk_mail_from_another_address_is_quarantined(world: World) -> None:
    notice = _desk_notice(world)
    forged = compose_reply(notice, "Svar fra en annen", style="gmail_nb",
                           from_address="someone@else.example", from_name="X",
                           now=NOW + dt.timedelta(hours=3))
    deliver(world.factory, forged, "test:forged")
    assert world.dispatcher.handle_next() == "quarantined:desk_sender"
    with world.factory() as session:
        assert session.get_one(DeskQuery, 1).status == QueryStatus.OPEN
        assert session.scalar(select(func.count()).where(
            OutboxMessage.kind == "desk_reply")) == 0


# --- the operator's actions ---------------------------------------------------------------


def test_a_dead_message_is_replayed(run: WebRun, world: World) -> None:
    v = _visitor(run, "ola")
    page = v.http.get("/outbox")
    assert "mailbox full for a week" in page.text
    assert v.post("/outbox/replay", {"id": "10000"}).status_code == 303  # no such row
    with world.factory() as session:
        dead = session.scalars(select(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.DEAD)).one()
    assert v.post("/outbox/replay", {"id": str(dead.id)}).headers["location"] == \
        "/outbox?replayed=1"
    with world.factory() as session:
        assert session.get_one(OutboxMessage, dead.id).status == OutboxStatus.QUEUED
        assert session.scalars(select(AuditEvent.target).where(
            AuditEvent.action == "outbox replayed")).all()[-1] == f"outbox {dead.id}"


def test_the_quarantine_shows_headers_downloads_releases_and_discards(
        run: WebRun, world: World) -> None:
    v = _visitor(run, "ola")
    with world.factory() as session:
        stray = session.scalars(select(InboxMessage).where(
            InboxMessage.status == InboxStatus.FAILED)).one()
    page = v.http.get("/quarantine")
    assert "Et brev uten nøkkel" in page.text
    assert "no_token" in page.text
    raw = v.http.get(f"/quarantine/{stray.id}/raw")
    assert raw.status_code == 200
    assert b"Hei, hva er dette?" in raw.content
    assert raw.headers["content-type"].startswith("message/rfc822")
    assert v.post(f"/quarantine/{stray.id}/release").status_code == 303
    with world.factory() as session:
        assert session.get_one(InboxMessage, stray.id).status == InboxStatus.RECEIVED
    assert world.dispatcher.handle_next() == "quarantined:no_token"
    assert v.post(f"/quarantine/{stray.id}/discard").status_code == 303
    with world.factory() as session:
        row = session.get_one(InboxMessage, stray.id)
        assert row.status == InboxStatus.IGNORED
        assert row.raw is None


def test_an_operator_resends_the_page_corrects_an_address_and_stops(
        run: WebRun, world: World) -> None:
    v = _visitor(run, "ola")
    assert v.post("/invitation/4/resend").headers["location"] == "/respondent/4?done=1"
    with transaction(world.factory) as session:
        session.get_one(Invitation, 5).status = InvitationStatus.BOUNCED
    moved = v.post("/invitation/5/address", {"email": "ny.leder@kommune4.example"})
    assert moved.headers["location"] == "/respondent/5?done=1"
    taken = v.post("/invitation/6/address", {"email": "leder0@kommune0.example"})
    assert "error=" in taken.headers["location"]
    assert v.post("/invitation/6/stop").status_code == 303
    with world.factory() as session:
        resent = session.scalars(select(OutboxMessage).where(
            OutboxMessage.idempotency_key.like("resend:4:%"))).one()
        readdressed = session.scalars(select(OutboxMessage).where(
            OutboxMessage.invitation_id == 5, OutboxMessage.idempotency_key.like(
                "readdress:%"))).one()
        five = session.get_one(Invitation, 5)
        six = session.get_one(Invitation, 6)
        actions = session.scalars(select(AuditEvent.action)).all()
    assert resent.recipient == "leder3@kommune3.example"
    assert readdressed.recipient == "ny.leder@kommune4.example"
    assert five.status == InvitationStatus.INVITED
    assert six.status == InvitationStatus.OPTED_OUT
    assert {"page sent again", "address corrected", "contact stopped"} <= set(actions)
    timeline = v.http.get("/respondent/6").text
    assert "avmeldt (stoppet av en operatør)" in timeline


def test_stuck_and_bounced_are_listed_for_follow_up(world: World) -> None:
    with transaction(world.factory) as session:
        session.get_one(Invitation, 3).status = InvitationStatus.STARTED
        session.get_one(Invitation, 3).last_contact_at = NOW - dt.timedelta(days=10)
        session.get_one(Invitation, 6).status = InvitationStatus.BOUNCED
    with WebRun(context(world)) as running:
        rows = _csv(_visitor(running, "ola").http.get("/attention?format=csv").text)
    stuck = _block(rows, "Står fast (ikke svart på 7 dager)")
    bounced = _block(rows, "Bounce: trenger ny adresse eller erstatter")
    assert [r[0] for r in stuck[1:]] == ["Leder Nummer2"]
    assert [r[1] for r in bounced[1:]] == ["leder5@kommune5.example"]



def test_a_long_list_shows_its_first_rows_and_the_csv_has_all(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.web.pages import delivery
    monkeypatch.setattr(delivery, "_PAGE_ROWS", 2)
    with transaction(world.factory) as session:
        for n in (2, 3, 4, 5):
            session.get_one(Invitation, n).status = InvitationStatus.BOUNCED
    with WebRun(context(world)) as running:
        v = _visitor(running, "ola")
        html = v.http.get("/attention").text
        rows = _csv(v.http.get("/attention?format=csv").text)
    assert "de 2 første vises; alle står i CSV-fila" in html
    assert html.count("/respondent/") == 2
    bounced = _block(rows, "Bounce: trenger ny adresse eller erstatter")
    assert len(bounced) == 1 + 4

def test_health_shows_traffic_queues_and_an_alert_when_sending_is_down(world: World) -> None:
    from storage.outbox import mark_retry
    with transaction(world.factory) as session:
        row = session.scalars(select(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.DEAD)).one()
        row.status = OutboxStatus.QUEUED
        mark_retry(session, row.id, now=NOW + dt.timedelta(minutes=5), reason="421 busy")
        row.next_attempt_at = NOW + dt.timedelta(minutes=6)
    with WebRun(context(world)) as running:
        page = _visitor(running, "ola").http.get("/health").text
    assert "E-post kommer ikke ut" in page
    assert "outbox email" in page
    assert "Sist sendt" in page


def test_the_audit_log_is_for_admins(run: WebRun) -> None:
    v = _visitor(run, "admin")
    page = v.http.get("/audit")
    assert page.status_code == 200
    assert "logged in" in page.text
    assert "user added" in page.text


# --- no answers, anywhere -----------------------------------------------------------------


def test_no_page_for_any_role_shows_an_answer(run: WebRun, world: World) -> None:
    with world.factory() as session:
        stored = [value for value in session.scalars(select(Answer.value))]
    assert PRIVATE_TEXT in stored
    assert PRIVATE_NUMBER in stored
    # An option id ("helse") is also a stratum's name on the identity side: what must not
    # show is what only an answer holds (free text, numbers).
    options = {o.id for item in world.surveys[SURVEY].questionnaire.items for o in item.options}
    secrets = [str(v) for v in stored
               if isinstance(v, str | int) and len(str(v)) >= 5 and v not in options]
    assert set(secrets) == {PRIVATE_TEXT, str(PRIVATE_NUMBER)}
    pages = (OPERATOR_PAGES + DESK_PAGES + ("/audit", "/respondent/3", "/desk/1?canned=1"))
    for name in ("ola", "kari", "admin"):
        v = _visitor(run, name)
        for path in pages:
            for suffix in ("", "&format=csv" if "?" in path else "?format=csv"):
                body = v.http.get(path + suffix).text
                for secret in secrets:
                    assert secret not in body, (name, path + suffix, secret)


def test_the_interface_can_be_english_one_language_per_page(world: World) -> None:
    from bot.config import WebSettings
    with WebRun(context(world, web=WebSettings(lang="en"))) as running:
        v = running.visitor("admin")
        pages = {path: v.http.get(path).text for path in OPERATOR_PAGES + DESK_PAGES}
    assert all(response for response in pages.values())
    assert '<html lang="en">' in pages["/dashboard"]
    assert "How far they have got" in pages["/dashboard"]
    assert "Download as CSV" in pages["/log"]
    for path, html in pages.items():
        for norwegian in ("Last ned som CSV", "Logg ut", "Hvor langt", "Leveringslogg"):
            assert norwegian not in html, (path, norwegian)


def test_a_digest_holds_the_desks_mail_until_the_digest_hour(tmp_path: Path) -> None:
    from bot.config import DeskSettings
    from bot.desk.notify import next_digest
    world = web_world(tmp_path)
    settings = world.settings.model_copy(update={"desk": DeskSettings(
        notify=DESK, notify_mode="digest", digest_at="08:00")})
    with transaction(world.factory) as session:
        for query in session.scalars(select(DeskQuery)):
            query.notified_at = None
        session.execute(OutboxMessage.__table__.delete().where(
            OutboxMessage.kind == "desk_notice"))
    now = dt.datetime(2019, 10, 16, 12, 0, tzinfo=dt.UTC)  # 14:00 in Oslo
    assert notify_desk(world.factory, settings, world.surveys, now=now) == 2
    due = next_digest("08:00", now)
    assert due == dt.datetime(2019, 10, 17, 6, 0, tzinfo=dt.UTC)  # 08:00 CEST next morning
    with world.factory() as session:
        held = session.scalars(select(OutboxMessage.next_attempt_at).where(
            OutboxMessage.kind == "desk_notice")).all()
    assert [h.replace(tzinfo=dt.UTC) for h in held] == [due, due]
