"""A running `svarbot web` on a test database with real traffic, for the web tests.

`web_world` builds the database the way production does: invitations queued and sent, a
respondent's question arriving as a real email reply (read by the dispatcher, opening a desk
query), answers recorded through the anonymised store, a message that died, a message in the
quarantine, and one user per role. `WebRun` serves the application with uvicorn on a free
loopback port in a thread of its own and stops it; `Visitor` is a logged-in HTTP client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, add_people

from bot.channels.email.channel import EmailChannel
from bot.channels.email.clients import compose_reply
from bot.channels.email.compose import OutgoingMail, new_message_id, render
from bot.config import (
    DeskSettings,
    EmailSettings,
    Settings,
    SmtpSettings,
    SurveySettings,
    WebSettings,
)
from bot.conversation.dispatch import Dispatcher
from bot.conversation.outgoing import SurveyContext, queue_invitations
from bot.web.context import WebContext
from bot.web.serve import WebServer
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey, strata_for
from storage.db import session_factory, transaction
from storage.inbox import store_inbound
from storage.migrate import init_database, open_database
from storage.outbox import enqueue, mark_dead, mark_sent
from storage.schema import Invitation, OutboxMessage, Respondent, UserRole
from storage.users import add_user

SURVEY = "virksomhetsleder-2020"
NOW = dt.datetime(2019, 10, 16, 9, 0, tzinfo=dt.UTC)
DESK = "kontakt@ks.example"
PASSWORDS = {"ola": "operator-passord", "kari": "kontakt-passord", "admin": "admin-passordet"}
ROLES = {"ola": "operator", "kari": "contact", "admin": "admin"}
#: What the first respondent asks (with markup that must show as text).
QUESTION = 'Hvem kan jeg kontakte om dette? <script>alert("q")</script>'
#: The second respondent's name (markup that must show as text).
HOSTILE_NAME = 'Per <img src=x onerror=alert("n")> Hansen'
#: Answers recorded for the third respondent: no page may show them.
PRIVATE_TEXT = "Vi innførte XQZ-hemmelig-svar-4711 i fjor"
PRIVATE_NUMBER = 97_531


@dataclass
class World:
    """The test database and how to reach it."""

    factory: sessionmaker[Session]
    settings: Settings
    surveys: dict[str, SurveyContext]
    store: AnswerStore
    dispatcher: Dispatcher
    url: str


def world_settings(db_url: str, smtp_port: int = 8025, **web: object) -> Settings:
    return Settings(
        database={"url": db_url},  # type: ignore[arg-type]
        surveys=(SurveySettings(id=SURVEY, questionnaire=SURVEY, contact="Kari Nordmann, KS",
                                target_rate=0.5),),
        desk=DeskSettings(notify=DESK),
        web=WebSettings(**web),  # type: ignore[arg-type]
        email=EmailSettings(smtp=SmtpSettings(port=smtp_port)))


def invitation_bytes(factory: sessionmaker[Session], settings: Settings,
                     invitation_id: int) -> bytes:
    """The invitation as the respondent's mail client has it (rebuilt: the sent body is gone)."""
    with factory() as session:
        row = session.scalars(select(OutboxMessage).where(
            OutboxMessage.invitation_id == invitation_id,
            OutboxMessage.kind == "invitation")).one()
        invitation = session.get_one(Invitation, invitation_id)
        mail = OutgoingMail(kind="invitation", lang="nb", token=invitation.token,
                            to_address=invitation.email_address or "", to_name="Leder",
                            survey_title="Innovasjonsbarometeret 2020",
                            prompts=("1. Hvilken sektor jobber du i?",))
        return render(mail, message_id=row.message_id or "", settings=settings.email,
                      now=NOW).as_bytes()


def deliver(factory: sessionmaker[Session], raw: bytes, external: str,
            now: dt.datetime = NOW) -> int:
    """Store `raw` in the inbox as the listener would."""
    with transaction(factory) as session:
        message = email.message_from_bytes(raw, policy=default_policy)
        row = store_inbound(session, channel="email", external_id=external, raw=raw,
                            message_id=str(message.get("Message-ID") or "") or None, now=now)
        assert row is not None
        return row.id


#: The world's database, built once per test process and copied for each test.
_TEMPLATE: dict[int, Path] = {}


def web_world(tmp_path: Path, *, people: int = 6, smtp_port: int = 8025) -> World:
    """The database every web test starts from (see the module notes): built once, then a
    fresh copy of the file per test."""
    if people not in _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="svarbot-web-"))
        built = _build_world(folder, people=people)
        built.factory.kw["bind"].dispose()
        _TEMPLATE[people] = folder / "web.db"
    target = tmp_path / "web.db"
    shutil.copyfile(_TEMPLATE[people], target)
    url = f"sqlite:///{target}"
    settings = world_settings(url, smtp_port)
    factory = session_factory(open_database(url))
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    surveys = {SURVEY: SurveyContext(settings=settings.surveys[0],
                                     questionnaire=load_shipped(SURVEY))}
    dispatcher = Dispatcher(session_factory=factory, settings=settings, store=store,
                            surveys=surveys, clock=lambda: NOW + dt.timedelta(hours=1))
    return World(factory, settings, surveys, store, dispatcher, url)


