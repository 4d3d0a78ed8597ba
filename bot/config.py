"""Load `config.yaml` into frozen, typed settings.

Policy: a typo must never be silently ignored. Unknown keys, wrong types and a missing file
raise `ConfigError` with one line that names the file and the key (`config.yaml: privacy.min_cel:
unknown key (did you mean 'min_cell'?)`); the CLI prints it and exits with status 2.
Every key is documented in the shipped `config.yaml` itself.

Paths in a configuration file (the SQLite database, questionnaire files, frames, the previous
wave) are relative to the folder of that file, not to wherever svarbot is started, so one file
gives the same answers from any folder and a folder with its configuration can be moved. The
default configuration that ships inside the package (`default_config_path`, a copy of the
documented `config.yaml`) is read relative to the current folder instead: it stands for "this
folder", the way a `config.yaml` beside one's work does.
"""

from __future__ import annotations

import difflib
import itertools
import os
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from bot.campaign.plan import (
    MOMENT_FORMATS,
    WEEKDAYS,
    Blocked,
    Plan,
    Window,
    format_moment,
    invitation_at,
    is_holiday_country,
    parse_hours,
    parse_moment,
)


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _InvalidKey(ValueError):
    """A check made on a whole section that is about one of its keys.

    Pydantic places such an error at the section; `_describe` adds `key` so the message still
    names the line to fix (`surveys.0.plan.reminders.max`, not `surveys.0.plan.reminders`).
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _local_moment(value: object) -> object:
    """Read `invite`/`close`: a week date or a calendar date with a clock time, local time."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError("write local time without a UTC offset (window.timezone applies)")
        return value
    if isinstance(value, date):
        # Pydantic reports only ValueError as a validation error (a TypeError escapes).
        raise ValueError(f"{value} has no time of day: expected {MOMENT_FORMATS}")  # noqa: TRY004
    if isinstance(value, str):
        return parse_moment(value)
    raise ValueError(f"cannot read {value!r}: expected {MOMENT_FORMATS}")


#: A wall-clock moment in the plan's time zone (naive); dumped to JSON as it is written, so a
#: dumped configuration (`svarbot demo` writes one) loads again.
LocalMoment = Annotated[datetime, BeforeValidator(_local_moment),
                        PlainSerializer(format_moment, return_type=str, when_used="json")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _known_counties() -> list[str]:
    # Imported here: the 2019 municipality list is read only when a plan names counties.
    from storage.reference import municipalities

    return sorted({kommune.county for kommune in municipalities().values()})


class BlockedSettings(_Section):
    """Whole days (`to` included) the window is closed, for everyone or some 2019 counties."""

    from_: date = Field(alias="from")
    to: date
    #: Only respondents in these 2019 counties (storage/reference.py names); empty: everyone.
    counties: tuple[str, ...] = ()
    reason: str = Field(default="stengt periode", min_length=1)

    @field_validator("counties")
    @classmethod
    def _counties_exist(cls, counties: tuple[str, ...]) -> tuple[str, ...]:
        known = _known_counties()
        for county in counties:
            if county not in known:
                guess = difflib.get_close_matches(county, known, n=1)
                hint = f" (did you mean '{guess[0]}'?)" if guess else ""
                raise ValueError(f"unknown county {county!r}{hint}; the 2019 counties are "
                                 f"{', '.join(known)}")
        return counties

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.to < self.from_:
            raise _InvalidKey("to", f"{self.to} is before from {self.from_}")
        return self

    @model_serializer(mode="wrap")
    def _dump_as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # `from` is a Python keyword, hence the field `from_`; a dump must load again.
        data: dict[str, Any] = handler(self)
        if "from_" in data:
            data = {"from": data.pop("from_"), **data}
        return data


def _holiday_country(value: object) -> object:
    # YAML 1.1 reads a bare NO (Norway) as false; say so rather than "not a string".
    if value is False:
        raise ValueError('got false: write the country code in quotes, "NO" '
                         "(YAML reads a bare NO as false)")
    return value


class WindowSettings(_Section):
    """When mail may go out: weekdays, local opening hours, public holidays, closed periods."""

    weekdays: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    #: Local opening hours, start included, end excluded.
    hours: str = "08:00-15:00"
    timezone: str = "Europe/Oslo"
    #: Country whose public holidays are closed (ISO 3166 code known to `holidays`), or None.
    holidays: Annotated[str | None, BeforeValidator(_holiday_country)] = "NO"
    blocked: tuple[BlockedSettings, ...] = ()

    @field_validator("weekdays")
    @classmethod
    def _some_weekdays(cls, weekdays: tuple[str, ...]) -> tuple[str, ...]:
        if not weekdays:
            raise ValueError("no weekdays: the window would never open")
        return weekdays

    @field_validator("hours")
    @classmethod
    def _readable_hours(cls, hours: str) -> str:
        parse_hours(hours)
        return hours

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r} (an IANA name such as "
                             "Europe/Oslo)") from exc
        return name

    @field_validator("holidays")
    @classmethod
    def _known_country(cls, country: str | None) -> str | None:
        if country is not None and not is_holiday_country(country):
            raise ValueError(f"unknown holidays country {country!r} (an ISO 3166 code the "
                             'holidays library knows, such as "NO")')
        return country


