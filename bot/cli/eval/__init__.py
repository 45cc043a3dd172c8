"""`orchestrate-bot eval`: orchestrate against a real all-Opus answer, judged pairwise.

For each question (`questions.load_questions`), `--repeat` times: one orchestrate run, one
all-Opus answer and two judgments (`runner.Arms`), then a report (`report`): Markdown on
stdout, `report.json`, `report.csv` and `chart.svg` in `--out`. Offline by default, against
the Claude stand-in (started here as `demo` starts it; its deterministic judge scores each
answer from its text), with the eval's ledger in `--out` (stand-in dollars are not spent);
`--live` talks to the real API with ANTHROPIC_API_KEY, records in DATABASE_URL's ledger,
and, when the most it could cost passes $1, asks before spending (`--yes` answers for you).
Each finished question is kept in `--out/questions/` the moment it finishes: after Ctrl-C
the same command resumes where it stopped, and never pays for a finished question again.
The progress bar goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from blocks import format_usd
from bot.cli.eval import report
from bot.cli.eval.questions import load_questions
from bot.cli.eval.runner import Arms, QuestionResult
from bot.core import judging
from bot.core.claude import Claude, max_tokens_for
from bot.core.pipeline import Pipeline
from bot.core.pricing import PriceTable
from bot.core.usage import TokenUsage
from bot.ledger import Ledger, LedgerError, open_ledger
from bot.ledger.evals import EvalHeadline
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.settings import Settings, SettingsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CONFIRM_ABOVE_USD = Decimal(1)
JUDGE_EFFORT = "low"

Confirm = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class EvalOptions:
    questions: str
    live: bool = False
    repeat: int = 1
    judge: str | None = None  # None: the strategy model
    out: Path = Path("eval-report")
    yes: bool = False
    time_scale: float = 0.05


async def eval_command(
    settings: Settings,
    options: EvalOptions,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    confirm: Confirm | None = None,
) -> int:
    """Run the eval `options` describe; the process exit code."""
    stdout, stderr = out or sys.stdout, err or sys.stderr
    try:
        questions = load_questions(options.questions, max_chars=settings.max_question_chars)
    except ValueError as exc:
        print(f"orchestrate-bot eval: {exc}", file=stderr)
        return EXIT_USAGE
    if options.live and not settings.anthropic_api_key:
        raise SettingsError(
            "ANTHROPIC_API_KEY must be set for `eval --live`: it calls the real Claude API "
            "(leave out --live to run offline on the stand-ins)."
        )
    judge = options.judge or settings.strategy_model
    prices = PriceTable.load(settings.prices_file)
    if prices.price_of(judge) is None:
        print(
            f"orchestrate-bot eval: --judge {judge!r} is not in the price table, so its spend "
            "could not be counted: choose a priced model (bot/core/prices.json or PRICES_FILE).",
            file=stderr,
        )
        return EXIT_USAGE
    store = _Store(options.out / "questions")
    fingerprint = _fingerprint(settings, judge=judge, live=options.live)
    plan = [
        (index, repeat, question, _key(fingerprint, question, repeat))
        for repeat in range(options.repeat)
        for index, question in enumerate(questions)
    ]
    done = store.load()
    todo = [item for item in plan if item[3] not in done]
    progress = _Progress(stderr, total=len(plan), done=len(plan) - len(todo))
    try:
        options.out.mkdir(parents=True, exist_ok=True)
        async with _arms(settings, options, prices, judge) as (arms, ledger):
            if options.live and todo and not _confirmed(arms, options, todo, len(plan), stderr,
                                                        confirm):  # fmt: skip
                return EXIT_FAILED
            for index, repeat, question, key in todo:
                progress.show(f"question {index + 1}")
                result = await arms.question(question, key=key, index=index, repeat=repeat)
                store.save(result)
                progress.finished(result)
            progress.close()
            finished = store.load()
            results = [finished[key] for _, _, _, key in plan]
            await ledger.evals.record(_headline(results, judge=judge, live=options.live))
        setup = _setup(settings)
        _write_reports(options.out, results, judge=judge, live=options.live, setup=setup)
    except (LedgerError, OSError) as exc:
        # The ledger (or --out) cannot be written: stop paying for answers nobody records.
        progress.close()
        print(
            f"orchestrate-bot eval: stopped, {exc}; the {_kept(store, plan)} finished question "
            f"run(s) are kept in {options.out}: run the same command again to carry on.",
            file=stderr,
        )
        return EXIT_FAILED
    except asyncio.CancelledError:
        progress.close()
        kept = _kept(store, plan)
        print(
            f"orchestrate-bot eval: interrupted; {kept} of {len(plan)} question run(s) are kept "
            f"in {options.out}: run the same command again to finish (they are not paid again).",
            file=stderr,
        )
        raise
    stdout.write(report.markdown(results, judge_model=judge, live=options.live, setup=setup))
    print(f"Report files in {options.out}: report.json, report.csv, chart.svg", file=stderr)
    return EXIT_OK


@contextlib.asynccontextmanager
async def _arms(
    settings: Settings, options: EvalOptions, prices: PriceTable, judge: str
) -> AsyncIterator[tuple[Arms, Ledger]]:
    async with contextlib.AsyncExitStack() as stack:
        if options.live:
            run_settings = settings
        else:
            sandbox = await stack.enter_async_context(
                ClaudeSandbox(latency=LatencyModel(time_scale=options.time_scale))
            )
            run_settings = replace(
                settings,
                anthropic_api_key=sandbox.api_key,
                anthropic_base_url=sandbox.base_url,
                database_url=f"sqlite:///{(options.out / 'eval-ledger.db').resolve()}",
            )
        ledger = await stack.enter_async_context(
            open_ledger(
                run_settings.database_url,
                prices=prices,
                strategy_model=run_settings.strategy_model,
                store_questions=run_settings.ledger_store_questions,
                older_spill=run_settings.ledger_spill_file,
            )
        )
        claude = Claude.from_settings(run_settings, price=prices.cost)
        stack.push_async_callback(claude.aclose)
        pipeline = Pipeline(claude, settings=run_settings, prices=prices)
        arms = Arms(
            pipeline, claude, ledger, settings=run_settings, prices=prices, judge_model=judge
        )
        yield arms, ledger


def _kept(store: _Store, plan: Sequence[tuple[int, int, str, str]]) -> int:
    """How many of this eval's question runs are finished and stored."""
    finished = store.load()
    return sum(key in finished for _, _, _, key in plan)


