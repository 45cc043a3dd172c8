"""Configuration: the one place that reads the environment.

`Settings.from_env()` reads the process environment (and a `.env` file in the working
directory, when present, for values the environment does not set) once, validates every
value, and returns a frozen `Settings`. A malformed value fails at start-up with a
`SettingsError` that names the variable and says what to set. Values a mode needs (the
Slack tokens for `serve`, say) are checked by that mode through `Settings.require`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from dotenv import dotenv_values

T = TypeVar("T")

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
RUN_PAGE_PATH = "/runs/"  # + a run id: its web page, under ORCHESTRATE_WEB_URL
DEFAULT_DATABASE_URL = "sqlite:///orchestrate.db"
DEFAULT_MODELS = ("claude-opus-5-5", "claude-haiku-5-5", "claude-sonnet-5-5")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
# What the review reads of each example: all of it, or its opening and code only.
REVIEW_READS = ("examples", "code")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
# Sane bounds: a value past these is a typo (or "1e999"), not a configuration.
MAX_BUDGET_USD = Decimal(1_000_000)
MAX_SECONDS_OR_RATE = 86_400.0
# Real tokens, keys and signing secrets run to 32 characters and more. A shorter value is a
# paste gone wrong, and redacting a one-letter "secret" from every log line would blank
# that letter out of whole words it happens to match.
MIN_SECRET_CHARS = 8


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message says which and what to set."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything orchestrate reads from its environment, validated."""

    slack_bot_token: str | None = None
    slack_app_token: str | None = None
    slack_signing_secret: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    strategy_model: str = DEFAULT_MODELS[0]
    examples_model: str = DEFAULT_MODELS[1]
    review_model: str = DEFAULT_MODELS[2]
    strategy_effort: str = "low"
    examples_effort: str = "low"
    review_effort: str = "low"
    review_reads: str = "examples"
    admins: frozenset[str] = field(default_factory=frozenset)
    max_question_chars: int = 2000
    thread_context_tokens: int = 6000
    max_concurrent_calls: int = 16
    call_timeout_s: float = 120.0
    slack_posts_per_s: float = 1.0
    progress: bool = True  # the progress message in each run's thread
    slack_update_limit: int = 50  # chat.update calls per workspace in any window (Tier 3)
    slack_update_window_s: float = 60.0
    drain_grace_s: float = 20.0
    heartbeat_s: float = 3.0
    instance_ttl_s: float = 12.0
    instance_id: str | None = None  # None: the lowest free slot (`bot.ledger.instances`)
    # When the weekly digest is fired (cron, UTC; seconds first when 6 fields): as each ISO
    # week begins, when the hourly check it replaced first found last week's due. Tests
    # shorten it.
    digest_cron: str = "0 0 * * 1"
    # Stop (SIGTERM to itself) when found declared dead after a freeze; tests that run an
    # instance inside their own process turn it off.
    exit_when_fenced: bool = False
    anthropic_max_retries: int = 2
    prices_file: Path | None = None
    ledger_store_questions: bool = True
    # Where an older version spilled writes (named at start, not replayed); None: its default.
    ledger_spill_file: Path | None = None
    budget_user_daily_usd: Decimal | None = None
    budget_workspace_monthly_usd: Decimal | None = None
    log_level: str | None = None  # None: INFO when serving, WARNING for the demo
    log_level_libraries: str = "WARNING"  # slack_sdk, slack_bolt, anthropic, aiohttp, …
    log_format: str = "text"
    metrics_port: int | None = None  # Socket Mode's /metrics and /healthz; None: not served
    # The web view (bot.web): the address browsers reach; None turns it (and its links) off.
    web_url: str | None = None
    web_port: int | None = None  # Socket Mode: its own port (else METRICS_PORT's server)
    slack_client_id: str | None = None  # Sign in with Slack (OpenID Connect)
    slack_client_secret: str | None = None
    metrics_host: str = "127.0.0.1"  # where METRICS_PORT listens: this machine only
    http_header_timeout_s: float = 10.0  # HTTP mode: headers (and idle keep-alive) bound
    metrics_token: str | None = None  # when set, /metrics wants `Authorization: Bearer …`

    def __post_init__(self) -> None:
        if self.instance_ttl_s <= 2 * self.heartbeat_s:
            raise SettingsError(
                f"ORCHESTRATE_INSTANCE_TTL_S ({self.instance_ttl_s:g}) must be more than twice "
                f"ORCHESTRATE_HEARTBEAT_S ({self.heartbeat_s:g}), or one late beat would make "
                "a live instance look dead"
            )
        if self.web_url and not (self.slack_client_id and self.slack_client_secret):
            raise SettingsError(
                "ORCHESTRATE_WEB_URL is set, so people sign in with Slack: set SLACK_CLIENT_ID "
                "and SLACK_CLIENT_SECRET from the app's Basic Information page (or unset "
                "ORCHESTRATE_WEB_URL to turn the web view off)"
            )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Read and validate the environment; `env` replaces `os.environ` in tests."""
        source = _merged(os.environ if env is None else env, dotenv)
        r = _Reader(source)
        return cls(
            slack_bot_token=r.secret("SLACK_BOT_TOKEN"),
            slack_app_token=r.secret("SLACK_APP_TOKEN"),
            slack_signing_secret=r.secret("SLACK_SIGNING_SECRET"),
            slack_api_url=r.url("SLACK_API_URL") or DEFAULT_SLACK_API_URL,
            anthropic_api_key=r.secret("ANTHROPIC_API_KEY"),
            anthropic_base_url=r.url("ANTHROPIC_BASE_URL"),
            database_url=r.database_url("DATABASE_URL") or DEFAULT_DATABASE_URL,
            strategy_model=r.text("STRATEGY_MODEL") or DEFAULT_MODELS[0],
            examples_model=r.text("EXAMPLES_MODEL") or DEFAULT_MODELS[1],
            review_model=r.text("REVIEW_MODEL") or DEFAULT_MODELS[2],
            strategy_effort=r.choice("STRATEGY_EFFORT", EFFORTS) or "low",
            examples_effort=r.choice("EXAMPLES_EFFORT", EFFORTS) or "low",
            review_effort=r.choice("REVIEW_EFFORT", EFFORTS) or "low",
            review_reads=r.choice("REVIEW_READS", REVIEW_READS) or "examples",
            admins=frozenset((r.text("ORCHESTRATE_ADMINS") or "").replace(",", " ").split()),
            max_question_chars=r.parse("ORCHESTRATE_MAX_QUESTION_CHARS", _positive_int, 2000),
            thread_context_tokens=r.parse("ORCHESTRATE_THREAD_CONTEXT_TOKENS", _positive_int, 6000),
            max_concurrent_calls=r.parse("ORCHESTRATE_MAX_CONCURRENT_CALLS", _positive_int, 16),
            call_timeout_s=r.parse("ORCHESTRATE_CALL_TIMEOUT_S", _positive_float, 120.0),
            slack_posts_per_s=r.parse("ORCHESTRATE_SLACK_POSTS_PER_S", _positive_float, 1.0),
            progress=r.parse("ORCHESTRATE_PROGRESS", _on_off, True),
            slack_update_limit=r.parse("ORCHESTRATE_SLACK_UPDATE_LIMIT", _update_limit, 50),
            slack_update_window_s=r.parse(
                "ORCHESTRATE_SLACK_UPDATE_WINDOW_S", _positive_float, 60.0
            ),
            drain_grace_s=r.parse("ORCHESTRATE_DRAIN_GRACE_S", _non_negative_float, 20.0),
            heartbeat_s=r.parse("ORCHESTRATE_HEARTBEAT_S", _positive_float, 3.0),
            instance_ttl_s=r.parse("ORCHESTRATE_INSTANCE_TTL_S", _positive_float, 12.0),
            instance_id=r.text("ORCHESTRATE_INSTANCE_ID") or None,
            digest_cron=r.text("ORCHESTRATE_DIGEST_CRON") or "0 0 * * 1",
            exit_when_fenced=True,
            anthropic_max_retries=r.parse("ANTHROPIC_MAX_RETRIES", _non_negative_int, 2),
            prices_file=r.parse("PRICES_FILE", _existing_file, None),
            ledger_store_questions=r.parse("LEDGER_STORE_QUESTIONS", _boolean, True),
            ledger_spill_file=r.parse("LEDGER_SPILL_FILE", Path, None),
            budget_user_daily_usd=r.parse("BUDGET_USER_DAILY_USD", _dollars, None),
            budget_workspace_monthly_usd=r.parse("BUDGET_WORKSPACE_MONTHLY_USD", _dollars, None),
            log_level=r.level("LOG_LEVEL"),
            log_level_libraries=r.level("LOG_LEVEL_LIBRARIES") or "WARNING",
            log_format=(r.any_case_choice("LOG_FORMAT", LOG_FORMATS) or "text"),
            metrics_port=r.parse("METRICS_PORT", _port, None),
            web_url=(r.url("ORCHESTRATE_WEB_URL") or "").rstrip("/") or None,
            web_port=r.parse("WEB_PORT", _port, None),
            slack_client_id=r.text("SLACK_CLIENT_ID"),
            slack_client_secret=r.text("SLACK_CLIENT_SECRET"),
            metrics_host=r.text("METRICS_HOST") or "127.0.0.1",
            http_header_timeout_s=r.parse(
                "ORCHESTRATE_HTTP_HEADER_TIMEOUT_S", _positive_float, 10.0
            ),
            metrics_token=r.text("METRICS_TOKEN"),
        )

    def require(self, *names: str) -> None:
        """Fail with one message naming every variable in `names` that is unset."""
        missing = [n for n in names if not getattr(self, n.lower(), None)]
        if missing:
            raise SettingsError(
                f"{', '.join(missing)} must be set for this command "
                "(see README.md, 'Configuration')."
            )

    def __repr__(self) -> str:
        # Secrets never reach a log line through a repr.
        return f"Settings(slack_api_url={self.slack_api_url!r}, models={self.models!r})"

    def run_page_url(self, run_id: str) -> str | None:
        """The run's web page (`bot.web`), or None when the web view is off."""
        return f"{self.web_url}{RUN_PAGE_PATH}{run_id}" if self.web_url else None

    @property
    def models(self) -> tuple[str, str, str]:
        return (self.strategy_model, self.examples_model, self.review_model)


