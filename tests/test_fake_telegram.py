"""The fake Telegram Bot API against python-telegram-bot itself and raw HTTP, on loopback.

The Telegram channel's tests and `svarbot demo` trust this fake to answer as Telegram does, so
every behaviour they rely on is checked here with the real client: PTB must raise the same
exceptions (RetryAfter, Forbidden, BadRequest, Conflict, InvalidToken) it raises in production,
and its Application must run against the fake by polling and by webhook.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import telegram
from aiohttp import web
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.demo.fake_telegram import FakeTelegram, utf16_length

TOKEN = "123456789:AAE-test_token_for_the_fake_0123"  # noqa: S105 - a synthetic bot token
SECRET = "right_secret"  # noqa: S105 - a synthetic webhook secret
WRONG_SECRET = "wrong_secret"  # noqa: S105 - a synthetic webhook secret
ROOT = Path(__file__).resolve().parent.parent
NOW = 1_700_000_000.0


def run(coro: Coroutine[Any, Any, None], timeout: float = 15.0) -> None:
    """Run one test's coroutine in its own loop, with a deadline for the whole test."""
    asyncio.run(asyncio.wait_for(coro, timeout))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without it PTB warns (PTBDeprecationWarning) when it *builds* a RetryAfter, and under
    # filterwarnings=error the warning replaces the RetryAfter.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@asynccontextmanager
async def fake(**kwargs: Any) -> AsyncIterator[FakeTelegram]:
    tg = FakeTelegram(clock=lambda: NOW, **kwargs)
    await tg.start()
    try:
        yield tg
    finally:
        await tg.stop()


@asynccontextmanager
async def raw(tg: FakeTelegram) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{tg.url}/bot{TOKEN}/", trust_env=False,
                                 timeout=10) as client:
        yield client