def _fingerprint(settings: Settings, *, judge: str, live: bool) -> str:
    """What makes a stored result reusable: the same models, efforts, review reading, judge
    and API."""
    return "|".join(
        (*settings.models, settings.strategy_effort, settings.examples_effort,
         settings.review_effort, settings.review_reads, judge, "live" if live else "offline")
    )  # fmt: skip


def _key(fingerprint: str, question: str, repeat: int) -> str:
    return hashlib.sha256(f"{fingerprint}\n{repeat}\n{question}".encode()).hexdigest()[:20]


def _confirmed(
    arms: Arms,
    options: EvalOptions,
    todo: Sequence[tuple[int, int, str, str]],
    planned: int,
    stderr: TextIO,
    confirm: Confirm | None,
) -> bool:
    """Say the most a --live run can cost; above $1 (or unknown), ask unless --yes."""
    estimate = _worst_case(arms, [question for _, _, question, _ in todo])
    shown = format_usd(estimate) if estimate is not None else "an unknown amount"
    print(
        f"orchestrate-bot eval: {len(todo)} question run(s) to pay for (of {planned}); "
        f"at most {shown} if every call used its whole token limit.",
        file=stderr,
    )
    if (estimate is None or estimate > CONFIRM_ABOVE_USD) and not options.yes:
        ask = confirm or _ask_stdin
        if not ask(f"Spend up to {shown} on the Claude API? [y/N] "):
            print("orchestrate-bot eval: nothing spent.", file=stderr)
            return False
    return True


