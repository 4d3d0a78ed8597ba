"""What every page needs: the settings, the database, the surveys, the clock, the words."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from bot.config import Settings
from bot.conversation.outgoing import SurveyContext
from bot.web.snapshots import Snapshots
from bot.web.texts import translator
from storage.answers import AnswerStore


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class WebContext:
    """The application's state (one per app)."""

    settings: Settings
    factory: sessionmaker[Session]
    surveys: Mapping[str, SurveyContext]
    store: AnswerStore
    clock: Callable[[], dt.datetime] = utc_now
    #: Called after a page queued outbox rows (the running service wakes its senders).
    on_queued: Callable[[], None] | None = None
    t: Callable[..., str] = field(init=False)
    #: The dashboard's counts per survey, shared by every operator for one refresh.
    figures: Snapshots[object] = field(init=False)

    def __post_init__(self) -> None:
        self.t = translator(self.settings.web.lang)
        self.figures = Snapshots(self.settings.web.refresh_seconds)

    @property
    def https(self) -> bool:
        url = self.settings.web.public_url or ""
        return url.startswith("https://")


def context_of(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx
