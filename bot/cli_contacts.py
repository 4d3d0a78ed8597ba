"""The `svarbot` commands for contacts; registered by bot.cli."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
