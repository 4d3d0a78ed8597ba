"""The Telegram channel: a chat with the bot, one question at a time, with buttons.

python-telegram-bot reports a flood limit's `retry_after` as an int (deprecated, with a
warning) unless PTB_TIMEDELTA is set, then as a timedelta; svarbot asks for the timedelta and
reads both (`transport.retry_seconds`).
"""

import os

os.environ.setdefault("PTB_TIMEDELTA", "1")
