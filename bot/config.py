"""Load `config.yaml` into frozen, typed settings.

Policy: a typo must never be silently ignored. Unknown keys, wrong types and a missing file
raise `ConfigError` with one line that names the file and the key (`config.yaml: privacy.min_cel:
unknown key (did you mean 'min_cell'?)`); the CLI prints it and exits with status 2.
Every key is documented in the shipped `config.yaml` itself.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    """Where svarbot keeps invitations, the outbox and inbox, and the anonymised answers."""

    url: str = "sqlite:///svarbot.db"


class SurveySettings(_Section):
    """One survey: a questionnaire sent to a list of respondents."""

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    questionnaire: str
    default_lang: Literal["nb", "nn", "en"] = "nb"
    #: Who answers respondents' questions, shown at the foot of every message.
    contact: str | None = None


class PrivacySettings(_Section):
    """Disclosure control and the key that links invitations to responses."""

    min_cell: int = Field(default=5, ge=1)
    link_key_env: str = "SVARBOT_LINK_KEY"


class SmtpSettings(_Section):
    """The outgoing mail server."""

    host: str = "127.0.0.1"
    port: int = Field(default=8025, ge=1, le=65535)
    start_tls: bool = False
    username: str | None = None
    password_env: str | None = None
    per_minute: int = Field(default=30, ge=1)
    per_day: int = Field(default=10_000, ge=1)
    #: Connections used at once (Exchange Online allows 3 per mailbox).
    connections: int = Field(default=3, ge=1, le=64)
    #: Seconds to wait on any one SMTP operation.
    timeout: float = Field(default=60.0, gt=0)
    #: A message that keeps failing with 4xx/connection errors is given up (dead) after this.
    retry_for_hours: float = Field(default=48.0, gt=0)


class ImapSettings(_Section):
    """The mailbox replies arrive in (optional: replies may also come by SMTP/LMTP)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=143, ge=1, le=65535)
    username: str | None = None
    password_env: str | None = None
    ssl: bool = True
    folder: str = "INBOX"
    processed_folder: str = "svarbot/behandlet"
    #: IDLE is renewed at least this often (RFC 2177 allows 29 minutes; 10 is the safe choice).
    idle_renew_seconds: int = Field(default=540, ge=10, le=600)
    #: A full check of the folder runs this often, IDLE or not.
    poll_seconds: int = Field(default=60, ge=1)


class ListenSettings(_Section):
    """An SMTP or LMTP listener that takes replies directly (mail routed to the bot)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8024, ge=0, le=65535)
    protocol: Literal["smtp", "lmtp"] = "smtp"


class EmailSettings(_Section):
    """The email channel."""

    from_address: str = "Innovasjonsbarometeret <svar@svarbot.localhost>"
    reply_to: str = Field(default="svar+{token}@svarbot.localhost",
                          pattern=r"^[^@\s]*\{token\}[^@\s]*@[^@\s]+$")
    #: The mailto: address in List-Unsubscribe (mail to it opts the respondent out).
    unsubscribe_address: str = Field(default="avmeld+{token}@svarbot.localhost",
                                     pattern=r"^[^@\s]*\{token\}[^@\s]*@[^@\s]+$")
    #: The https: one-click address in List-Unsubscribe (POST opts out); none if unset.
    unsubscribe_url: str | None = None
    #: Larger inbound mail is not read (refused by the listener, quarantined from IMAP).
    max_message_bytes: int = Field(default=10_000_000, ge=10_000)
    smtp: SmtpSettings = SmtpSettings()
    imap: ImapSettings = ImapSettings()
    listen: ListenSettings = ListenSettings()


class TelegramSettings(_Section):
    """The Telegram channel."""

    enabled: bool = False
    token_env: str = "SVARBOT_TELEGRAM_TOKEN"  # noqa: S105 - the name of a variable
    bot_username: str = "svarbot_demo_bot"
    base_url: str | None = None


class DevModeSettings(_Section):
    """Safety switches for rehearsals."""

    redirect_to: str | None = None


class LoggingSettings(_Section):
    """What the process writes to its log."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(_Section):
    """All of svarbot's settings."""

    database: DatabaseSettings = DatabaseSettings()
    surveys: tuple[SurveySettings, ...] = ()
    privacy: PrivacySettings = PrivacySettings()
    email: EmailSettings = EmailSettings()
    telegram: TelegramSettings = TelegramSettings()
    dev_mode: DevModeSettings = DevModeSettings()
    logging: LoggingSettings = LoggingSettings()


def _known_keys(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """The keys allowed at `path` (for "did you mean")."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        current = next((c for c in candidates if isinstance(c, type)
                        and issubclass(c, BaseModel)), None)
    return list(current.model_fields) if current is not None else []


def _describe(error: ValidationError, source: str) -> str:
    # A typo shows up twice (an unknown key and a missing one); the unknown key explains both.
    errors = sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    location = tuple(first["loc"])
    key = ".".join(str(part) for part in location) or "(top level)"
    if first["type"] == "extra_forbidden":
        known = _known_keys(Settings, location[:-1])
        guess = difflib.get_close_matches(str(location[-1]), known, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        return f"{source}: {key}: unknown key{hint}"
    value = first.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict | list) else ""
    return f"{source}: {key}: {first['msg'].lower()}{shown}"


def load_settings(path: str | Path) -> Settings:
    """Read and validate a configuration file.

    Raises:
        ConfigError: missing file, broken YAML, unknown key or wrong type; the message names
            the file and the key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: "
                          f"{getattr(exc, 'problem', None) or exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of sections")
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path))) from exc
