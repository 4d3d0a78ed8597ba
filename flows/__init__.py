"""Questionnaires and the dialogue engine: pure values and functions, no I/O.

`flows` never imports from `bot` or `storage`; the channels and the database are built on
top of it, never the other way round.
"""