class ReminderSettings(_Section):
    """Reminders to those who have not finished, counted in days after the invitation."""

    after_days: tuple[Annotated[int, Field(ge=1)], ...] = (7, 14)
    max: int = Field(default=2, ge=0)
    min_gap_days: int = Field(default=5, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        days = self.after_days
        for number, (before, after) in enumerate(itertools.pairwise(days), 2):
            if after <= before:
                raise _InvalidKey("after_days", f"reminder {number} (day {after}) is not "
                                                f"after reminder {number - 1} (day {before})")
            if after - before < self.min_gap_days:
                raise _InvalidKey("min_gap_days",
                                  f"{self.min_gap_days} days is more than the {after - before} "
                                  f"between reminder {number - 1} (day {before}) and "
                                  f"reminder {number} (day {after})")
        if self.max > len(days):
            raise _InvalidKey("max", f"{self.max} reminders, but after_days lists only "
                                     f"{len(days)}")
        return self


class PlanSettings(_Section):
    """A survey's campaign: invitation, reminders and close, sent only inside the window."""

    invite: LocalMoment
    reminders: ReminderSettings = ReminderSettings()
    close: LocalMoment
    #: Seal the survey (no more answers, links deleted) this many days after the close.
    seal_after_days: int | None = Field(default=None, ge=0)
    channel: Literal["email", "telegram"] = "email"
    window: WindowSettings = WindowSettings()

    @model_validator(mode="after")
    def _fits_between_invite_and_close(self) -> Self:
        invite, close = format_moment(self.invite), format_moment(self.close)
        if self.invite >= self.close:
            raise _InvalidKey("invite",
                              f"the invitation {invite} is not before the close {close}")
        sent = self.reminders.after_days[:self.reminders.max]
        for number, days in enumerate(sent, 1):
            due = self.invite + timedelta(days=days)
            if due >= self.close:
                raise _InvalidKey("reminders.after_days",
                                  f"reminder {number} (day {days}, {due:%Y-%m-%d}) falls after "
                                  f"the close {close}")
        plan = plan_from_settings(self)
        try:
            first = invitation_at(plan)
        except ValueError as exc:
            raise _InvalidKey("window", str(exc)) from exc
        if first >= plan.close_at:
            raise _InvalidKey("window", f"the window does not open between the invitation "
                                        f"{invite} and the close {close}")
        return self


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
    #: When invitations and reminders go out on their own; None: nothing is scheduled.
    plan: PlanSettings | None = None
    #: The response rate each stratum should reach; the dashboard marks those below it.
    target_rate: float = Field(default=0.5, ge=0, le=1)
    #: The contacts file the sample was drawn from (or the whole population, for a census):
    #: the report weights to it and corrects margins of error for its size.
    frame: str | None = None
    #: The strata the report weights by (post-stratification to `frame`); empty: unweighted.
    weight_by: list[Literal["respondent_type", "sector", "landsdel", "size_class"]] = []
    #: A published aggregate of the previous wave (`svarbot report --compare`), with its
    #: mapping of questions beside it (`<file>.yaml`).
    previous: str | None = None


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
    #: How long a claimed message belongs to its worker; a dead worker's messages are taken
    #: over (and possibly sent again, with the same Message-ID) when it runs out.
    lease_seconds: int = Field(default=300, ge=10, le=86_400)


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


class TelegramWebhookSettings(_Section):
    """Where Telegram delivers updates in webhook mode (behind a TLS reverse proxy)."""

    #: The local address svarbot listens on for Telegram's POSTs.
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    #: The public https URL Telegram posts to (ports 443, 80, 88 or 8443), ending in the path.
    public_url: str | None = None
    #: Environment variable holding the secret Telegram sends in every request's header.
    secret_token_env: str = "SVARBOT_TELEGRAM_WEBHOOK_SECRET"  # noqa: S105 - a variable name


class TelegramSettings(_Section):
    """The Telegram channel."""

    enabled: bool = False
    #: Environment variable holding the bot token from @BotFather (never written here).
    token_env: str = "SVARBOT_TELEGRAM_TOKEN"  # noqa: S105 - the name of a variable
    #: The bot's username, for the deep links https://t.me/<bot_username>?start=<payload>.
    bot_username: str = Field(default="svarbot_demo_bot", pattern=r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
    #: The Bot API endpoint, up to the token: Telegram's own, a self-hosted Bot API server,
    #: or the fake one the demo and the tests run on loopback.
    api_url: str = "https://api.telegram.org/bot"
    #: How updates arrive: by long polling (one process polls: the leader) or a webhook.
    mode: Literal["polling", "webhook"] = "polling"
    webhook: TelegramWebhookSettings = TelegramWebhookSettings()
    #: Seconds one getUpdates call waits for news (long polling).
    poll_timeout: int = Field(default=30, ge=0, le=50)
    #: Messages a second overall (Telegram's broadcast limit is about 30).
    per_second: float = Field(default=25.0, gt=0, le=30)
    #: Messages a second to one chat (Telegram allows 1, with short bursts; a self-hosted
    #: Bot API server in local mode allows more).
    per_chat_per_second: float = Field(default=1.0, gt=0, le=30)
    #: How many messages one chat may get at once before the per-chat pace applies.
    burst: int = Field(default=3, ge=1, le=30)
    #: Requests in flight at once.
    concurrency: int = Field(default=8, ge=1, le=64)
    #: Seconds to wait on one request to the Bot API.
    timeout: float = Field(default=30.0, gt=0)
    #: A message that keeps failing (network errors) is given up (dead) after this.
    retry_for_hours: float = Field(default=24.0, gt=0)
    lease_seconds: int = Field(default=120, ge=10, le=86_400)
    #: Where reminders go: the channel the respondent last wrote from, or the plan's.
    reminders: Literal["last_used", "plan"] = "last_used"

    @model_validator(mode="after")
    def _webhook_has_a_url(self) -> Self:
        if self.enabled and self.mode == "webhook" and not self.webhook.public_url:
            raise ValueError("webhook.public_url: required when mode is webhook")
        return self


class DevModeSettings(_Section):
    """Safety switches for rehearsals."""

    redirect_to: str | None = None


class LoggingSettings(_Section):
    """What the process writes to its log."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DeskSettings(_Section):
    """The contact person's desk: where new questions are mailed."""

    #: The desk's address: each new question is mailed there (None: only in the browser).
    notify: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    #: `immediate`: one mail per question as it comes; `digest`: one mail at `digest_at`.
    notify_mode: Literal["immediate", "digest"] = "immediate"
    #: Local time of the daily digest (Europe/Oslo).
    digest_at: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class WebSettings(_Section):
    """The desk and dashboard in the browser (`svarbot web`, or `svarbot run` if enabled)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: The https address users open, behind a TLS reverse proxy (cookies are then Secure).
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    #: The interface language: nb (bokmål) or en.
    lang: Literal["nb", "en"] = "nb"
    #: A login ends after this many hours without use, and after `session_max_hours` at most.
    idle_hours: float = Field(default=8.0, gt=0)
    session_max_hours: float = Field(default=24.0, gt=0)
    #: Failed logins allowed per user name or client address in 15 minutes.
    login_attempts: int = Field(default=5, ge=1)
    #: Seconds between the dashboard's refreshes.
    refresh_seconds: int = Field(default=15, ge=2)
    #: A started conversation with no reply for this many days is listed as stuck.
    stuck_days: int = Field(default=7, ge=1)


class AlertSettings(_Section):
    """Mail to the operators when delivery goes wrong."""

    #: Who gets alerts (empty: no alert mail; the dashboard shows them anyway).
    to: tuple[str, ...] = ()
    #: Alert when email sending has failed for this many minutes with mail waiting.
    sending_down_minutes: int = Field(default=15, ge=1)
    #: Alert when more than this share of the last hour's sends bounced (0.05 = 5 %) …
    bounce_rate: float = Field(default=0.05, gt=0, le=1)
    #: … once at least this many were sent in that hour.
    bounce_min_sent: int = Field(default=50, ge=1)


class Settings(_Section):
    """All of svarbot's settings."""

    database: DatabaseSettings = DatabaseSettings()
    surveys: tuple[SurveySettings, ...] = ()
    privacy: PrivacySettings = PrivacySettings()
    email: EmailSettings = EmailSettings()
    telegram: TelegramSettings = TelegramSettings()
    desk: DeskSettings = DeskSettings()
    web: WebSettings = WebSettings()
    alerts: AlertSettings = AlertSettings()
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
    if current is None:
        return []
    return [field.alias or name for name, field in current.model_fields.items()]


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
    cause = first.get("ctx", {}).get("error")
    if first["type"] == "value_error" and isinstance(cause, ValueError):
        # Our own checks write the whole sentence, values and case included.
        if isinstance(cause, _InvalidKey):
            key = f"{key}.{cause.key}"
        return f"{source}: {key}: {cause}"
    value = first.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict | list) else ""
    return f"{source}: {key}: {first['msg'].lower()}{shown}"


def default_config_path() -> Path:
    """The default configuration shipped inside the package (the documented `config.yaml`)."""
    return Path(str(resources.files("bot").joinpath("data", "config.yaml")))


def load_settings(path: str | Path, *, relative_to: str | Path | None = None) -> Settings:
    """Read and validate a configuration file.

    Relative paths in it are taken against `relative_to`, by default the folder the file is
    in (see `resolve_paths`).

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
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path))) from exc
    base = Path(relative_to) if relative_to is not None else path.parent
    return resolve_paths(settings, Path(os.path.abspath(base.expanduser())))


# --- paths relative to the configuration ----------------------------------------------------


def _against(value: str, base: Path) -> str:
    """`value` as an absolute path: `~` expanded, a relative path joined to `base`."""
    path = Path(value).expanduser()
    return str(path) if path.is_absolute() else os.path.normpath(base / path)


def sqlite_url_against(url: str, base: Path) -> str:
    """`url` with a relative SQLite file made absolute against `base`.

    `sqlite:///svarbot.db` becomes `sqlite:////<base>/svarbot.db`; an absolute file
    (`sqlite:////…`), SQLite in memory, a `file:` URI and every other database are left as
    written. A URL that cannot be read is left too: opening it says what is wrong.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    database = parsed.database
    if (parsed.get_backend_name() != "sqlite" or not database or database == ":memory:"
            or database.startswith("file:")):
        return url
    resolved = _against(database, base)
    if resolved == database:
        return url
    return parsed.set(database=resolved).render_as_string(hide_password=False)


def is_questionnaire_file(reference: str, base: Path) -> bool:
    """Whether a survey's `questionnaire` names a file rather than a shipped questionnaire.

    A file is named with its `.yaml`/`.yml` ending or a folder, or is a file in `base`; a
    shipped questionnaire is named by its id (`virksomhetsleder-2020`).
    """
    return (reference.endswith((".yaml", ".yml")) or "/" in reference
            or os.sep in reference or (base / reference).is_file())


def resolve_paths(settings: Settings, base: Path) -> Settings:
    """`settings` with every relative path in it taken against the folder `base`.

    These are the SQLite file of `database.url` and each survey's `questionnaire` (when it
    is a file), `frame` and `previous`. Absolute paths and shipped questionnaires' ids are
    kept as they are.
    """
    surveys = []
    for survey in settings.surveys:
        update: dict[str, str] = {}
        if is_questionnaire_file(survey.questionnaire, base):
            update["questionnaire"] = _against(survey.questionnaire, base)
        if survey.frame is not None:
            update["frame"] = _against(survey.frame, base)
        if survey.previous is not None:
            update["previous"] = _against(survey.previous, base)
        surveys.append(survey.model_copy(update=update))
    database = settings.database.model_copy(
        update={"url": sqlite_url_against(settings.database.url, base)})
    return settings.model_copy(update={"database": database, "surveys": tuple(surveys)})


def plan_from_settings(settings: PlanSettings) -> Plan:
    """The plan a survey's validated `plan:` settings describe, with moments in UTC."""
    window_settings = settings.window
    zone = ZoneInfo(window_settings.timezone)
    start, end = parse_hours(window_settings.hours)
    window = Window(
        weekdays=frozenset(WEEKDAYS.index(day) + 1 for day in window_settings.weekdays),
        start=start,
        end=end,
        zone=zone,
        holiday_country=window_settings.holidays,
        blocked=tuple(
            Blocked(start=block.from_, end=block.to, counties=frozenset(block.counties),
                    reason=block.reason)
            for block in window_settings.blocked
        ),
    )
    reminders = settings.reminders
    return Plan(
        invite_at=settings.invite.replace(tzinfo=zone).astimezone(UTC),
        reminder_days=reminders.after_days,
        max_reminders=reminders.max,
        min_gap=timedelta(days=reminders.min_gap_days),
        close_at=settings.close.replace(tzinfo=zone).astimezone(UTC),
        seal_after=(None if settings.seal_after_days is None
                    else timedelta(days=settings.seal_after_days)),
        channel=settings.channel,
        window=window,
    )