@asynccontextmanager
async def bot_for(tg: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(TOKEN, base_url=tg.base_url) as bot:
        yield bot


App = Application[Any, Any, Any, Any, Any, Any]


def build_app(tg: FakeTelegram, *handlers: Any) -> App:
    app = ApplicationBuilder().token(TOKEN).base_url(tg.base_url).build()
    for handler in handlers:
        app.add_handler(handler)
    return app


@asynccontextmanager
async def polling(tg: FakeTelegram, *handlers: Any) -> AsyncIterator[App]:
    """An Application driven by hand in this loop, as run_polling would (testing.md §4)."""
    app = build_app(tg, *handlers)
    await app.initialize()
    try:
        assert app.updater is not None
        await app.updater.start_polling(timeout=dt.timedelta(seconds=5))
        await app.start()
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()
    finally:
        await app.shutdown()


# ---------------------------------------------------------------------------- basics


def test_get_me_tokens_and_unknown_methods() -> None:
    async def main() -> None:
        async with fake() as tg, bot_for(tg) as bot, raw(tg) as client:
            assert bot.username == "svarbot_demo_bot"  # from initialize()'s getMe
            me = (await client.get("getMe")).json()
            assert me["ok"] is True
            assert me["result"]["is_bot"] is True
            assert me["result"]["username"] == "svarbot_demo_bot"
            assert [c.method for c in tg.calls()] == ["getMe", "getMe"]

            bad = await client.get(f"{tg.url}/bot123:short/getMe")
            assert bad.status_code == 401
            assert bad.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
            with pytest.raises(InvalidToken):
                async with telegram.Bot("123:short", base_url=tg.base_url):
                    pass

            unknown = await client.post("sendHologram")
            assert unknown.status_code == 404
            assert unknown.json()["description"] == "Not Found"

        async with fake(tokens={TOKEN}) as tg, raw(tg) as client:
            other = "123456789:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
            assert (await client.get(f"{tg.url}/bot{other}/getMe")).status_code == 401
            assert (await client.get("getMe")).status_code == 200

    run(main())


def test_parameters_are_read_as_ptb_and_others_send_them() -> None:
    async def main() -> None:
        async with fake(burst=10) as tg, raw(tg) as client:
            tg.add_chat(42)
            markup = {"inline_keyboard": [[{"text": "1", "callback_data": "q:1"}]]}
            form = await client.post("sendMessage", data={
                "chat_id": "42", "text": "4", "reply_markup": json.dumps(markup)})
            as_json = await client.post("sendMessage", json={"chat_id": 42, "text": "null"})
            multipart = await client.post("sendMessage", data={"chat_id": "42", "text": "true"},
                                          files={"photo": ("a.jpg", b"\xff\xd8", "image/jpeg")})
            query = await client.get("sendMessage", params={"chat_id": "42", "text": "[1]"})
            assert [r.status_code for r in (form, as_json, multipart, query)] == [200] * 4
            params = [c.params for c in tg.calls("sendMessage")]
            assert params[0] == {"chat_id": 42, "text": "4", "reply_markup": markup}
            assert params[1] == {"chat_id": 42, "text": "null"}
            assert params[2]["text"] == "true"
            assert params[2]["photo"]["filename"] == "a.jpg"
            assert params[3] == {"chat_id": 42, "text": "[1]"}
            assert [m.text for m in tg.sent(42)] == ["4", "null", "true", "[1]"]
            assert tg.sent(42)[0].buttons() == [("1", "q:1")]
            assert form.json()["result"]["reply_markup"] == markup

    run(main())


# ---------------------------------------------------------------------------- polling


def test_long_polling_returns_an_injected_message_and_forgets_it_once_confirmed() -> None:
    async def main() -> None:
        async with fake() as tg, raw(tg) as client:
            started = time.monotonic()
            poll = asyncio.create_task(client.post("getUpdates", data={"timeout": "5"}))
            await tg.wait_for("getUpdates", 1)
            update_id = tg.message(42, "Hei", first_name="Kari")
            updates = (await poll).json()["result"]
            assert time.monotonic() - started < 3  # answered by the update, not the timeout
            assert [u["update_id"] for u in updates] == [update_id]
            message = updates[0]["message"]
            assert message["text"] == "Hei"
            assert message["date"] == int(NOW)
            assert message["chat"] == {"id": 42, "type": "private", "first_name": "Kari"}
            assert message["from"]["is_bot"] is False
            assert "entities" not in message

            # Not confirmed yet: the same update again. Confirmed by offset: gone for good.
            again = (await client.post("getUpdates", data={"offset": "0"})).json()["result"]
            assert [u["update_id"] for u in again] == [update_id]
            confirmed = await client.post("getUpdates", data={"offset": str(update_id + 1)})
            assert confirmed.json()["result"] == []
            assert (await client.post("getUpdates")).json()["result"] == []
            assert tg.pending_updates() == []

            # Ids: update ids over the whole fake, message ids per chat.
            second = tg.message(42, "/start abc")
            third = tg.message(7, "/hjelp")
            assert (second, third) == (update_id + 1, update_id + 2)
            assert tg.update(second)["message"]["message_id"] == 2
            assert tg.update(third)["message"]["message_id"] == 1
            assert tg.update(second)["message"]["chat"]["first_name"] == "Kari"  # kept
            limited = (await client.post("getUpdates", data={"limit": "1"})).json()["result"]
            assert [u["update_id"] for u in limited] == [second]
            only_clicks = await client.post(
                "getUpdates", data={"allowed_updates": '["callback_query"]', "timeout": "0.2"})
            assert only_clicks.json()["result"] == []

            # A poll with nothing to give waits for its timeout and returns an empty list.
            started = time.monotonic()
            empty = await client.post("getUpdates", data={
                "offset": str(third + 1), "timeout": "0.3", "allowed_updates": "[]"})
            assert empty.json()["result"] == []
            assert time.monotonic() - started >= 0.25

    run(main())


def test_a_second_getupdates_terminates_the_one_in_flight_with_409() -> None:
    async def main() -> None:
        async with fake() as tg, raw(tg) as client, bot_for(tg) as bot:
            first = asyncio.create_task(client.post("getUpdates", data={"timeout": "5"}))
            await tg.wait_for("getUpdates", 1)
            second = asyncio.create_task(bot.get_updates(timeout=5))
            terminated = await first
            assert terminated.status_code == 409
            assert terminated.json()["description"].startswith(
                "Conflict: terminated by other getUpdates request")
            tg.message(42, "hei")
            assert [u.message.text for u in await second if u.message] == ["hei"]

            # And PTB sees the same as Conflict when it is the one terminated.
            polled = asyncio.create_task(bot.get_updates(offset=10_000, timeout=5))
            await tg.wait_for("getUpdates", 3)
            await client.post("getUpdates", data={"timeout": "0"})
            with pytest.raises(Conflict, match="terminated by other getUpdates"):
                await polled

    run(main())


def test_a_command_handler_sees_start_with_its_payload_and_edits_arrive() -> None:
    async def main() -> None:
        seen: list[tuple[str, list[str]]] = []
        edits: list[str] = []

        async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            assert update.message is not None
            assert update.message.text is not None
            seen.append((update.message.text, list(context.args or [])))
            await update.message.reply_text(f"Velkommen, {update.message.chat.first_name}")

        async def edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            assert update.edited_message is not None
            edits.append(str(update.edited_message.text))

        async with fake() as tg:
            async with polling(tg, CommandHandler("start", start), MessageHandler(
                    filters.UpdateType.EDITED_MESSAGE, edited)):
                tg.message(42, "/start abc_DEF-123", first_name="Ola")
                entity = tg.update(1)["message"]["entities"][0]
                assert entity == {"type": "bot_command", "offset": 0, "length": 6}
                sent = await tg.wait_sent(1, chat_id=42)
                assert seen == [("/start abc_DEF-123", ["abc_DEF-123"])]
                assert sent[0].text == "Velkommen, Ola"
                assert tg.calls("sendMessage")[0].params["chat_id"] == 42
                # (CommandHandler also takes edited messages by default: edit to plain text.)
                tg.edited(42, 1, "hei igjen")
                await tg.wait_until(lambda: edits == ["hei igjen"], what="the edit")
                assert tg.update(2)["edited_message"]["message_id"] == 1
                assert "entities" not in tg.update(2)["edited_message"]
            # Updater.stop() confirms what it handled with a last getUpdates.
            assert tg.pending_updates() == []
            methods = [c.method for c in tg.calls()]
            assert methods[:3] == ["getMe", "deleteWebhook", "getUpdates"]
            assert set(methods) == {"getMe", "deleteWebhook", "getUpdates", "sendMessage"}

    run(main())


def test_a_button_tap_arrives_as_a_callback_query_and_its_answer_is_recorded() -> None:
    async def main() -> None:
        taps: list[tuple[str, int]] = []

        async def ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            assert update.message is not None
            buttons = [InlineKeyboardButton(str(n), callback_data=f"q1:{n}") for n in (1, 2, 3)]
            await update.message.reply_text("Hvor fornøyd er du?",
                                            reply_markup=InlineKeyboardMarkup([buttons]))

        async def tapped(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            query = update.callback_query
            assert query is not None
            assert query.data is not None
            assert query.message is not None
            taps.append((query.data, query.message.message_id))
            await query.answer("Takk!")
            await query.edit_message_text(f"Du valgte {query.data[-1]}")

        async with fake() as tg:
            async with polling(tg, CommandHandler("start", ask), CallbackQueryHandler(tapped)):
                tg.message(42, "/start")
                (question,) = await tg.wait_sent(1, chat_id=42)
                assert question.buttons() == [("1", "q1:1"), ("2", "q1:2"), ("3", "q1:3")]
                keyboard = question.reply_markup
                query_id = tg.click(42, question.message_id, "q1:3")
                await tg.wait_for("editMessageText", 1)
                query = tg.update(2)["callback_query"]
                assert query["chat_instance"]
                assert query["from"]["id"] == 42
                assert query["message"]["reply_markup"] == keyboard
                assert query["message"]["from"]["is_bot"] is True
            assert taps == [("q1:3", question.message_id)]
            (answer,) = tg.answered_callbacks()
            assert answer["callback_query_id"] == query_id
            assert answer["text"] == "Takk!"
            # An edit without reply_markup drops the keyboard, as in Telegram.
            (now,) = tg.sent(42)
            assert (now.text, now.reply_markup, now.edit_date) == ("Du valgte 3", None, int(NOW))

            async with bot_for(tg) as bot:
                with pytest.raises(BadRequest, match="Query is too old"):
                    await bot.answer_callback_query(query_id)  # answered already
                with pytest.raises(BadRequest, match="not modified"):
                    await bot.edit_message_reply_markup(42, now.message_id)
                with pytest.raises(BadRequest, match="not modified"):  # empty is none
                    await bot.edit_message_reply_markup(42, now.message_id,
                                                        reply_markup=InlineKeyboardMarkup([]))
                with pytest.raises(BadRequest, match="not modified"):
                    await bot.edit_message_text("Du valgte 3", 42, now.message_id)
                with pytest.raises(BadRequest, match="Message to edit not found"):
                    await bot.edit_message_text("x", 42, 999)
                assert await bot.delete_message(42, now.message_id)
                assert tg.sent(42)[0].deleted
                with pytest.raises(BadRequest, match="Message to delete not found"):
                    await bot.delete_message(42, now.message_id)
                with pytest.raises(LookupError):
                    tg.click(42, now.message_id, "q1:1")

    run(main())


# ---------------------------------------------------------------------------- Telegram's limits


def test_texts_over_4096_characters_and_empty_texts_are_refused() -> None:
    async def main() -> None:
        async with fake(burst=10, per_chat_per_second=100) as tg, bot_for(tg) as bot:
            tg.add_chat(42)
            assert (await bot.send_message(42, "æ" * 4096)).text == "æ" * 4096
            with pytest.raises(BadRequest, match="Message is too long"):
                await bot.send_message(42, "æ" * 4097)
            # Telegram counts UTF-16 code units: an emoji outside the BMP counts two.
            assert utf16_length("😀" * 2048) == 4096
            await bot.send_message(42, "😀" * 2048)
            with pytest.raises(BadRequest, match="Message is too long"):
                await bot.send_message(42, "😀" * 2048 + "a")
            # The limit is on the text after parsing: HTML tags do not count.
            await bot.send_message(42, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
            with pytest.raises(BadRequest, match="Message text is empty"):
                await bot.send_message(42, "")
            with pytest.raises(BadRequest, match="Message text is empty"):
                await bot.send_message(42, "  \n")
            with pytest.raises(BadRequest, match="Message is too long"):
                await bot.edit_message_text("a" * 4097, 42, 1)
            assert len(tg.sent(42)) == 3
            assert [r.error_code for r in tg.rejections("sendMessage")] == [400] * 4

    run(main())


def test_callback_data_over_64_bytes_is_refused() -> None:
    async def main() -> None:
        async with fake(burst=10) as tg, bot_for(tg) as bot:
            tg.add_chat(42)

            def keyboard(data: str) -> InlineKeyboardMarkup:
                return InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data=data)]])

            await bot.send_message(42, "ok", reply_markup=keyboard("a" * 64))
            await bot.send_message(42, "ok", reply_markup=keyboard("æ" * 32))  # 64 bytes
            with pytest.raises(BadRequest, match="Button_data_invalid"):
                await bot.send_message(42, "no", reply_markup=keyboard("æ" * 33))  # 66 bytes
            with pytest.raises(BadRequest, match="Button_data_invalid"):
                await bot.edit_message_reply_markup(42, 1, reply_markup=keyboard("a" * 65))
            assert [m.text for m in tg.sent(42)] == ["ok", "ok"]
            assert tg.sent(42)[0].buttons() == [("x", "a" * 64)]

    run(main())


