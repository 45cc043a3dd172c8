"""The privacy filter: other libraries' DEBUG records dropped, secrets scrubbed everywhere."""

from __future__ import annotations

import logging

import pytest

from bot.logs import PrivacyFilter, redact


def record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("bot.slack.runs", True),
        ("blocks", True),
        ("asyncio", True),
        ("slack_sdk.web.async_base_client", False),
        ("slack_bolt.AsyncApp", False),
        ("anthropic._base_client", False),
        ("aiosqlite", False),
        ("botany", False),  # a prefix of "bot" is not "bot"
    ],
)
def test_debug_records_pass_only_from_the_allowed_loggers(name: str, kept: bool) -> None:
    assert PrivacyFilter().filter(record(name, logging.DEBUG, "x")) is kept
    assert PrivacyFilter().filter(record(name, logging.INFO, "x")) is True


def test_tokens_keys_and_response_urls_are_scrubbed_from_messages_and_tracebacks() -> None:
    secret = (
        "xoxb-123-456-abc xapp-1-A0-xyz sk-ant-api03-KEY Authorization: Bearer s3cr3t "
        "https://hooks.slack.com/commands/T0/1/abc http://127.0.0.1:9/commands/T0SANDBOX/4/zz"
    )
    try:
        raise RuntimeError(secret)
    except RuntimeError:
        import sys

        rec = logging.LogRecord("slack_bolt", logging.ERROR, __file__, 1, "%s", (secret,), None)
        rec.exc_info = sys.exc_info()
    assert PrivacyFilter().filter(rec)
    shown = logging.Formatter().format(rec)
    for leak in ("xoxb-", "xapp-", "sk-ant-", "s3cr3t", "hooks.slack", "/commands/T0SANDBOX"):
        assert leak not in shown
    assert shown.count("[redacted]") >= 12
    assert redact("nothing secret here") == "nothing secret here"


def test_configured_secrets_are_redacted_as_whole_values_never_inside_other_words() -> None:
    from bot.logs import TextFormatter

    formatter = TextFormatter(["e", "server12", "pa55-word!"])
    line = formatter.format(
        record(
            "bot.slack.server",
            logging.INFO,
            "secret %s, in a URL postgresql://u:%s@db/x, glued server123 and xserver12",
            "server12",
            "pa55-word!",
        )
    )
    assert "bot.slack.server:" in line  # not bot.slack.s[redacted]rv[redacted]r
    assert "secret [redacted], in a URL postgresql://u:[redacted]@db/x" in line
    assert "glued server123 and xserver12" in line  # other tokens that merely contain it
    assert "server12," not in line and "pa55-word!" not in line
