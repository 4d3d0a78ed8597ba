"""The `svarbot` commands for report; registered by bot.cli."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
