"""Arbitrary update JSON, callback data and text into the Telegram channel: nothing raises,
every update is a reading or unreadable with a reason, and through the dispatcher every row
ends processed, ignored or quarantined.

The inbox keeps what the Bot API sent, or what anyone posted to the webhook: the reader must
take any JSON (Hypothesis draws it), real update shapes with fields missing or of the wrong
type, huge and odd text, forged and over-long callback data, and bytes that are no JSON.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, add_people

from bot.channels.base import Reading, Unreadable, Verdict
from bot.channels.registry import configured_channels
from bot.channels.telegram.render import item_key, read_tap
from bot.channels.telegram.updates import read_update
from bot.config import Settings, SurveySettings, TelegramSettings
from bot.conversation.dispatch import Dispatcher
from bot.conversation.outgoing import SurveyContext, others_than, queue_invitations
from flows.loader import load_shipped
from flows.session import from_json
from storage.answers import AnswerStore, LinkKey
from storage.db import transaction
from storage.identity import ensure_telegram_start
from storage.inbox import store_inbound
from storage.schema import InboxEvent, InboxMessage, InboxStatus, Invitation

NOW = dt.datetime(2019, 10, 15, 9, 0, tzinfo=dt.UTC)
SURVEY = "ordforer-2020"
MAYOR = 4242
#: Every reason `read_update` may give for an update it cannot read.
REASONS = frozenset({"too_large", "too_deep", "not_json", "not_an_update", "too_long"})


def _read(raw: bytes) -> Reading | None:
    """The reading, or None for an update unreadable with a known reason; anything else
    (another exception, a reason nobody documented) fails the test."""
    try:
        reading = read_update(raw)
    except Unreadable as exc:
        reason = exc.reason
    else:
        reason = None
    if reason is not None:
        assert reason in REASONS, reason
        return None
    assert isinstance(reading, Reading)
    assert reading.verdict in set(Verdict)
    for text in (reading.text, reading.start or "", reading.sender or ""):
        assert "\x00" not in text
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text), "a lone surrogate"
        text.encode("utf-8")
    return reading


# --- update shapes ---------------------------------------------------------------------------

def _chat(user: int = MAYOR) -> dict[str, Any]:
    return {"id": user, "type": "private", "first_name": "Ola"}


def _user(user: int = MAYOR) -> dict[str, Any]:
    return {"id": user, "is_bot": False, "first_name": "Ola", "language_code": "nb"}


def _message(text: str, user: int = MAYOR, update_id: int = 1) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": 10, "date": 1571130000, "chat": _chat(user), "from": _user(user),
        "text": text}}


def _tap(data: str, keyboard: list[list[dict[str, Any]]] | None = None, user: int = MAYOR,
         update_id: int = 2) -> dict[str, Any]:
    message: dict[str, Any] = {"message_id": 11, "date": 1571130000, "chat": _chat(user),
                               "from": {"id": 1, "is_bot": True, "first_name": "Bot"},
                               "text": "1. Spørsmål"}
    if keyboard is not None:
        message["reply_markup"] = {"inline_keyboard": keyboard}
    return {"update_id": update_id, "callback_query": {
        "id": "4382bfdwdsb323b2d9", "from": _user(user), "chat_instance": "-1",
        "data": data, "message": message}}


_KEY = item_key("q1")
_TOGGLES = [[{"text": f"Valg {k}", "callback_data": f"t:{_KEY}:0:{k}"}] for k in range(3)] + [
    [{"text": "Ferdig", "callback_data": f"d:{_KEY}:0"}]]
SHAPES: dict[str, dict[str, Any]] = {
    "text": _message("1: ja"),
    "start": _message("/start abcdefghijklmnopqrstuvwxyz012345"),
    "command": _message("/hjelp@svarbot_demo_bot"),
    "by email": _message("/epost"),
    "edited": {"update_id": 3, "edited_message": _message("2")["message"]},
    "photo": {"update_id": 4, "message": {**_message("")["message"], "text": None,
                                          "photo": [{"file_id": "x"}]}},
    "group": {"update_id": 5, "message": {**_message("hei")["message"],
                                          "chat": {"id": -100, "type": "group"}}},
    "answer tap": _tap(f"a:{_KEY}:3"),
    "toggle tap": _tap(f"t:{_KEY}:0:1", _TOGGLES),
    "done tap": _tap(f"d:{_KEY}:5", _TOGGLES),
    "member": {"update_id": 6, "my_chat_member": {"chat": _chat(), "from": _user()}},
}

#: Values a field may be given instead of its own: wrong types, edges of the integer range,
#: odd and huge text, forged callback data.
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63, -(2**63), 10**30, 1.5, float("inf"), "", " ", "\x00",
    "\ud800", "\udfff x", "a\u202eb", "\u200b", "0" * 5000, "x" * 5000, "²", "٣", [], [[]],
    [1, "a", None], {}, {"id": "x"}, {"inline_keyboard": 5}, {"inline_keyboard": [5, "x", [5]]},
    "t:abcd:0:²", "t:abcd:0:99999999999999999999", "t:abcd:-1:0", "t:abcd:0x10:1",
    "t:abcd:ffffffffffffffffff:1", "d:abcd:", "d:abcd:1_0", "a:", "a::", "a:x:" + "y" * 500,
    ":::::", "t:" + ":" * 100, "/start " + "a" * 4000, "/start \x00", "/", "/@", "/start@",
    "text " * 2000,
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `value` (dictionary keys and list indexes)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found.extend(_paths(inner, (*prefix, key)))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found.extend(_paths(inner, (*prefix, index)))
    return found


def _edit(update: dict[str, Any], path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value if action == "replace" else update
    parent: Any = update
    for step in path[:-1]:
        parent = parent[step]
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return update


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
        st.sampled_from(["update_id", "message", "edited_message", "callback_query", "chat",
                         "from", "id", "type", "text", "data", "reply_markup",
                         "inline_keyboard", "callback_data", "message_id", "language_code"])
        | st.text(max_size=10), inner, max_size=6),
    max_leaves=30,
)


@st.composite
def mutated_updates(draw: st.DrawFn) -> bytes:
    """A real update shape with a few fields deleted or replaced by odd values or any JSON."""
    update = copy.deepcopy(SHAPES[draw(st.sampled_from(sorted(SHAPES)))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(update) if isinstance(update, (dict, list)) else [()]
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["delete", "replace", "replace"]))
        value = copy.deepcopy(draw(st.sampled_from(ODD_VALUES) | json_values))
        update = _edit(update, path, action, value) if isinstance(update, dict) else value
    return json.dumps(update).encode()


raw_updates = st.one_of(
    mutated_updates(),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.sampled_from([b"[" * 100_000, b'{"a":' * 100_000, b"\xff\xfe{", b"1" * 5000,
                     b"{" + b'"x":1,' * 50_000 + b'"y":2}',
                     json.dumps(_message("x" * 5000)).encode(),
                     json.dumps(_message("ja")).encode("utf-16")]),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_updates)
def test_any_update_is_a_reading_or_unreadable(raw: bytes) -> None:
    _read(raw)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=100), st.lists(st.lists(st.tuples(st.text(max_size=20),
                                                          st.text(max_size=70)), max_size=4),
                                       max_size=4))
def test_any_callback_data_on_any_keyboard_is_a_tap_or_nothing(
        data: str, keyboard: list[list[tuple[str, str]]]) -> None:
    tap = read_tap(data, keyboard)
    assert tap is None or isinstance(tap.item, str)


#: Updates that once raised from the reader, or were read into values the database refuses.
REGRESSIONS: dict[str, tuple[bytes, str]] = {
    # TypeError: iterating over a keyboard row that is a number.
    "keyboard row not a list": (json.dumps(_tap(f"t:{_KEY}:0:1", [[], 5])).encode(), "ignore"),
    # ValueError: "²" is a digit to str.isdigit and no number to int.
    "option '²' in the data": (json.dumps(_tap(f"t:{_KEY}:0:²", _TOGGLES)).encode(), "ignore"),
    "option '²' on the keyboard": (json.dumps(_tap(f"t:{_KEY}:0:1", [[
        {"text": "x", "callback_data": f"t:{_KEY}:0:²"}]])).encode(), "ignore"),
    # RecursionError in json.loads.
    "JSON 100,000 deep": (b"[" * 100_000, "unreadable"),
    # A chat id past 64 bits would reach the database's BIGINT (OverflowError on binding).
    "chat id of 10**30": (json.dumps(_message("1", user=10**30)).encode(), "ignore"),
    "chat id true": (json.dumps(_message("1", user=True)).encode(), "ignore"),  # type: ignore[arg-type]
    # Callback data longer than Telegram carries is no button of ours.
    "callback data of 5,000 bytes": (json.dumps(_tap(f"a:{_KEY}:" + "3" * 5000)).encode(),
                                     "ignore"),
    # Longer than any message Telegram delivers.
    "text of a megabyte": (json.dumps(_message("ja " * 350_000)).encode(), "unreadable"),
    # NUL and lone surrogates (which no text column takes) in the text.
    "text with NUL and a lone surrogate": (json.dumps(_message("1: ja\x00 \ud800")).encode(),
                                           "answer"),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_updates_that_once_broke_the_reader(name: str) -> None:
    raw, expected = REGRESSIONS[name]
    reading = _read(raw)
    assert (str(reading.verdict) if reading is not None else "unreadable") == expected


def test_a_tap_keeps_working() -> None:
    """What the guards must not break: a toggle, a "done" and an answer tap."""
    toggled = read_update(json.dumps(_tap(f"t:{_KEY}:0:1", _TOGGLES)).encode())
    assert toggled.reason == "toggle"
    assert toggled.item == _KEY
    done = read_update(json.dumps(_tap(f"d:{_KEY}:5", _TOGGLES)).encode())
    assert done.text == "1, 3"
    answer = read_update(json.dumps(_tap(f"a:{_KEY}:vet ikke")).encode())
    assert answer.verdict is Verdict.ANSWER
    assert answer.text == "vet ikke"


# --- through the dispatcher -----------------------------------------------------------------

DISPATCHED = 250


def test_the_dispatcher_settles_every_generated_update(factory: sessionmaker[Session]) -> None:
    """Generated updates from a bound chat and from strangers, through the real dispatcher
    with the Telegram channel on SQLite: every row ends processed, ignored or quarantined
    with a reason, and the loop never stops."""
    config = Settings(
        surveys=(SurveySettings(id=SURVEY, questionnaire=SURVEY, contact="Kari, KS"),),
        telegram=TelegramSettings(enabled=True))
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    contexts = {SURVEY: SurveyContext(settings=config.surveys[0],
                                      questionnaire=load_shipped(SURVEY))}
    channels = configured_channels(config)
    with transaction(factory) as session:
        add_people(session, SURVEY, 2)
    with transaction(factory) as session:
        queue_invitations(session, channels["email"], contexts[SURVEY], store, now=NOW,
                          others=others_than(channels, channels["email"]))
    with transaction(factory) as session:
        invitation = session.scalars(select(Invitation).order_by(Invitation.id)).first()
        assert invitation is not None
        start = ensure_telegram_start(session, invitation)
    dispatcher = Dispatcher(session_factory=factory, settings=config, store=store,
                            surveys=contexts, channels=channels,
                            clock=lambda: NOW + dt.timedelta(hours=1))
    stored = 0

    def deliver(raw: bytes) -> None:
        nonlocal stored
        with transaction(factory) as session:
            assert store_inbound(session, channel="telegram", external_id=f"fz:{stored}",
                                 raw=raw, message_id=None, now=NOW) is not None
        stored += 1

    deliver(json.dumps(_message(f"/start {start}")).encode())
    assert dispatcher.handle_next() is not None
    with factory() as session:
        bound = session.get_one(Invitation, invitation.id)
        assert bound.telegram_chat_id == MAYOR
        asked = from_json(bound.session_state or "{}").asked
    key = item_key(asked[0]) if asked else _KEY
    ok_taps = [_tap(f"a:{key}:{n}", update_id=n) for n in range(1, 6)]

    outcomes: list[str] = []
    generate = st.one_of(mutated_updates(), raw_updates, st.sampled_from(
        [json.dumps(u).encode() for u in ok_taps]
        + [json.dumps(_message(t)).encode() for t in ("1", "ja", "hjelp", "tilbake", "status",
                                                      "/epost", "hopp over", "endre 1")]))

    @settings(max_examples=DISPATCHED, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(generate)
    def one(raw: bytes) -> None:
        deliver(raw)
        handled = dispatcher.handle_next()  # must not raise, whatever the update
        assert handled is not None
        outcomes.append(handled)

    one()
    assert dispatcher.handle_next() is None
    with factory() as session:
        rows = session.scalars(select(InboxMessage)).all()
        assert len(rows) == stored
        for row in rows:
            assert row.status != InboxStatus.RECEIVED
            if row.status == InboxStatus.FAILED:
                assert row.error
        finals = session.scalars(select(InboxEvent.inbox_id).where(
            InboxEvent.status.in_(("processed", "ignored", "failed")))).all()
        assert sorted(finals) == sorted(row.id for row in rows)
    assert any(o.startswith("quarantined:") for o in outcomes)
    assert any(o.startswith(("replied:", "processed:")) for o in outcomes)
