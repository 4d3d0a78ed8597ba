"""The `svarbot` command.

Every subcommand turns bad input into one clear line and an exit status: 1 for a problem in
what was checked (a questionnaire with errors), 2 for a problem in how svarbot was called or
configured (a config typo, a missing file). No traceback reaches the user.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="svarbot")
def main() -> None:
    """svarbot: survey invitations, reminders and answers by email and chat.

    Respondents answer by replying to an email or in a Telegram chat; answers are kept in an
    anonymised store from which only aggregates with small cells suppressed are published.
    """


def _register_commands() -> None:
    """Add the commands, one module per group (bot/cli/*.py)."""
    from bot.cli import (
        contacts,
        demo,
        find,
        flow,
        log,
        mail,
        outbox,
        plan,
        report,
        run,
        storage,
        telegram,
        user,
        web,
    )

    for module in (flow, storage, contacts, run, report, mail, outbox, plan, log, find,
                   telegram, user, web, demo):
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()
