"""The configured channels: the one module that knows every channel by name.

The channels themselves never import each other; whoever needs "the channel called X" (the
dispatcher, the campaign, `svarbot run`) asks here.
"""

from __future__ import annotations

from bot.channels.base import Channels
from bot.config import Settings


def configured_channels(settings: Settings) -> Channels:
    """Every channel `settings` enables, by name (email is always there)."""
    from bot.channels.base import Channel
    from bot.channels.email.channel import EmailChannel

    channels: dict[str, Channel] = {"email": EmailChannel(settings)}
    if settings.telegram.enabled:
        from bot.channels.telegram.channel import TelegramChannel

        channels["telegram"] = TelegramChannel(settings)
    return Channels(channels)
