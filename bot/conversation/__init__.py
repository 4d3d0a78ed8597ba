"""The conversation core, shared by every channel: inbox rows to engine steps, steps to the
database (answers, status, desk queries) and the engine's prompts to the outbox."""
