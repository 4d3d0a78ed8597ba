"""Heartbeats: when each part of the running service last did its work.

Written by the running service (the leader's clock, the IMAP reader, the Telegram poller)
and read by the dashboard's health page and the alert check. One row per part, overwritten:
a heartbeat is a fact about now, not a history.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.db import transaction
from storage.schema import Heartbeat

log = logging.getLogger(__name__)


def beat(session: Session, name: str, *, now: dt.datetime, detail: str = "") -> None:
    """Record that `name` worked at `now`."""
    row = session.get(Heartbeat, name)
    if row is None:
        session.add(Heartbeat(name=name, at=now, detail=detail[:200]))
    else:
        row.at, row.detail = now, detail[:200]


def heartbeats(session: Session) -> dict[str, Heartbeat]:
    """Every part's last heartbeat, by name."""
    return {row.name: row for row in session.scalars(select(Heartbeat))}


class Pulse:
    """Writes `name`'s heartbeat, at most once every `every` seconds (a poll loop may call it
    every second); a database hiccup is logged, never raised into the caller's loop."""

    def __init__(self, factory: sessionmaker[Session], name: str, *, detail: str = "",
                 every: float = 30.0) -> None:
        self._factory = factory
        self.name = name
        self.detail = detail
        self.every = every
        self._last = -float("inf")

    def __call__(self, now: dt.datetime | None = None) -> None:
        if time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        try:
            with transaction(self._factory) as session:
                beat(session, self.name, now=now or dt.datetime.now(dt.UTC), detail=self.detail)
        except Exception:  # the heartbeat must never stop the part it reports on
            log.warning("heartbeat %s could not be written", self.name, exc_info=True)