def test_429_with_retry_after_beyond_the_overall_limit() -> None:
    async def main() -> None:
        # A stopped monotonic clock: all of these sends fall in one second, however slow the
        # machine (the limits' clock is injectable for this).
        async with fake(per_second=5, monotonic=lambda: 50.0) as tg, raw(tg) as client, \
                bot_for(tg) as bot:
            for chat in range(1, 8):
                tg.add_chat(chat)
            for chat in range(1, 6):
                await bot.send_message(chat, "invitasjon")
            response = await client.post("sendMessage", data={"chat_id": "6", "text": "x"})
            assert response.status_code == 429
            body = response.json()
            retry_after = body["parameters"]["retry_after"]
            assert isinstance(retry_after, int)
            assert retry_after >= 1
            assert body == {"ok": False, "error_code": 429, "parameters": {"retry_after": 1},
                            "description": f"Too Many Requests: retry after {retry_after}"}
            with pytest.raises(RetryAfter) as raised:
                await bot.send_message(7, "invitasjon")
            assert raised.value.retry_after == dt.timedelta(seconds=1)
            stats = tg.stats()
            assert (stats.sends, stats.rejected_429, stats.rejected_overall) == (5, 2, 2)
            assert stats.max_per_second == 5
            assert stats.max_chat_per_second == 1
            assert len(tg.sent()) == 5

    run(main())