def _merged(env: Mapping[str, str], dotenv: Path | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if dotenv is not None and dotenv.is_file():
        values.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    values.update(env)
    return values


class _Reader:
    """Reads one variable at a time; every failure names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def parse(self, name: str, parser: Callable[[str], T], default: T) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return parser(raw)
        except ValueError as exc:
            # Parsers say what to set ("set a whole number above 0"): read as "must be …".
            expected = str(exc).removeprefix("set ").removeprefix("use ")
            raise SettingsError(f"{name} must be {expected}, got {_quoted(raw)}") from None

    def secret(self, name: str) -> str | None:
        """A token, key or signing secret: refused when too short to be a real one."""
        value = self.text(name)
        if value is not None and len(value) < MIN_SECRET_CHARS:
            raise SettingsError(
                f"{name} is {len(value)} character{'s' if len(value) != 1 else ''} long, too "
                f"short to be a real one (they are {MIN_SECRET_CHARS} or more): copy the whole "
                "value from the app's settings page, or leave the variable unset"
            )
        return value

    def level(self, name: str) -> str | None:
        """A logging level name, in any case."""

        def pick(raw: str) -> str:
            if raw.upper() not in LOG_LEVELS:
                raise ValueError(f"one of {', '.join(LOG_LEVELS)} (any case)")
            return raw.upper()

        return self.parse(name, pick, None)

    def any_case_choice(self, name: str, options: tuple[str, ...]) -> str | None:
        """One of `options` (all lower case), written in any case."""
        return self.parse(name, lambda raw: self._pick(raw.lower(), options), None)

    @staticmethod
    def _pick(value: str, options: tuple[str, ...]) -> str:
        if value not in options:
            raise ValueError(f"one of {', '.join(options)}")
        return value

    def choice(self, name: str, options: tuple[str, ...]) -> str | None:
        def pick(raw: str) -> str:
            if raw not in options:
                raise ValueError(f"use one of {', '.join(options)}")
            return raw

        return self.parse(name, pick, None)

    def url(self, name: str) -> str | None:
        def check(raw: str) -> str:
            if not raw.startswith(("http://", "https://")):
                raise ValueError("set an http:// or https:// URL")
            return raw

        return self.parse(name, check, None)

    def database_url(self, name: str) -> str | None:
        def check(raw: str) -> str:
            if not raw.startswith(("sqlite:///", "postgresql://", "postgres://")):
                raise ValueError("use sqlite:///path/to/file.db or postgresql://user@host/db")
            return raw

        return self.parse(name, check, None)


def _whole_number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("set a whole number, like 3") from None


def _quoted(raw: str) -> str:
    shown = raw if len(raw) <= 60 else raw[:57] + "..."
    return '"' + shown.replace('"', '\\"') + '"'


def _port(raw: str) -> int:
    value = _whole_number(raw)
    if not 0 < value < 65536:
        raise ValueError("set a TCP port number from 1 to 65535")
    return value


def _positive_int(raw: str) -> int:
    value = _whole_number(raw)
    if value <= 0:
        raise ValueError("set a whole number above 0")
    return value


def _update_limit(raw: str) -> int:
    # Edits go as a burst then at a rate, both within the limit: with one edit a window there
    # would be no rate left after the burst, and nothing past the first edit would ever go.
    value = _whole_number(raw)
    if value < 2:
        raise ValueError("set a whole number, 2 or more")
    return value


def _non_negative_int(raw: str) -> int:
    value = _whole_number(raw)
    if value < 0:
        raise ValueError("set a whole number, 0 or more")
    return value


def _positive_float(raw: str) -> float:
    return _bounded_float(raw, low=0.0, high=MAX_SECONDS_OR_RATE, low_ok=False)


def _non_negative_float(raw: str) -> float:
    return _bounded_float(raw, low=0.0, high=MAX_SECONDS_OR_RATE, low_ok=True)


def _bounded_float(raw: str, *, low: float, high: float, low_ok: bool) -> float:
    # float() reads "inf", "nan" and "1e999" (infinity): none is a usable setting.
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("set a number, like 2 or 0.5") from None
    above_low = value >= low if low_ok else value > low
    if not (math.isfinite(value) and above_low and value <= high):
        floor = f"{low:g} or more" if low_ok else f"above {low:g}"
        raise ValueError(f"set a number {floor}, at most {high:g}")
    return value + 0.0  # -0.0 becomes 0.0


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("set true or false")


def _on_off(raw: str) -> bool:
    """A switch written on/off, as the README gives it (true/false, yes/no, 1/0 read too)."""
    try:
        return _boolean(raw)
    except ValueError:
        raise ValueError("set on or off") from None


def _existing_file(raw: str) -> Path:
    path = Path(raw)
    if not path.is_file():
        raise ValueError("set the path of an existing file")
    return path


def _dollars(raw: str) -> Decimal:
    # Decimal reads "-0", "1e999", "Infinity" and "NaN"; a budget is none of those. A budget
    # of 0 would refuse every run: leave the variable unset for no budget instead.
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError("set a positive number of dollars") from None
    if not (value.is_finite() and 0 < value <= MAX_BUDGET_USD):
        raise ValueError(
            f"set an amount in US dollars above 0 and at most {MAX_BUDGET_USD:,}, like 25 or "
            "12.50 (leave it unset for no budget)"
        )
    return value
