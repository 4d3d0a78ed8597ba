"""`svarbot demo`: the whole system on this machine, with simulated people."""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli.common import CONFIG_HELP, load_config
from bot.cli.common import fail as _fail

# --- demo ---------------------------------------------------------------------------------


@click.command()
@click.option("--config", "config_path", envvar="SVARBOT_CONFIG", help=CONFIG_HELP)
@click.option("--respondents", default=200, show_default=True, type=click.IntRange(10, 50_000),
              help="Unit leaders drawn for the sample.")
@click.option("--mayors", default=120, show_default=True, type=click.IntRange(5, 439),
              help="Mayors invited, drawn from all 439 (the real survey invites every one).")
@click.option("--telegram-mayors", default=1 / 3, show_default="1/3", metavar="FRACTION",
              type=click.FloatRange(0, 1),
              help="Share of the mayors who answer that do it in the Telegram chat (the link "
                   "in their email), on a fake Bot API on loopback.")
@click.option("--telegram-leaders", default=0.1, show_default=True, metavar="FRACTION",
              type=click.FloatRange(0, 1),
              help="Share of the unit leaders who answer that do it in the Telegram chat.")
@click.option("--seed", default=2019, show_default=True, help="Seed for the simulation.")
@click.option("--dir", "folder", default="demo", show_default=True, type=click.Path(),
              help="Folder for the demo's database, frames and config (recreated).")
def demo(config_path: str | None, respondents: int, mayors: int, telegram_mayors: float,
         telegram_leaders: float, seed: int, folder: str) -> None:
    """Run the barometer by email and Telegram on this machine with simulated people, and
    show the result.

    Builds frames on the real 2019 municipality list, draws the sample, imports the contacts,
    starts svarbot (sender, SMTP listener, Telegram poller and sender, dispatcher) against
    simulated mail servers and a fake Telegram Bot API on loopback, sends the invitations, and
    lets the simulated people reply as their mail clients do (Outlook, Gmail, iPhone …), with
    out-of-office replies, bounces, opt-outs and questions. Some open the Telegram link in the
    email instead and answer in the chat, tapping buttons or typing; some move there after the
    first page, and a few go back to email with /epost. Ends with the fieldwork summary (per
    channel) and the first published tables, small cells hidden.
    """
    from bot.demo.run import run_demo
    from storage.db import StorageError

    settings = load_config(config_path)
    try:
        run_demo(settings, respondents=respondents, mayors=mayors, seed=seed,
                 folder=Path(folder), telegram_mayors=telegram_mayors,
                 telegram_leaders=telegram_leaders)
    except StorageError as exc:
        _fail(str(exc))


COMMANDS = [demo]
