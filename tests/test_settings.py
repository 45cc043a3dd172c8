"""Settings: read once, validated, failing at start-up with the variable's name."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError


def test_defaults_follow_the_contract() -> None:
    settings = Settings.from_env({}, dotenv=None)
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.database_url == "sqlite:///orchestrate.db"
    assert settings.models == ("claude-opus-5-5", "claude-haiku-5-5", "claude-sonnet-5-5")
    assert settings.max_question_chars == 2000
    assert settings.max_concurrent_calls == 16
    assert settings.budget_user_daily_usd is None


def test_values_are_read_and_parsed() -> None:
    settings = Settings.from_env(
        {
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "ORCHESTRATE_ADMINS": "U1, U2 U3",
            "BUDGET_WORKSPACE_MONTHLY_USD": "12.50",
            "LEDGER_STORE_QUESTIONS": "false",
            "REVIEW_MODEL": "claude-sonnet-4-6",
            "DATABASE_URL": "postgresql://u@h/db",
        },
        dotenv=None,
    )
    assert settings.admins == frozenset({"U1", "U2", "U3"})
    assert settings.budget_workspace_monthly_usd == Decimal("12.50")
    assert settings.ledger_store_questions is False
    assert settings.review_model == "claude-sonnet-4-6"
    assert settings.database_url == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLACK_API_URL", "slack.com/api"),
        ("DATABASE_URL", "mysql://x"),
        ("ORCHESTRATE_MAX_QUESTION_CHARS", "0"),
        ("ORCHESTRATE_MAX_CONCURRENT_CALLS", "many"),
        ("ORCHESTRATE_CALL_TIMEOUT_S", "-1"),
        ("BUDGET_USER_DAILY_USD", "-5"),
        ("BUDGET_USER_DAILY_USD", "NaN"),
        ("LEDGER_STORE_QUESTIONS", "maybe"),
        ("ORCHESTRATE_PROGRESS", "sometimes"),
        ("ORCHESTRATE_SLACK_UPDATE_LIMIT", "1"),
        ("STRATEGY_EFFORT", "extreme"),
        ("EXAMPLES_EFFORT", "none"),
        ("REVIEW_EFFORT", "High"),
        ("PRICES_FILE", "/no/such/prices.json"),
    ],
)
def test_a_malformed_value_fails_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value}, dotenv=None)


def test_the_progress_message_is_on_unless_turned_off() -> None:
    assert Settings.from_env({}, dotenv=None).progress is True
    for off in ("off", "OFF", "false", "0"):
        assert Settings.from_env({"ORCHESTRATE_PROGRESS": off}, dotenv=None).progress is False
    for on in ("on", "true", "True", "1"):
        assert Settings.from_env({"ORCHESTRATE_PROGRESS": on}, dotenv=None).progress is True


def test_a_progress_switch_that_is_neither_asks_for_on_or_off() -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"ORCHESTRATE_PROGRESS": "maybe"}, dotenv=None)
    assert str(error.value) == 'ORCHESTRATE_PROGRESS must be on or off, got "maybe"'


@pytest.mark.parametrize(
    "name", ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "ANTHROPIC_API_KEY"]
)
def test_a_secret_too_short_to_be_real_is_refused_naming_the_variable(name: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({name: "e"}, dotenv=None)
    assert str(error.value).startswith(f"{name} is 1 character long, too short to be a real one")
    assert Settings.from_env({name: "e" * 8}, dotenv=None) is not None


def test_each_role_reads_its_own_effort() -> None:
    settings = Settings.from_env(
        {"STRATEGY_EFFORT": "max", "EXAMPLES_EFFORT": "medium", "REVIEW_EFFORT": "high"},
        dotenv=None,
    )
    assert (settings.strategy_effort, settings.examples_effort, settings.review_effort) == (
        "max",
        "medium",
        "high",
    )
    assert Settings.from_env({}, dotenv=None).examples_effort == "low"


def test_a_dotenv_file_fills_what_the_environment_does_not_set(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("SLACK_BOT_TOKEN=xoxb-from-file\nREVIEW_MODEL=from-file\n")
    settings = Settings.from_env({"REVIEW_MODEL": "from-env"}, dotenv=dotenv)
    assert settings.slack_bot_token == "xoxb-from-file"
    assert settings.review_model == "from-env"


def test_require_names_every_missing_variable() -> None:
    settings = Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-1234"}, dotenv=None)
    with pytest.raises(SettingsError) as error:
        settings.require("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")
    assert "SLACK_APP_TOKEN, SLACK_SIGNING_SECRET" in str(error.value)
    assert "SLACK_BOT_TOKEN" not in str(error.value).split("must")[0]


def test_secrets_never_appear_in_the_repr() -> None:
    settings = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-secret",
            "ANTHROPIC_API_KEY": "sk-ant-secret",
            "SLACK_SIGNING_SECRET": "shh-quiet",
        },
        dotenv=None,
    )
    assert "secret" not in repr(settings) and "shh" not in repr(settings)


def test_an_instance_ttl_within_two_heartbeats_is_refused_naming_both() -> None:
    env = {"ORCHESTRATE_HEARTBEAT_S": "10", "ORCHESTRATE_INSTANCE_TTL_S": "15"}
    with pytest.raises(SettingsError, match=r"ORCHESTRATE_INSTANCE_TTL_S.*ORCHESTRATE_HEARTBEAT_S"):
        Settings.from_env(env, dotenv=None)
    fast = {"ORCHESTRATE_HEARTBEAT_S": "0.5", "ORCHESTRATE_INSTANCE_TTL_S": "1.5"}
    assert Settings.from_env(fast, dotenv=None).instance_ttl_s == 1.5


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("BUDGET_USER_DAILY_USD", "-0", "above 0"),
        ("BUDGET_USER_DAILY_USD", "0", "above 0"),
        ("BUDGET_WORKSPACE_MONTHLY_USD", "1e999", "at most 1,000,000"),
        ("BUDGET_WORKSPACE_MONTHLY_USD", "Infinity", "at most 1,000,000"),
        ("BUDGET_USER_DAILY_USD", "ten dollars", "a positive number of dollars"),
        ("ORCHESTRATE_CALL_TIMEOUT_S", "1e999", "at most 86400"),
        ("ORCHESTRATE_CALL_TIMEOUT_S", "inf", "at most 86400"),
        ("ORCHESTRATE_DRAIN_GRACE_S", "nan", "0 or more"),
        ("ORCHESTRATE_SLACK_POSTS_PER_S", "fast", "must be a number"),
        ("ORCHESTRATE_MAX_CONCURRENT_CALLS", "many", "whole number"),
        ("ORCHESTRATE_HTTP_HEADER_TIMEOUT_S", "0", "above 0"),
    ],
)
def test_budgets_and_numbers_must_be_finite_positive_and_sane_said_in_plain_words(
    name: str, value: str, words: str
) -> None:
    with pytest.raises(SettingsError, match=name) as error:
        Settings.from_env({name: value}, dotenv=None)
    assert words in str(error.value)
    assert "<class" not in str(error.value) and "literal" not in str(error.value)


def test_a_negative_zero_grace_is_read_as_zero() -> None:
    settings = Settings.from_env({"ORCHESTRATE_DRAIN_GRACE_S": "-0"}, dotenv=None)
    assert str(settings.drain_grace_s) == "0.0"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "BUDGET_USER_DAILY_USD",
            "abc",
            'BUDGET_USER_DAILY_USD must be a positive number of dollars, got "abc"',
        ),
        (
            "ORCHESTRATE_CALL_TIMEOUT_S",
            "soon",
            'ORCHESTRATE_CALL_TIMEOUT_S must be a number, like 2 or 0.5, got "soon"',
        ),
        (
            "ORCHESTRATE_MAX_CONCURRENT_CALLS",
            "1.5",
            'ORCHESTRATE_MAX_CONCURRENT_CALLS must be a whole number, like 3, got "1.5"',
        ),
        (
            "METRICS_PORT",
            "70000",
            'METRICS_PORT must be a TCP port number from 1 to 65535, got "70000"',
        ),
        (
            "LOG_LEVEL",
            "loud",
            'LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR (any case), got "loud"',
        ),
        ("LOG_FORMAT", "xml", 'LOG_FORMAT must be one of text, json, got "xml"'),
    ],
)
def test_a_malformed_value_is_explained_in_plain_words(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({name: value}, dotenv=None)
    assert str(error.value) == message
    assert "decimal" not in message and "literal" not in message


def test_log_level_and_format_are_read_in_any_case() -> None:
    settings = Settings.from_env({"LOG_LEVEL": "debug", "LOG_FORMAT": "JSON"}, dotenv=None)
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    assert Settings.from_env({"LOG_LEVEL": "Warning"}, dotenv=None).log_level == "WARNING"
    assert Settings.from_env({}, dotenv=None).log_level_libraries == "WARNING"