def test_429_beyond_a_burst_and_one_a_second_per_chat() -> None:
    async def main() -> None:
        now = [100.0]
        async with fake(burst=3, per_chat_per_second=1.0, monotonic=lambda: now[0]) as tg, \
                bot_for(tg) as bot:
            tg.add_chat(42)
            tg.add_chat(43)
            for n in range(3):
                await bot.send_message(42, f"melding {n}")
            with pytest.raises(RetryAfter) as raised:
                await bot.send_message(42, "en for mye")
            assert raised.value.retry_after == dt.timedelta(seconds=1)
            await bot.send_message(43, "another chat is not held back")
            now[0] += 1.0  # one more a second, sustained
            await bot.send_message(42, "melding 3")
            with pytest.raises(RetryAfter):
                await bot.send_message(42, "too soon")
            now[0] += 0.5
            with pytest.raises(RetryAfter):
                await bot.send_message(42, "still too soon")
            now[0] += 0.5
            await bot.send_message(42, "melding 4")
            stats = tg.stats()
            assert stats.rejected_per_chat == 3
            assert stats.rejected_overall == 0
            assert stats.max_chat_per_second == 3  # the burst
            assert stats.min_chat_gap == 0.0
            assert stats.sends_per_chat == {42: 5, 43: 1}
            rejected = tg.rejections("sendMessage")
            assert [r.error_code for r in rejected] == [429, 429, 429]
            assert rejected[0].params["text"] == "en for mye"

    run(main())


