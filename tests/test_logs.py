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