def _worst_case(arms: Arms, questions: Sequence[str]) -> Decimal | None:
    """The most the questions can cost: every call at its token limit (None if unpriced)."""
    settings, prices, judge = arms.settings, arms.prices, arms.judge_model
    total = Decimal(0)
    baseline_out = max_tokens_for("baseline", settings.strategy_effort)
    judge_out = max_tokens_for("judge", JUDGE_EFFORT)
    # The judge reads both answers: at most the run's visible output and the baseline's.
    answers_in = 6 * max_tokens_for("example", settings.examples_effort) + 2048 + baseline_out
    for question in questions:
        run = arms.pipeline.worst_case_usd(question)
        prompt = (len(judging.BASELINE_SYSTEM) + len(question)) // 3 + 1
        baseline = prices.cost(settings.strategy_model, TokenUsage(prompt, baseline_out))
        judged = prices.cost(judge, TokenUsage(answers_in + prompt + 500, judge_out))
        if run is None or baseline is None or judged is None:
            return None
        total += run + baseline + 2 * judged
    return total


def _ask_stdin(prompt: str) -> bool:
    if not sys.stdin.isatty():
        print(
            "orchestrate-bot eval: this --live run may cost more than $1 and there is no "
            "terminal to ask: add --yes to accept the estimate.",
            file=sys.stderr,
        )
        return False
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _headline(results: Sequence[QuestionResult], *, judge: str, live: bool) -> EvalHeadline:
    o = report.overall(results)
    return EvalHeadline(
        finished_at=datetime.now(UTC),
        live=live,
        questions=o.questions,
        wins=o.wins,
        ties=o.ties,
        losses=o.losses,
        orchestrate_usd=o.orchestrate_usd,
        baseline_usd=o.baseline_usd,
        judge_usd=o.judge_usd,
        judge_model=judge,
    )


def _setup(settings: Settings) -> str:
    """The settings an eval's answers depend on, as its report states them."""
    return (
        f"STRATEGY_MODEL={settings.strategy_model} EXAMPLES_MODEL={settings.examples_model} "
        f"REVIEW_MODEL={settings.review_model}; efforts {settings.strategy_effort}/"
        f"{settings.examples_effort}/{settings.review_effort}; "
        f"REVIEW_READS={settings.review_reads}"
    )


def _write_reports(
    out: Path, results: Sequence[QuestionResult], *, judge: str, live: bool, setup: str
) -> None:
    data = report.json_report(results, judge_model=judge, live=live, setup=setup)
    _atomic(out / "report.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    _atomic(out / "report.csv", report.csv_text(results))
    _atomic(out / "chart.svg", report.chart_svg(results))
    _atomic(out / "report.md", report.markdown(results, judge_model=judge, live=live, setup=setup))


def _atomic(path: Path, text: str) -> None:
    """Write all of `text` or nothing: a Ctrl-C mid-write leaves the old file whole."""
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(text, "utf-8")
    os.replace(temporary, path)


class _Store:
    """Finished questions, one JSON file each, named by their key."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def load(self) -> dict[str, QuestionResult]:
        found: dict[str, QuestionResult] = {}
        for path in sorted(self._dir.glob("*.json")) if self._dir.is_dir() else ():
            try:
                result = QuestionResult.from_json(json.loads(path.read_text("utf-8")))
            except (ValueError, KeyError, TypeError):
                continue  # unreadable: that question is simply run again
            found[result.key] = result
        return found

    def save(self, result: QuestionResult) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
        _atomic(self._dir / f"{result.key}.json", text)


class _Progress:
    """A one-line bar on stderr (redrawn on a terminal, a line per question otherwise)."""

    WIDTH = 24

    def __init__(self, stream: TextIO, *, total: int, done: int) -> None:
        self._stream = stream
        self._total, self._done = total, done
        self._spent = Decimal(0)
        self._tty = stream.isatty()

    def show(self, doing: str) -> None:
        filled = self.WIDTH * self._done // max(self._total, 1)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = f"[{bar}] {self._done}/{self._total} · {format_usd(self._spent)} spent · {doing}"
        if self._tty:
            self._stream.write("\r\x1b[2K" + line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def finished(self, result: QuestionResult) -> None:
        self._done += 1
        self._spent += (
            result.orchestrate.cost + result.baseline.cost + Decimal(result.judge_cost_usd)
        )
        self.show(f"question {result.index + 1}: {result.outcome or 'not judged'}")

    def close(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()