def test_a_blocked_user_is_forbidden_and_an_unknown_chat_is_not_found() -> None:
    async def main() -> None:
        async with fake() as tg, bot_for(tg) as bot:
            tg.message(42, "hei")
            await bot.send_message(42, "takk")
            tg.block(42)
            with pytest.raises(Forbidden, match="bot was blocked by the user"):
                await bot.send_message(42, "påminnelse")
            tg.message(42, "/start")  # writing again unblocks
            await bot.send_message(42, "velkommen tilbake")
            with pytest.raises(BadRequest, match="Chat not found"):
                await bot.send_message(999, "hvem?")
            tg.forget(42)
            with pytest.raises(BadRequest, match="Chat not found"):
                await bot.send_message(42, "borte")
            assert [m.text for m in tg.sent()] == ["takk", "velkommen tilbake"]
            codes = [(r.error_code, r.description) for r in tg.rejections()]
            assert codes == [(403, "Forbidden: bot was blocked by the user"),
                             (400, "Bad Request: chat not found"),
                             (400, "Bad Request: chat not found")]

    run(main())


def test_commands_and_session_methods() -> None:
    async def main() -> None:
        async with fake() as tg, bot_for(tg) as bot:
            commands = [telegram.BotCommand("start", "start"), telegram.BotCommand("hjelp", "?")]
            assert await bot.set_my_commands(commands)
            assert await bot.set_my_commands([("help", "help")], language_code="en")
            assert [c.command for c in await bot.get_my_commands()] == ["start", "hjelp"]
            assert [c.command for c in await bot.get_my_commands(language_code="en")] == ["help"]
            with pytest.raises(BadRequest, match="Bot_command_invalid"):
                await bot.set_my_commands([("Start!", "x")])
            assert await bot.delete_my_commands()
            assert await bot.get_my_commands() == ()
            tg.add_chat(42)
            assert await bot.send_chat_action(42, "typing")
            assert await bot.log_out()
            assert await bot.close()

    run(main())


