"""The log filter masks addresses, tokens and chat ids whatever a log call passes it."""

from __future__ import annotations

import logging

import pytest

from bot.logs import RedactingFilter, redact
from storage.tokens import new_token


def test_redact_masks_addresses_tokens_and_chat_ids() -> None:
    """Each kind of identifier is replaced; ordinary words survive."""
    token = new_token()
    line = f"reply from kari.nordmann@baerum.kommune.no to svar+{token}@x.no chat_id=12345 ok"
    masked = redact(line)
    assert "kari.nordmann" not in masked
    assert token not in masked
    assert "12345" not in masked
    assert masked.startswith("reply from <address> to <address> chat_id=<id> ok")


def test_filter_rewrites_formatted_arguments(caplog: pytest.LogCaptureFixture) -> None:
    """Arguments are merged and masked before any handler sees them."""
    logger = logging.getLogger("svarbot.test")
    handler_filter = RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO):
            logger.info("sent to %s", "une.tangen@ks.no")
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert caplog.messages == ["sent to <address>"]


def test_redact_masks_a_bot_token_in_a_bot_api_url() -> None:
    """A Bot API URL carries the bot's token: masked wherever it appears."""
    line = ("HTTP Request: POST http://127.0.0.1:8081/bot123456789:AAE-test_token_for_the_fake"
            "_0123/getUpdates \"HTTP/1.1 200 OK\"")
    masked = redact(line)
    assert "AAE-test_token" not in masked
    assert "/bot<bot-token>/getUpdates" in masked


def test_configure_keeps_http_clients_to_warnings() -> None:
    """httpx logs every request URL at INFO (the bot token is in it): only warnings pass."""
    from bot.logs import configure

    root = logging.getLogger()
    saved = root.handlers, root.level
    try:
        configure("INFO")
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
        assert logging.getLogger("bot.channels.telegram").isEnabledFor(logging.INFO)
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        for name in ("httpx", "httpcore", "telegram", "aiohttp.access"):
            logging.getLogger(name).setLevel(logging.NOTSET)
