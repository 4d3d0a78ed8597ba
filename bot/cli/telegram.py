"""`svarbot telegram check`: is the bot token good, and what does the bot answer to?"""

from __future__ import annotations

import asyncio

import click

from bot.cli.common import config_option, load_config
from bot.cli.common import fail as _fail


@click.group("telegram")
def telegram_group() -> None:
    """The Telegram channel."""


@telegram_group.command("check")
@config_option
def telegram_check(config_path: str | None) -> None:
    """Ask Telegram (getMe) who the bot is; print its name and a sample deep link.

    The token is read from the environment variable `telegram.token_env` names. A bad token,
    an unreachable Bot API or a username that differs from `telegram.bot_username` is one
    line on stderr and exit status 1.
    """
    import telegram
    from telegram.error import InvalidToken, NetworkError, TelegramError

    from bot.channels.base import ChannelError
    from bot.channels.telegram.channel import TelegramChannel, deep_link
    from bot.channels.telegram.transport import make_bot

    settings = load_config(config_path)
    channel = TelegramChannel(settings)
    try:
        token = channel.token()
    except ChannelError as exc:
        _fail(str(exc))

    async def ask() -> telegram.User:
        async with make_bot(settings.telegram, token) as bot:
            return await bot.get_me()

    try:
        me = asyncio.run(ask())
    except InvalidToken:
        _fail(f"telegram: {settings.telegram.api_url} does not accept the token in "
              f"{settings.telegram.token_env}", 1)
    except NetworkError as exc:
        _fail(f"telegram: cannot reach {settings.telegram.api_url} ({exc.message})", 1)
    except TelegramError as exc:
        _fail(f"telegram: {exc.message}", 1)
    name = me.full_name or me.first_name
    click.echo(f"bot: {name} (@{me.username})")
    click.echo(f"deep link: {deep_link(me.username or '', 'EXAMPLE_PAYLOAD_0123456789abcdef')}")
    if not settings.telegram.enabled:
        click.echo("telegram.enabled is false: svarbot does not use the bot yet")
    if (me.username or "").lower() != settings.telegram.bot_username.lower():
        _fail(f"telegram.bot_username is {settings.telegram.bot_username!r}, but the token "
              f"belongs to @{me.username}: the links in the emails would open another bot", 1)


COMMANDS = [telegram_group]