# ---------------------------------------------------------------------------- webhooks


@asynccontextmanager
async def hook_server(handler: Callable[[web.Request], Awaitable[web.Response]],
                      ) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


def test_the_webhook_gets_each_update_with_the_secret_and_retries_until_2xx() -> None:
    async def main() -> None:
        received: list[tuple[str | None, dict[str, Any]]] = []

        async def handler(request: web.Request) -> web.Response:
            received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"),
                             await request.json()))
            return web.Response(status=500 if len(received) == 1 else 200)

        async with fake() as tg, hook_server(handler) as url, bot_for(tg) as bot:
            tg.message(42, "before the webhook")
            assert await bot.set_webhook(url, secret_token=SECRET,
                                         drop_pending_updates=True, max_connections=5)
            info = await bot.get_webhook_info()
            assert (info.url, info.pending_update_count, info.max_connections) == (url, 0, 5)
            with pytest.raises(Conflict, match="webhook is active"):
                await bot.get_updates()

            update_id = tg.message(42, "hei")
            await tg.wait_until(lambda: len(received) == 2 and not tg.pending_updates(),
                                what="the retried delivery")
            assert [secret for secret, _ in received] == [SECRET] * 2
            assert [body["update_id"] for _, body in received] == [update_id] * 2
            assert received[0][1]["message"]["text"] == "hei"
            assert [d.status for d in tg.webhook_deliveries()] == [500, 200]
            info = await bot.get_webhook_info()
            assert info.last_error_message is not None
            assert "500" in info.last_error_message

            with pytest.raises(BadRequest, match="unallowed characters"):
                await bot.set_webhook(url, secret_token=SECRET + "!")
            assert await bot.delete_webhook()
            tg.message(42, "by polling again")
            assert [u.message.text for u in await bot.get_updates() if u.message] == [
                "by polling again"]
            assert len(received) == 2

    run(main())


def test_ptb_webhook_updater_accepts_the_fake_and_refuses_a_wrong_secret() -> None:
    async def main() -> None:
        texts: list[str] = []

        async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            assert update.message is not None
            texts.append(str(update.message.text))
            await update.message.reply_text(f"mottatt: {update.message.text}")

        port = free_port()
        hook = f"http://127.0.0.1:{port}/tg-hook"
        async with fake() as tg:
            app = build_app(tg, MessageHandler(filters.TEXT, echo))
            await app.initialize()
            try:
                assert app.updater is not None
                await app.updater.start_webhook(listen="127.0.0.1", port=port,
                                                url_path="tg-hook", webhook_url=hook,
                                                secret_token=SECRET)
                await app.start()
                try:
                    set_hook = tg.calls("setWebhook")[0].params
                    assert set_hook["url"] == hook
                    assert set_hook["secret_token"] == SECRET
                    tg.message(42, "hei")
                    (reply,) = await tg.wait_sent(1, chat_id=42)
                    assert reply.text == "mottatt: hei"
                    assert texts == ["hei"]
                    assert [d.status for d in tg.webhook_deliveries()] == [200]

                    async with httpx.AsyncClient(trust_env=False) as client:
                        wrong = await client.post(hook, json=tg.update(1), headers={
                            "X-Telegram-Bot-Api-Secret-Token": "wrong"})
                    assert wrong.status_code == 403
                    # The fake with the wrong secret: PTB refuses, the fake keeps retrying.
                    async with bot_for(tg) as bot:
                        await bot.set_webhook(hook, secret_token=WRONG_SECRET)
                        tg.message(42, "ignored")
                        await tg.wait_until(lambda: len(tg.webhook_deliveries()) >= 3,
                                            what="the refused retries")
                        info = await bot.get_webhook_info()
                    assert {d.status for d in tg.webhook_deliveries()[1:]} == {403}
                    assert info.pending_update_count == 1
                    assert info.last_error_message is not None
                    assert "403" in info.last_error_message
                    assert texts == ["hei"]
                finally:
                    await app.updater.stop()
                    await app.stop()
            finally:
                await app.shutdown()

    run(main())


