"""The `svarbot` command.

Every subcommand turns bad input into one clear line and an exit status: 1 for a problem in
what was checked (a questionnaire with errors), 2 for a problem in how svarbot was called or
configured (a config typo, a missing file). No traceback reaches the user.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bot.cli_common import CONFIG_HELP, load_config
from bot.cli_common import fail as _fail
from flows.loader import QuestionnaireError, load_reference, shipped
from flows.model import Lang, Questionnaire
from flows.session import Channel


def _questionnaire(path_or_id: str) -> Questionnaire:
    """A questionnaire from a file path, or a shipped one by id; exits 1 on errors."""
    try:
        return load_reference(path_or_id)
    except QuestionnaireError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="svarbot")
def main() -> None:
    """svarbot: survey invitations, reminders and answers by email and chat.

    Respondents answer by replying to an email or in a Telegram chat; answers are kept in an
    anonymised store from which only aggregates with small cells suppressed are published.
    """


# --- flow ---------------------------------------------------------------------------------


@main.group()
def flow() -> None:
    """Check, inspect and try questionnaire files (for questionnaire writers)."""


@flow.command("check")
@click.argument("files", nargs=-1, required=True)
def flow_check(files: tuple[str, ...]) -> None:
    """Validate questionnaire FILES; list every problem as file:line: message.

    FILES may be paths or ids of shipped questionnaires. Exit status 0 when all are valid.
    """
    failed = 0
    for name in files:
        try:
            q = load_reference(name)
        except QuestionnaireError as exc:
            failed += 1
            for problem in exc.problems:
                click.echo(problem)
            continue
        click.echo(f"{name}: ok ({len(q.items)} items on {len(q.pages)} pages, "
                   f"languages {', '.join(q.languages)})")
    sys.exit(1 if failed else 0)


@flow.command("show")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print the normalised questionnaire as JSON.")
def flow_show(file: str, as_json: bool) -> None:
    """Show a questionnaire: every item with its number, type and condition."""
    from bot.flowtool import questionnaire_json

    q = _questionnaire(file)
    if as_json:
        click.echo(json.dumps(questionnaire_json(q), ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{q.title.nb} ({q.id}, revision {q.revision})")
    for column in ("#", "page", "id", "type", "question", "shown"):
        table.add_column(column)
    for item in q.items:
        table.add_row(str(item.number), item.page, item.id, item.type.value,
                      item.text.nb[:70], "if …" if item.show_if else "always")
    Console().print(table)


@flow.command("try")
@click.argument("file")
@click.option("--lang", type=click.Choice(["nb", "nn", "en"]), default="nb", show_default=True,
              help="The respondent's language.")
@click.option("--channel", type=click.Choice(["email", "chat"]), default="email",
              show_default=True, help="Email asks a page at a time; chat one question at a time.")
@click.option("--jsonl", is_flag=True,
              help='Machine mode: read {"text": ...} lines from stdin, '
                   "write one JSON line per step.")
def flow_try(file: str, lang: str, channel: str, jsonl: bool) -> None:
    """Answer a questionnaire in the terminal, as a respondent would."""
    from bot.flowtool import run_interactive, run_jsonl

    q = _questionnaire(file)
    chosen_lang: Lang = "nn" if lang == "nn" else "en" if lang == "en" else "nb"
    chosen_channel: Channel = "chat" if channel == "chat" else "email"
    if jsonl:
        run_jsonl(q, sys.stdin, sys.stdout, channel=chosen_channel, lang=chosen_lang)
    else:
        run_interactive(q, sys.stdin, sys.stdout, channel=chosen_channel, lang=chosen_lang)


@flow.command("list")
def flow_list() -> None:
    """List the questionnaires shipped with svarbot."""
    for q_id, path in sorted(shipped().items()):
        click.echo(f"{q_id}\t{path}")


# --- config -------------------------------------------------------------------------------


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@click.option("--config", "config_path", envvar="SVARBOT_CONFIG", help=CONFIG_HELP)
def config_check(config_path: str | None) -> None:
    """Validate the configuration file and the questionnaires it names."""
    settings = load_config(config_path)
    for survey in settings.surveys:
        q = _questionnaire(survey.questionnaire)
        click.echo(f"survey {survey.id}: questionnaire {q.id} ({len(q.items)} items)")
    click.echo(f"{config_path or 'config.yaml'}: ok")


# --- demo ---------------------------------------------------------------------------------


@main.command()
@click.option("--config", "config_path", envvar="SVARBOT_CONFIG", help=CONFIG_HELP)
@click.option("--respondents", default=200, show_default=True, type=click.IntRange(10, 50_000),
              help="Unit leaders drawn for the sample.")
@click.option("--mayors", default=120, show_default=True, type=click.IntRange(5, 439),
              help="Mayors invited, drawn from all 439 (the real survey invites every one).")
@click.option("--seed", default=2019, show_default=True, help="Seed for the simulation.")
@click.option("--dir", "folder", default="demo", show_default=True, type=click.Path(),
              help="Folder for the demo's database, frames and config (recreated).")
def demo(config_path: str | None, respondents: int, mayors: int, seed: int,
         folder: str) -> None:
    """Run the barometer by email on this machine with simulated people, and show the result.

    Builds frames on the real 2019 municipality list, draws the sample, imports the contacts,
    starts svarbot (sender, SMTP listener, dispatcher) against simulated mail servers on
    loopback, sends the invitations, and lets the simulated people reply as their mail clients
    do (Outlook, Gmail, iPhone …), with out-of-office replies, bounces, opt-outs and questions.
    Ends with the fieldwork summary and the first published tables, small cells hidden.
    """
    from bot.demo import run_demo
    from storage.db import StorageError

    settings = load_config(config_path)
    try:
        run_demo(settings, respondents=respondents, mayors=mayors, seed=seed,
                 folder=Path(folder))
    except StorageError as exc:
        _fail(str(exc))


def _register_commands() -> None:
    """Add the commands that live in their own modules (storage, contacts, reports, mail)."""
    from bot import (
        cli_contacts,
        cli_log,
        cli_mail,
        cli_outbox,
        cli_plan,
        cli_report,
        cli_storage,
    )

    for module in (cli_storage, cli_contacts, cli_report, cli_mail, cli_outbox, cli_plan,
                   cli_log):
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()
