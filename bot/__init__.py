"""Everything that talks to the outside world: channels, scheduler, web pages, the CLI."""
