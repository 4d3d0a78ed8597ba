"""The email channel: composing, sending, receiving, reading and trimming mail.

One outbox, one inbox: every message leaves through `storage.outbox` and the sender, and every
message arrives through `storage.inbox` (from IMAP or the SMTP/LMTP listener) before the
dispatcher reads it.
"""
