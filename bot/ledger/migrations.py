"""Versioned schema of the ledger: ordered SQL steps per backend, applied once each at start.

A database records the versions it has in `schema_version`; `pending` returns the steps above
the highest one, which the backend applies in one locked transaction (both SQLite and
PostgreSQL have transactional DDL, so a step is all or nothing and two processes starting at
once cannot both apply it). A database newer than this build is refused rather than misread.
Never edit a released step: append a new one.

Layout (both backends): `runs` carries per-run running totals (cost, all-strategy cost,
calls, unpriced calls) kept in step with `calls` by `record_call`, so budget checks, daily
totals and top users/channels read runs only; `calls` repeats its run's team, user and start
time so edge-of-period aggregates scan one index range without a join. `call_days` (version
2) keeps per team, UTC day (of the run's start), user, model and role the sums of `calls`,
updated in the same transaction as each call: a month's by-model and by-role report reads a
few thousand of its rows instead of a million calls. Version 3 links a follow-up run to the
run whose thread it answers (`parent_run_id`) and adds `claims`, one row per Slack event
taken. `calls.call_key` (version 4) is unique: a call written twice (a retry after an outage,
a spill-file replay) is recorded once. Claims expire from version 5. Version 6
records each run's owning instance and the instances' heartbeats. Version 10 keeps each
run's strategy (`run_strategies`), so a Retry of a failed example works on any instance.
Version 12 marks each run's kind ('eval' for `orchestrate-bot eval`) and keeps evals' headlines.
Version 13 holds each model call's worst case against the budgets while it is in flight
(`call_holds`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.ledger.types import LedgerError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)

_STATUSES = "('running', 'finished', 'failed', 'interrupted', 'refused')"

# SQLite keeps times as REAL Unix seconds (UTC): cheap to compare, index and bucket by day.
SQLITE: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, calls, budget alerts",
        (
            f"""CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                team_id TEXT NOT NULL,
                channel_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                question_chars INTEGER NOT NULL,
                question TEXT,
                status TEXT NOT NULL CHECK (status IN {_STATUSES}),
                started_at REAL NOT NULL,
                finished_at REAL,
                elapsed_s REAL,
                thread_channel TEXT,
                thread_ts TEXT,
                reserved_nanos INTEGER NOT NULL DEFAULT 0,
                cost_nanos INTEGER NOT NULL DEFAULT 0,
                strategy_nanos INTEGER NOT NULL DEFAULT 0,
                calls INTEGER NOT NULL DEFAULT 0,
                unpriced_calls INTEGER NOT NULL DEFAULT 0,
                strategy_unpriced_calls INTEGER NOT NULL DEFAULT 0,
                error TEXT
            )""",
            "CREATE INDEX runs_team_time ON runs (team_id, started_at)",
            "CREATE INDEX runs_team_user_time ON runs (team_id, user_id, started_at)",
            "CREATE INDEX runs_running ON runs (started_at) WHERE status = 'running'",
            """CREATE TABLE calls (
                id INTEGER PRIMARY KEY,
                run_id TEXT NOT NULL REFERENCES runs (id),
                team_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                run_started_at REAL NOT NULL,
                role TEXT NOT NULL,
                model TEXT NOT NULL,
                request_id TEXT,
                component_index INTEGER,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cache_write_5m_tokens INTEGER NOT NULL,
                cache_write_1h_tokens INTEGER NOT NULL,
                cache_read_tokens INTEGER NOT NULL,
                thinking_tokens INTEGER NOT NULL,
                cost_nanos INTEGER,
                strategy_nanos INTEGER,
                latency_s REAL NOT NULL,
                outcome TEXT NOT NULL,
                error TEXT,
                created_at REAL NOT NULL
            )""",
            "CREATE INDEX calls_run ON calls (run_id)",
            "CREATE INDEX calls_team_time ON calls (team_id, run_started_at)",
            "CREATE INDEX calls_team_user_time ON calls (team_id, user_id, run_started_at)",
            "CREATE INDEX calls_created ON calls (created_at)",
            """CREATE TABLE budget_alerts (
                team_id TEXT NOT NULL,
                month TEXT NOT NULL,
                threshold INTEGER NOT NULL,
                claimed_at REAL NOT NULL,
                PRIMARY KEY (team_id, month, threshold)
            )""",
        ),
    ),
)

POSTGRES: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, calls, budget alerts",
        (
            f"""CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                team_id TEXT NOT NULL,
                channel_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                question_chars INTEGER NOT NULL,
                question TEXT,
                status TEXT NOT NULL CHECK (status IN {_STATUSES}),
                started_at TIMESTAMPTZ NOT NULL,
                finished_at TIMESTAMPTZ,
                elapsed_s DOUBLE PRECISION,
                thread_channel TEXT,
                thread_ts TEXT,
                reserved_nanos BIGINT NOT NULL DEFAULT 0,
                cost_nanos BIGINT NOT NULL DEFAULT 0,
                strategy_nanos BIGINT NOT NULL DEFAULT 0,
                calls INTEGER NOT NULL DEFAULT 0,
                unpriced_calls INTEGER NOT NULL DEFAULT 0,
                strategy_unpriced_calls INTEGER NOT NULL DEFAULT 0,
                error TEXT
            )""",
            "CREATE INDEX runs_team_time ON runs (team_id, started_at)",
            "CREATE INDEX runs_team_user_time ON runs (team_id, user_id, started_at)",
            "CREATE INDEX runs_running ON runs (started_at) WHERE status = 'running'",
            """CREATE TABLE calls (
                id BIGSERIAL PRIMARY KEY,
                run_id TEXT NOT NULL REFERENCES runs (id),
                team_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                run_started_at TIMESTAMPTZ NOT NULL,
                role TEXT NOT NULL,
                model TEXT NOT NULL,
                request_id TEXT,
                component_index INTEGER,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                cache_write_5m_tokens BIGINT NOT NULL,
                cache_write_1h_tokens BIGINT NOT NULL,
                cache_read_tokens BIGINT NOT NULL,
                thinking_tokens BIGINT NOT NULL,
                cost_nanos BIGINT,
                strategy_nanos BIGINT,
                latency_s DOUBLE PRECISION NOT NULL,
                outcome TEXT NOT NULL,
                error TEXT,
                created_at TIMESTAMPTZ NOT NULL
            )""",
            "CREATE INDEX calls_run ON calls (run_id)",
            "CREATE INDEX calls_team_time ON calls (team_id, run_started_at)",
            "CREATE INDEX calls_team_user_time ON calls (team_id, user_id, run_started_at)",
            "CREATE INDEX calls_created ON calls (created_at)",
            """CREATE TABLE budget_alerts (
                team_id TEXT NOT NULL,
                month TEXT NOT NULL,
                threshold INTEGER NOT NULL,
                claimed_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (team_id, month, threshold)
            )""",
        ),
    ),
)


_CALL_DAYS_SUMS = (
    "calls, input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,"
    " cache_read_tokens, thinking_tokens, cost_nanos, unpriced_calls, strategy_nanos,"
    " strategy_unpriced_calls"
)
CALL_DAYS_COLUMNS = "team_id, day, user_id, model, role, " + _CALL_DAYS_SUMS


def _call_days_table(integer: str, suffix: str) -> str:
    sums = ", ".join(f"{name.strip()} {integer} NOT NULL" for name in _CALL_DAYS_SUMS.split(","))
    return (
        "CREATE TABLE call_days (team_id TEXT NOT NULL, day INTEGER NOT NULL,"
        f" user_id TEXT NOT NULL, model TEXT NOT NULL, role TEXT NOT NULL, {sums},"
        f" PRIMARY KEY (team_id, day, user_id, model, role)){suffix}"
    )


def call_days_backfill(day_sql: str) -> str:
    """Rebuild `call_days` from `calls` (the migration's backfill; benchmarks reuse it)."""
    return (
        f"INSERT INTO call_days ({CALL_DAYS_COLUMNS})"
        f" SELECT team_id, {day_sql.format(col='run_started_at')}, user_id, model, role,"
        " COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_write_5m_tokens),"
        " SUM(cache_write_1h_tokens), SUM(cache_read_tokens), SUM(thinking_tokens),"
        " COALESCE(SUM(cost_nanos), 0), COUNT(*) - COUNT(cost_nanos),"
        " COALESCE(SUM(CASE WHEN cost_nanos IS NOT NULL THEN strategy_nanos END), 0),"
        " SUM(CASE WHEN cost_nanos IS NOT NULL AND strategy_nanos IS NULL THEN 1 ELSE 0 END)"
        " FROM calls GROUP BY 1, 2, 3, 4, 5"
    )


SQLITE_DAY = "CAST({col} / 86400 AS INTEGER)"
POSTGRES_DAY = "((({col}) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"

SQLITE += (
    Migration(
        2,
        "daily per-user, per-model call totals",
        (
            # WITHOUT ROWID clusters the rows by (team, day, …): a period is one range read.
            _call_days_table("INTEGER", " WITHOUT ROWID"),
            call_days_backfill(SQLITE_DAY),
            "CREATE INDEX calls_time ON calls (run_started_at)",
        ),
    ),
)
POSTGRES += (
    Migration(
        2,
        "daily per-user, per-model call totals",
        (
            _call_days_table("BIGINT", ""),
            call_days_backfill(POSTGRES_DAY),
            "CREATE INDEX calls_time ON calls (run_started_at)",
        ),
    ),
)


def _followups_and_claims(time_type: str) -> tuple[str, ...]:
    return (
        "ALTER TABLE runs ADD COLUMN parent_run_id TEXT",
        "CREATE INDEX runs_parent ON runs (parent_run_id)",
        f"CREATE TABLE claims (key TEXT PRIMARY KEY, claimed_at {time_type} NOT NULL)",
    )


# Version 3: a follow-up in a run's thread is its own run (its asker, its budget check)
# pointing at the run it follows; `claims` lets one instance of many take a Slack event.
SQLITE += (Migration(3, "follow-up runs, claimed events", _followups_and_claims("REAL")),)
POSTGRES += (Migration(3, "follow-up runs, claimed events", _followups_and_claims("TIMESTAMPTZ")),)


# Version 4: each call carries the key its writer gave it, unique, so a write retried after
# an outage (or replayed from the spill file) is recorded once, however often it is sent.
_CALL_KEYS = (
    "ALTER TABLE calls ADD COLUMN call_key TEXT",
    "CREATE UNIQUE INDEX calls_key ON calls (call_key)",
)
SQLITE += (Migration(4, "idempotent call keys", _CALL_KEYS),)
POSTGRES += (Migration(4, "idempotent call keys", _CALL_KEYS),)

# Version 5: claims lapse (`expires_at`; NULL for claims taken before, which never do), so a
# key can be claimed again after its window and old claims can be deleted.
SQLITE += (
    Migration(
        5,
        "claims expire",
        (
            "ALTER TABLE claims ADD COLUMN expires_at REAL",
            "CREATE INDEX claims_expiry ON claims (expires_at)",
        ),
    ),
)
POSTGRES += (
    Migration(
        5,
        "claims expire",
        (
            "ALTER TABLE claims ADD COLUMN expires_at TIMESTAMPTZ",
            "CREATE INDEX claims_expiry ON claims (expires_at)",
        ),
    ),
)


def _instances(time_type: str) -> tuple[str, ...]:
    return (
        "CREATE TABLE instances (id TEXT PRIMARY KEY, host TEXT NOT NULL,"
        f" pid INTEGER NOT NULL, started_at {time_type} NOT NULL,"
        f" heartbeat_at {time_type} NOT NULL)",
        "ALTER TABLE runs ADD COLUMN owner_id TEXT",
        "CREATE INDEX runs_owner ON runs (owner_id) WHERE status = 'running'",
    )


# Version 6: each run names the instance that owns it, and instances beat, so the runs of a
# dead one are found and closed by any live one, never those of a live one.
SQLITE += (Migration(6, "run owners and heartbeats", _instances("REAL")),)
POSTGRES += (Migration(6, "run owners and heartbeats", _instances("TIMESTAMPTZ")),)


# Version 7: a call cut off before the API counted its output (a dropped connection, a
# timeout, a stop) carries an estimate; the call and the day's totals say so, so reports can
# mark the figures that include one. Earlier calls were all exact.
_ESTIMATES = (
    "ALTER TABLE calls ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE call_days ADD COLUMN estimated_calls INTEGER NOT NULL DEFAULT 0",
)
SQLITE += (Migration(7, "estimated calls", _ESTIMATES),)
POSTGRES += (Migration(7, "estimated calls", _ESTIMATES),)


def _governance(time_type: str, serial: str) -> tuple[str, ...]:
    return (
        # Admins' settings per team, one row per key (an absent key falls back to the
        # environment's initial value; an empty value means "none" explicitly).
        f"""CREATE TABLE team_settings (
            team_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_by TEXT NOT NULL,
            updated_at {time_type} NOT NULL,
            PRIMARY KEY (team_id, key)
        )""",
        # The audit trail: who changed which setting, from what, to what, when.
        f"""CREATE TABLE settings_changes (
            id {serial},
            team_id TEXT NOT NULL,
            key TEXT NOT NULL,
            old_value TEXT,
            new_value TEXT,
            changed_by TEXT NOT NULL,
            changed_at {time_type} NOT NULL
        )""",
        "CREATE INDEX settings_changes_team ON settings_changes (team_id, changed_at)",
        # Once-per-period notices (threshold alerts, weekly digests) claimed across instances.
        f"""CREATE TABLE notices (
            team_id TEXT NOT NULL,
            key TEXT NOT NULL,
            claimed_at {time_type} NOT NULL,
            PRIMARY KEY (team_id, key)
        )""",
        # The models a run used, so a reservation can follow recent runs of the same models.
        "ALTER TABLE runs ADD COLUMN models TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX runs_team_models ON runs (team_id, models, started_at)",
    )


_GOVERNANCE = "budget settings, audit trail, notices"
SQLITE += (Migration(8, _GOVERNANCE, _governance("REAL", "INTEGER PRIMARY KEY")),)
POSTGRES += (Migration(8, _GOVERNANCE, _governance("TIMESTAMPTZ", "BIGSERIAL PRIMARY KEY")),)


def _interaction_tables(time_type: str) -> tuple[str, ...]:
    """Version 9: what people do to a run from Slack. A stop request is one row per run (the
    first click wins; the owning instance polls for it); a vote is one row per person and
    run, replaced when they change their mind."""
    return (
        f"""CREATE TABLE stop_requests (
            run_id TEXT PRIMARY KEY REFERENCES runs (id),
            user_id TEXT NOT NULL,
            requested_at {time_type} NOT NULL
        )""",
        f"""CREATE TABLE votes (
            run_id TEXT NOT NULL REFERENCES runs (id),
            user_id TEXT NOT NULL,
            vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
            reason TEXT,
            voted_at {time_type} NOT NULL,
            PRIMARY KEY (run_id, user_id)
        )""",
    )


SQLITE += (Migration(9, "stop requests and votes", _interaction_tables("REAL")),)
POSTGRES += (Migration(9, "stop requests and votes", _interaction_tables("TIMESTAMPTZ")),)


def _run_strategies(time_type: str) -> tuple[str, ...]:
    """Version 10: a run's strategy (JSON: title, essence, components with name and
    instruction), written when the plan is ready, so that a Retry of one of its examples can
    be served by any instance, after any restart. Private text like the question it answers:
    not kept when questions are not, and deleted with its run."""
    return (
        f"""CREATE TABLE run_strategies (
            run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
            strategy TEXT NOT NULL,
            recorded_at {time_type} NOT NULL
        )""",
    )


SQLITE += (Migration(10, "run strategies", _run_strategies("REAL")),)
POSTGRES += (Migration(10, "run strategies", _run_strategies("TIMESTAMPTZ")),)


def _run_events(time_type: str, serial: str) -> tuple[str, ...]:
    """Version 11: what a run showed, in order (its strategy, each example or failure, its
    review, its end with the bill), as JSON, so that its web page (`bot.web`) can be drawn
    and followed live by any instance. Private text like the question: not kept when
    questions are not, and deleted with its run."""
    return (
        f"""CREATE TABLE run_events (
            id {serial},
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            recorded_at {time_type} NOT NULL
        )""",
        "CREATE INDEX run_events_run ON run_events (run_id, id)",
    )


SQLITE += (
    Migration(11, "run events for the web page", _run_events("REAL", "INTEGER PRIMARY KEY")),
)
POSTGRES += (
    Migration(
        11, "run events for the web page", _run_events("TIMESTAMPTZ", "BIGSERIAL PRIMARY KEY")
    ),
)


def _evals(time_type: str, integer: str) -> tuple[str, ...]:
    """Version 12: an eval's spend is its own kind of run (`runs.kind`: 'slack' for every run
    a person started, 'eval' for `orchestrate-bot eval`'s arms and judgments, so reports can
    tell them apart), and each finished eval's headline, for admins' App Home."""
    return (
        "ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'slack'",
        f"""CREATE TABLE evals (
            id TEXT PRIMARY KEY,
            finished_at {time_type} NOT NULL,
            live INTEGER NOT NULL,
            questions INTEGER NOT NULL,
            wins INTEGER NOT NULL,
            ties INTEGER NOT NULL,
            losses INTEGER NOT NULL,
            orchestrate_nanos {integer} NOT NULL,
            baseline_nanos {integer} NOT NULL,
            judge_nanos {integer} NOT NULL,
            judge_model TEXT NOT NULL
        )""",
        "CREATE INDEX evals_finished ON evals (finished_at)",
    )


SQLITE += (Migration(12, "eval runs and headlines", _evals("REAL", "INTEGER")),)
POSTGRES += (Migration(12, "eval runs and headlines", _evals("TIMESTAMPTZ", "BIGINT")),)


def pending(steps: tuple[Migration, ...], current: int) -> tuple[Migration, ...]:
    """The steps a database at version `current` still needs; refuses one from the future."""
    latest = steps[-1].version if steps else 0
    if current > latest:
        raise LedgerError(
            f"the ledger database is at schema version {current}, newer than this build "
            f"knows ({latest}): upgrade orchestrate before pointing it at this database"
        )
    return tuple(step for step in steps if step.version > current)


def _call_holds(time_type: str) -> tuple[str, ...]:
    """Version 13: what a model call in flight holds against the budgets (its worst case),
    from just before it starts until its record is written (the same transaction deletes
    the hold) or its run ends. Only holds of `running` runs count, so a crashed instance's
    holds lapse when its runs are reaped."""
    return (
        f"""CREATE TABLE call_holds (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            amount_nanos BIGINT NOT NULL,
            created_at {time_type} NOT NULL
        )""",
        "CREATE INDEX call_holds_run ON call_holds (run_id)",
    )


SQLITE += (Migration(13, "call holds", _call_holds("REAL")),)
POSTGRES += (Migration(13, "call holds", _call_holds("TIMESTAMPTZ")),)