# ---------------------------------------------------------------------------- control API


def test_the_http_control_api() -> None:
    async def main() -> None:
        async with fake(burst=1, monotonic=lambda: 50.0) as tg, bot_for(tg) as bot, \
                httpx.AsyncClient(base_url=f"{tg.url}/_test/", trust_env=False,
                                  timeout=5) as control:
            injected = (await control.post("message", json={
                "user_id": 42, "text": "/start tok", "first_name": "Per"})).json()["result"]
            assert injected == {"update_id": 1, "message_id": 1}
            (update,) = await bot.get_updates()
            assert update.message is not None
            assert update.message.text == "/start tok"
            assert update.message.from_user is not None
            assert update.message.from_user.first_name == "Per"

            markup = InlineKeyboardMarkup([[InlineKeyboardButton("Ja", callback_data="ja")]])
            message = await bot.send_message(42, "Svarer du?", reply_markup=markup)
            clicked = (await control.post("click", json={
                "user_id": 42, "message_id": message.message_id, "data": "ja"})).json()
            (tap,) = await bot.get_updates(offset=update.update_id + 1)
            assert tap.callback_query is not None
            assert tap.callback_query.id == clicked["result"]["callback_query_id"]
            await tap.callback_query.answer("ok")
            callbacks = (await control.get("callbacks")).json()["result"]
            assert [c["text"] for c in callbacks] == ["ok"]

            calls = (await control.get("calls", params={"method": "sendMessage"})).json()
            assert [c["params"]["text"] for c in calls["result"]] == ["Svarer du?"]
            sent = (await control.get("sent", params={"chat_id": "42"})).json()["result"]
            assert sent[0]["reply_markup"] == {"inline_keyboard": [
                [{"text": "Ja", "callback_data": "ja"}]]}
            with pytest.raises(RetryAfter):
                await bot.send_message(42, "burst of one")
            stats = (await control.get("stats")).json()["result"]
            assert (stats["sends"], stats["rejected_429"]) == (1, 1)

            assert (await control.post("block", json={"chat_id": 42})).json()["result"]
            with pytest.raises(Forbidden):
                await bot.send_message(42, "blocked")

            waiting = asyncio.create_task(control.post("wait", json={
                "method": "getMyCommands", "count": 1, "timeout": 5}))
            await tg.wait_for("getUpdates", 2)
            await bot.get_my_commands()
            waited = await waiting
            assert waited.status_code == 200
            assert [c["method"] for c in waited.json()["result"]] == ["getMyCommands"]
            timed_out = await control.post("wait", json={
                "method": "deleteMessage", "count": 1, "timeout": 0.2})
            assert timed_out.status_code == 408
            bad = await control.post("click", json={"user_id": 42, "message_id": 99,
                                                    "data": "x"})
            assert bad.status_code == 400

    run(main())


def test_wait_for_has_a_deadline() -> None:
    async def main() -> None:
        async with fake() as tg:
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="sendMessage"):
                await tg.wait_for("sendMessage", 1, timeout=0.2)
            assert 0.15 < time.monotonic() - started < 2

    run(main())


# ---------------------------------------------------------------------------- its own process


def test_the_standalone_process_answers_get_me_and_stops_on_sigterm() -> None:
    async def main() -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.demo.fake_telegram", "0", "--burst", "1",
            "--per-chat-per-second", "0.01", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
            assert line.startswith("fake telegram listening on http://127.0.0.1:"), line
            base_url = line.split()[-1]
            async with telegram.Bot(TOKEN, base_url=base_url) as bot:
                assert bot.username == "svarbot_demo_bot"
                control = base_url.removesuffix("/bot") + "/_test"
                async with httpx.AsyncClient(trust_env=False) as client:
                    await client.post(f"{control}/message", json={"user_id": 5, "text": "a"})
                    await bot.send_message(5, "one")
                    with pytest.raises(RetryAfter):  # --burst 1 reached the process
                        await bot.send_message(5, "two")
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 5) == 0
            assert b"Traceback" not in await process.stderr.read()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    run(main(), timeout=20)
