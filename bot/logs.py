"""Log output: what may reach it (the privacy filter), levels, formats, structured fields.

## Format and levels

The standard library's `logging`, not structlog: every library the bot runs on (slack_sdk,
slack_bolt, anthropic, aiohttp, asyncpg) already logs through it, so one handler with one
formatter gives their lines and ours the same shape and the same redaction, with no second
pipeline to bridge. A line's structured fields travel in `extra=fields(...)`; the text format
writes them as `key=value` after the message, the JSON format as keys of one object per line.

`bot.*` logs at `LOG_LEVEL` (INFO when serving); every other logger stays at
`LOG_LEVEL_LIBRARIES` (WARNING) unless asked. Whatever the level, the configured secrets
(tokens, API key, signing secret, a database password) and anything shaped like a Slack or
Anthropic credential are replaced by `[redacted]` in the formatted line: whole values only,
never a piece of a longer word (settings refuse secrets too short to be real).

## Privacy

At DEBUG the libraries orchestrate runs on write what they send and receive: slack_sdk
logs every Web API request's arguments (the question, the examples) and every Socket Mode
envelope (slash command payloads with their `response_url`), anthropic and httpx2 log
request bodies, aiosqlite logs statement results. None of it may reach a log file. So:

* DEBUG records are kept only from `DEBUG_LOGGERS` (orchestrate's own code, which never
  logs question or model text, and asyncio, which logs no payloads); every other logger's
  DEBUG output is dropped. INFO and above pass from every logger (libraries do not put
  payloads there: Bolt's "unhandled request" warning filters the body itself; its
  signature-failure line, which does not, is never reached because `bot.slack.gate`
  refuses such requests first).
* Every record that passes, at any level, is scrubbed of Slack tokens (`xoxb-…`, `xapp-…`
  and the other `xox?-` kinds), Anthropic keys (`sk-ant-…`), `Authorization` header values
  and `response_url`s (Slack's `hooks.slack.com/commands/…` and any `/commands/T…/…/…`
  URL), tracebacks included.

## Start-up

A refusal at start (a token Slack refuses, a port in use) is one line on stderr, not the
last of several: `hold_start_up_lines()` keeps INFO lines back while `serve` starts. They
are written when start-up finishes (`start_up_done()`), or as soon as a warning needs
them for context (waiting for a dependency), and dropped when start-up ends in a refusal
(`drop_start_up_lines()`). At `LOG_LEVEL=DEBUG` nothing is held: whoever asked for DEBUG
wants every line, in order, as it comes.

`install(handler)` puts the filter on a handler; `configure` installs it on the one handler
it gives the root logger. Libraries' DEBUG lines are dropped by the filter whatever
`LOG_LEVEL_LIBRARIES` says: that variable can only make them quieter (ERROR) or bring
their INFO lines.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

from bot.settings import Settings

# Loggers whose DEBUG records are kept (each name covers its children).
DEBUG_LOGGERS = ("bot", "blocks", "asyncio")
REDACTED = "[redacted]"
_SECRETS = re.compile(
    r"""
      xox[a-z]-[0-9A-Za-z-]+                    # Slack bot, user, app-config tokens
    | xapp-[0-9A-Za-z-]+                        # Slack app-level tokens
    | sk-ant-[0-9A-Za-z_-]+                     # Anthropic API keys
    | (?<=[Bb]earer\ )[^\s'",}]+                # Authorization: Bearer <anything>
    | https?://hooks\.slack(?:-gov)?\.com/\S*   # response_urls and webhooks
    | https?://[^\s'"/]+/commands/T[0-9A-Z]+/\S+  # response_urls on other hosts
    """,
    re.VERBOSE,
)


def redact(text: str) -> str:
    """`text` with every token, key and response_url replaced by "[redacted]"."""
    return _SECRETS.sub(REDACTED, text)


def allowed_at_debug(logger_name: str) -> bool:
    return any(logger_name == name or logger_name.startswith(f"{name}.") for name in DEBUG_LOGGERS)


class PrivacyFilter(logging.Filter):
    """Drops other libraries' DEBUG records and scrubs secrets from the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and not allowed_at_debug(record.name):
            return False
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class HoldStartUpLines(logging.Filter):
    """Keeps records below WARNING back (see "Start-up" above) until released or dropped."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self._handler = handler
        self._held: list[logging.LogRecord] | None = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self._held is None:
            return True
        if record.levelno < logging.WARNING:
            self._held.append(record)
            return False
        self.release()  # a warning reads with what came before it
        return True

    def release(self) -> None:
        held, self._held = self._held, None
        for record in held or ():
            self._handler.handle(record)

    def drop(self) -> None:
        self._held = None


def hold_start_up_lines() -> None:
    """Hold INFO lines back until start-up is done (unless orchestrate logs at DEBUG)."""
    if logging.getLogger("bot").getEffectiveLevel() <= logging.DEBUG:
        return
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, HoldStartUpLines) for f in handler.filters):
            handler.addFilter(HoldStartUpLines(handler))


def start_up_done() -> None:
    """Write the lines held back at start, and hold no more."""
    for hold in _holds():
        hold.release()


def drop_start_up_lines() -> None:
    """Start-up was refused: its one line says it all; the lines held back are dropped."""
    for hold in _holds():
        hold.drop()


def _holds() -> list[HoldStartUpLines]:
    return [
        f
        for handler in logging.getLogger().handlers
        for f in handler.filters
        if isinstance(f, HoldStartUpLines)
    ]


def install(handler: logging.Handler) -> None:
    """Put the privacy filter on `handler` (once)."""
    if not any(isinstance(f, PrivacyFilter) for f in handler.filters):
        handler.addFilter(PrivacyFilter())


def install_on_root() -> None:
    """Put the privacy filter on every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        install(handler)


FIELDS = "orchestrate_fields"
_APP_LOGGERS = ("bot", "blocks")


def fields(**values: object) -> dict[str, Any]:
    """`log.info("run ended", extra=fields(run_id=…))`: a line's structured fields."""
    return {FIELDS: values}


def configure(
    settings: Settings, *, default_level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Send every log record to stderr (or `stream`) in the configured format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    secrets = list(secret_values(settings))
    formatter: logging.Formatter = (
        JsonFormatter(secrets) if settings.log_format == "json" else TextFormatter(secrets)
    )
    handler.setFormatter(formatter)
    install(handler)  # no question, response_url or token reaches a log
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level_libraries)
    for name in _APP_LOGGERS:
        logging.getLogger(name).setLevel(settings.log_level or default_level)


def secret_values(settings: Settings) -> Iterable[str]:
    """Every configured value that must never be written down."""
    for value in (
        settings.slack_bot_token,
        settings.slack_app_token,
        settings.slack_signing_secret,
        settings.anthropic_api_key,
        urlsplit(settings.database_url).password,
    ):
        if value:
            yield value


def database_location(url: str) -> str:
    """A database URL fit for a log line or an error message: scheme, host, port and name,
    never the user's password."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return url
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def whole_values(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching any of `secrets` where it stands whole: not inside a longer
    word or token, so a secret that happens to be a common string is never cut out of
    other words ("e" out of "bot.slack.server"). Longest first, so a secret containing
    another is replaced whole."""
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return None
    alternatives = "|".join(re.escape(secret) for secret in ordered)
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


class _Redacting(logging.Formatter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = whole_values(secrets)

    def redact(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        return redact(text)

    @staticmethod
    def timestamp(record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(_Redacting):
    """`2026-12-02T01:02:03.456Z INFO bot.slack.runs: run ended run_id=… cost_usd=0.0123`."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extra: Mapping[str, object] = getattr(record, FIELDS, {})
        if extra:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.redact(line)


class JsonFormatter(_Redacting):
    """One JSON object per line: time, level, logger, message, then the line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, FIELDS, {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, default=str, ensure_ascii=False))


def _text_value(value: object) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "-"
    text = "-" if value is None else str(value)
    return json.dumps(text) if not text or any(c.isspace() or c == '"' for c in text) else text
