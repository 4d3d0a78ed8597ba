"""The `svarbot` commands for questionnaire writers and for the configuration: `flow`, `config`."""

from __future__ import annotations

import json
import sys

import click

from bot.cli.common import CONFIG_HELP, CONFIG_SOURCE_KEY, load_config
from bot.cli.common import questionnaire as _questionnaire
from flows.loader import QuestionnaireError, load_reference, shipped
from flows.model import Lang
from flows.session import Channel

# --- flow ---------------------------------------------------------------------------------


@click.group()
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
    from bot.cli.flowtool import questionnaire_json

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
    from bot.cli.flowtool import run_interactive, run_jsonl

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


@click.group()
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
    context = click.get_current_context(silent=True)
    shipped = context is not None and context.meta.get(CONFIG_SOURCE_KEY) == "shipped"
    name = ("the shipped default configuration (no ./config.yaml here)" if shipped
            else config_path or "config.yaml")
    click.echo(f"{name}: ok")


COMMANDS = [flow, config]