def _build_world(tmp_path: Path, *, people: int) -> World:
    url = f"sqlite:///{tmp_path / 'web.db'}"
    init_database(url)
    factory = session_factory(open_database(url))
    settings = world_settings(url)
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    surveys = {SURVEY: SurveyContext(settings=settings.surveys[0],
                                     questionnaire=load_shipped(SURVEY))}
    with transaction(factory) as session:
        add_people(session, SURVEY, people)
        session.get_one(Respondent, 2).name = HOSTILE_NAME
    with transaction(factory) as session:
        queue_invitations(session, EmailChannel(settings), surveys[SURVEY], store, now=NOW)
    with transaction(factory) as session:
        for row in session.scalars(select(OutboxMessage)):
            mark_sent(session, row.id, now=NOW)
    dispatcher = Dispatcher(session_factory=factory, settings=settings, store=store,
                            surveys=surveys, clock=lambda: NOW + dt.timedelta(hours=1))
    for invitation_id, address in ((1, "leder0@kommune0.example"),
                                   (2, "leder1@kommune1.example")):
        reply = compose_reply(invitation_bytes(factory, settings, invitation_id), QUESTION,
                              style="outlook_nb", from_address=address,
                              from_name="Leder", now=NOW)
        deliver(factory, reply, f"test:question:{invitation_id}")
        assert dispatcher.handle_next() is not None
    with transaction(factory) as session:
        invitation = session.get_one(Invitation, 3)
        respondent = session.get_one(Respondent, invitation.respondent_id)
        store.record(session, survey_id=SURVEY, token=invitation.token,
                     strata=strata_for(respondent),
                     answers={"kommentar": PRIVATE_TEXT, "sektor": "helse",
                              "ansatte": PRIVATE_NUMBER},
                     removed=[], completed=False, today=NOW.date(),
                     questionnaire=surveys[SURVEY].questionnaire)
        # A Message-ID like every email row has, so the message can be sent once replayed.
        dead = enqueue(session, idempotency_key="test:dead", channel="email", kind="page",
                       recipient="leder4@kommune4.example", invitation_id=5,
                       payload=_payload(session, settings, 5),
                       message_id=new_message_id(settings.email), now=NOW)
        assert dead is not None
        session.flush()
        mark_dead(session, dead.id, now=NOW, reason="550 5.1.1 mailbox full for a week")
    stray = EmailMessage()
    stray["From"] = "ukjent@example.org"
    stray["To"] = "svar@svarbot.localhost"
    stray["Subject"] = "Et brev uten nøkkel"
    stray["Message-ID"] = "<stray-1@example.org>"
    stray.set_content("Hei, hva er dette?")
    deliver(factory, stray.as_bytes(), "test:stray")
    assert dispatcher.handle_next() == "quarantined:no_token"
    with transaction(factory) as session:
        for name, role in ROLES.items():
            add_user(session, name, UserRole(role), PASSWORDS[name], actor="test")
    return World(factory, settings, surveys, store, dispatcher, url)


def _payload(session: Session, settings: Settings, invitation_id: int) -> dict[str, object]:
    invitation = session.get_one(Invitation, invitation_id)
    mail = OutgoingMail(kind="page", lang="nb", token=invitation.token,
                        to_address=invitation.email_address or "", to_name="Leder",
                        survey_title="Innovasjonsbarometeret 2020", prompts=("2. Neste?",))
    return mail.to_payload()


class WebRun:
    """`svarbot web` for `ctx` on a free port of 127.0.0.1, in a thread; a context manager."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.server = WebServer(ctx, host="127.0.0.1", port=0)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
        self.error: BaseException | None = None
        #: Clients made for this server (closed when it stops).
        self.visitors: list[Visitor] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.server.run(self._stop, on_ready=lambda _s: self._ready.set())

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test by __enter__
            self.error = exc
            self._ready.set()

    def __enter__(self) -> WebRun:
        self._thread.start()
        if not self._ready.wait(15) or self.error is not None:
            raise RuntimeError(f"svarbot web did not start: {self.error!r}")
        return self

    def visitor(self, name: str | None = None) -> Visitor:
        """A client of this server, logged in as `name` if given."""
        v = Visitor(self.base)
        self.visitors.append(v)
        if name is not None:
            assert v.login(name).status_code == 303
        return v

    def __exit__(self, *exc: object) -> None:
        for v in self.visitors:
            v.close()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "svarbot web did not stop"


def context(world: World, **changes: object) -> WebContext:
    settings = world.settings.model_copy(update=changes) if changes else world.settings
    return WebContext(settings=settings, factory=world.factory, surveys=world.surveys,
                      store=world.store, clock=lambda: NOW + dt.timedelta(hours=2))


class Visitor:
    """An HTTP client of the running app; `login(name)` logs in as one of the test users."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, follow_redirects=False, timeout=20)
        self.csrf = ""

    def login(self, name: str, password: str | None = None) -> httpx.Response:
        form = self.http.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None, form.text
        response = self.http.post("/login", data={
            "name": name, "password": PASSWORDS.get(name, "") if password is None else password,
            "login_token": token.group(1), "next": ""})
        if response.status_code == 303:
            self.csrf = self.csrf_of(self.http.get("/desk" if ROLES[name] == "contact"
                                                   else "/dashboard").text)
        return response

    @staticmethod
    def csrf_of(html: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        return found.group(1) if found else ""

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post(path, data={"csrf": self.csrf, **(data or {})})

    def close(self) -> None:
        self.http.close()
