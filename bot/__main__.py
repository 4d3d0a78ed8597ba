"""`python -m bot` runs the svarbot command."""

from bot.cli import main

main()
