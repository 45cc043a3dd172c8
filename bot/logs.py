"""What may reach the logs: the privacy filter every log handler of the process carries.

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

`install(handler)` puts the filter on a handler; `__main__` installs it on every handler of
the root logger when it configures logging.
"""

from __future__ import annotations

import logging
import re

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


def install(handler: logging.Handler) -> None:
    """Put the privacy filter on `handler` (once)."""
    if not any(isinstance(f, PrivacyFilter) for f in handler.filters):
        handler.addFilter(PrivacyFilter())


def install_on_root() -> None:
    """Put the privacy filter on every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        install(handler)
