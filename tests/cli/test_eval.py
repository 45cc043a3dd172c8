"""`orchestrate-bot eval`: offline to a report, resumable, and careful with real money.

The offline runs start their own Claude stand-in, as the command does. The `--live` path is
driven against a stand-in started here (ANTHROPIC_BASE_URL pointed at it), so the baseline's
and the judge's requests are validated by it as strictly as a run's are, and counted.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.cli.eval import EvalOptions, eval_command
from bot.cli.eval.questions import load_questions
from bot.cli.eval.report import wilson
from bot.cli.eval.runner import ArmResult, OrderVerdict, fold
from bot.core.claude import JUDGE_FORMAT
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.settings import Settings
from tests.harness import running_stack
from tests.slack.test_feedback import open_home

QUESTIONS = [
    "Design a REST API for a social network",
    "Design the SQL schema for a small invoicing app",
    "Plan the onboarding of a new backend engineer",
]


def questions_file(tmp_path: Path, questions: list[str]) -> Path:
    path = tmp_path / "questions.txt"
    path.write_text("# my questions\n\n" + "\n".join(questions) + "\n", "utf-8")
    return path


def ledger_rows(out: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(out / "eval-ledger.db") as db:
        rows = db.execute(sql).fetchall()
    db.close()
    return rows


async def test_offline_eval_writes_every_report_and_records_its_spend(tmp_path: Path) -> None:
    out_dir = tmp_path / "report"
    stdout, stderr = io.StringIO(), io.StringIO()
    # One question asked twice (--repeat 2): two question runs, each paid and judged.
    options = EvalOptions(str(questions_file(tmp_path, QUESTIONS[:1])), out=out_dir, repeat=2)
    code = await eval_command(Settings(), options, out=stdout, err=stderr)
    assert code == 0, stderr.getvalue()

    markdown = stdout.getvalue()
    assert "# orchestrate eval: 2 question(s)" in markdown
    assert "| 1 | Design a REST API" in markdown and "| 1.2 | Design a REST API" in markdown
    assert "REVIEW_READS=examples" in markdown
    assert "95% Wilson interval" in markdown and "footers predicted" in markdown
    assert "[" in stderr.getvalue() and "2/2" in stderr.getvalue()  # the progress bar

    data = json.loads((out_dir / "report.json").read_text())
    overall = data["overall"]
    assert overall["questions"] == 2
    assert overall["wins"] + overall["ties"] + overall["losses"] == 2
    for q in data["questions"]:
        assert q["orchestrate"]["answer"] and q["baseline"]["answer"]
        assert [v["first"] for v in q["verdicts"]] == ["orchestrate", "baseline"]
        assert float(q["orchestrate"]["cost_usd"]) > 0 and float(q["baseline"]["cost_usd"]) > 0
        assert float(q["orchestrate"]["predicted_all_opus_usd"]) > 0
    rows = list(csv.DictReader(io.StringIO((out_dir / "report.csv").read_text())))
    assert [(r["question"], r["repeat"]) for r in rows] == [
        (QUESTIONS[0], "1"),
        (QUESTIONS[0], "2"),
    ]
    assert all(r["outcome"] in ("win", "tie", "loss") for r in rows)

    svg = ET.fromstring((out_dir / "chart.svg").read_text())
    circles = [c for c in svg.iter("{http://www.w3.org/2000/svg}circle") if c.get("class")]
    assert sorted(c.get("class") for c in circles) == ["baseline"] * 2 + ["orchestrate"] * 2

    # The spend is in the ledger, under its own kind, with the eval's own roles.
    kinds = ledger_rows(out_dir, "SELECT kind, COUNT(*) FROM runs GROUP BY kind")
    assert kinds == [("eval", 6)]  # per question: the run, the baseline, the judgments
    roles = dict(ledger_rows(out_dir, "SELECT role, COUNT(*) FROM calls GROUP BY role"))
    assert roles["baseline"] == 2 and roles["judge"] == 4
    assert {"plan", "example", "review"} <= roles.keys()
    (headline,) = ledger_rows(out_dir, "SELECT questions, wins + ties + losses, live FROM evals")
    assert headline == (2, 2, 0)


async def test_an_interrupted_eval_resumes_without_paying_again(tmp_path: Path) -> None:
    out_dir = tmp_path / "report"
    options = EvalOptions(str(questions_file(tmp_path, QUESTIONS)), out=out_dir, time_scale=0.1)
    first = asyncio.create_task(
        eval_command(Settings(), options, out=io.StringIO(), err=io.StringIO())
    )
    for _ in range(600):  # the store is files: nothing to wait on but a look
        if list(out_dir.glob("questions/*.json")):
            break
        await asyncio.sleep(0.05)
    first.cancel()  # what Ctrl-C does to the command's task
    with pytest.raises(asyncio.CancelledError):
        await first
    kept = len(list((out_dir / "questions").glob("*.json")))
    assert 1 <= kept < 3

    stdout = io.StringIO()
    code = await eval_command(Settings(), options, out=stdout, err=io.StringIO())
    assert code == 0
    assert "# orchestrate eval: 3 question(s)" in stdout.getvalue()
    # The first question's arms were paid once: one finished run of each kind of arm.
    finished = ledger_rows(
        out_dir,
        "SELECT COUNT(*) FROM runs WHERE question = '" + QUESTIONS[0] + "' AND status = 'finished'",
    )
    assert finished == [(3,)]
    assert ledger_rows(out_dir, "SELECT COUNT(*) FROM evals") == [(1,)]


async def test_an_out_directory_that_cannot_be_written_stops_it_with_a_message(
    tmp_path: Path,
) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a directory")
    err = io.StringIO()
    options = EvalOptions(str(questions_file(tmp_path, QUESTIONS[:1])), out=taken)
    assert await eval_command(Settings(), options, out=io.StringIO(), err=err) == 1
    assert "orchestrate-bot eval: stopped" in err.getvalue()
    assert taken.read_text() == "not a directory"


def test_live_refuses_to_start_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    assert main(["eval", "starter", "--live", "--out", str(tmp_path / "out")]) == 2
    assert "ANTHROPIC_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


async def live_settings(sandbox: ClaudeSandbox, tmp_path: Path) -> Settings:
    return replace(
        Settings(),
        anthropic_api_key=sandbox.api_key,
        anthropic_base_url=sandbox.base_url,
        database_url=f"sqlite:///{tmp_path / 'live.db'}",
    )


async def test_a_live_run_over_a_dollar_asks_first_and_spends_nothing_if_refused(
    tmp_path: Path,
) -> None:
    asked: list[str] = []

    def refuse(prompt: str) -> bool:
        asked.append(prompt)
        return False

    async with ClaudeSandbox(latency=LatencyModel(time_scale=0.01)) as sandbox:
        settings = await live_settings(sandbox, tmp_path)
        err = io.StringIO()
        options = EvalOptions(str(questions_file(tmp_path, QUESTIONS)), live=True, out=tmp_path)
        code = await eval_command(settings, options, out=io.StringIO(), err=err, confirm=refuse)
        assert code == 1
        assert len(asked) == 1 and "Spend up to $" in asked[0]
        assert "at most $" in err.getvalue() and "nothing spent" in err.getvalue()
        assert sandbox.messages() == []


async def test_a_live_run_sends_baseline_and_judge_requests_the_api_accepts(
    tmp_path: Path,
) -> None:
    async with ClaudeSandbox(latency=LatencyModel(time_scale=0.01)) as sandbox:
        settings = await live_settings(sandbox, tmp_path)
        options = EvalOptions(
            str(questions_file(tmp_path, QUESTIONS[:1])), live=True, yes=True, out=tmp_path / "o"
        )
        code = await eval_command(settings, options, out=io.StringIO(), err=io.StringIO())
        assert code == 0
        requests = sandbox.messages()
        assert all(r.status == 200 for r in requests), [r.summary() for r in requests]
        roles = [r.role for r in requests]
        assert roles.count("baseline") == 1 and roles.count("judge") == 2
        judge = next(r for r in requests if r.role == "judge")
        assert judge.body["output_config"]["format"] == JUDGE_FORMAT
        assert judge.body["model"] == settings.strategy_model
        baseline = next(r for r in requests if r.role == "baseline")
        assert baseline.body["model"] == settings.strategy_model
        assert baseline.body["output_config"] == {"effort": settings.strategy_effort}
    # --live records in DATABASE_URL's ledger, not in --out.
    with sqlite3.connect(tmp_path / "live.db") as db:
        assert db.execute("SELECT COUNT(*) FROM runs WHERE kind = 'eval'").fetchone() == (3,)
    db.close()


def test_questions_come_from_lines_json_yaml_or_the_starter_set(tmp_path: Path) -> None:
    assert len(load_questions("starter", max_chars=2000)) == 20
    (tmp_path / "q.json").write_text('["one", "two"]')
    (tmp_path / "q.yaml").write_text("- one\n- 'two: a colon'\n")
    assert load_questions(str(tmp_path / "q.json"), max_chars=100) == ["one", "two"]
    assert load_questions(str(tmp_path / "q.yaml"), max_chars=100) == ["one", "two: a colon"]
    with pytest.raises(ValueError, match="list of questions"):
        (tmp_path / "bad.json").write_text('{"q": 1}')
        load_questions(str(tmp_path / "bad.json"), max_chars=100)
    with pytest.raises(ValueError, match="limit is 2"):
        load_questions(str(tmp_path / "q.json"), max_chars=2)
    with pytest.raises(ValueError, match="cannot read"):
        load_questions(str(tmp_path / "missing.txt"), max_chars=100)


def arm(answer: str | None) -> ArmResult:
    return ArmResult(answer, None if answer else "failed", "0.01", 1.0, 1)


def order(first: str, winner: str) -> OrderVerdict:
    four = dict.fromkeys(("correct", "complete", "actionable", "concise"), 3)
    return OrderVerdict(first, winner, four, four)


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [
        ("A", "B", "win"),  # orchestrate first and chosen, then second and chosen
        ("B", "A", "loss"),
        ("A", "A", "tie"),  # whichever came first: position bias, cancelled
        ("A", "tie", "win"),
        ("tie", "tie", "tie"),
    ],
)
def test_two_orders_fold_into_one_outcome(first: str, second: str, outcome: str) -> None:
    verdicts = [order("orchestrate", first), order("baseline", second)]
    assert fold(arm("x"), arm("y"), verdicts)[0] == outcome


def test_a_missing_answer_loses_and_a_failed_judge_leaves_it_unjudged() -> None:
    assert fold(arm(None), arm("y"), [])[0] == "loss"
    assert fold(arm("x"), arm(None), [])[0] == "win"
    assert fold(arm(None), arm(None), [])[0] is None
    failed = OrderVerdict("orchestrate", "", problem="the API failed")
    assert fold(arm("x"), arm("y"), [failed, order("baseline", "A")])[0] is None


def test_the_wilson_interval() -> None:
    assert wilson(0, 0) is None
    low, high = wilson(8, 10) or (0, 0)
    assert round(low, 3) == 0.490 and round(high, 3) == 0.943  # the textbook figures
    low, high = wilson(10, 10) or (0, 0)
    assert round(high, 9) == 1.0 and round(low, 3) == 0.722


async def test_admins_see_the_last_evals_headline_in_app_home(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        # A --live eval against the stack's own Claude stand-in and ledger, as an operator
        # would run it against the bot's DATABASE_URL.
        options = EvalOptions(
            str(questions_file(tmp_path, QUESTIONS[:2])), live=True, yes=True, out=tmp_path / "o"
        )
        code = await eval_command(stack.settings, options, out=io.StringIO(), err=io.StringIO())
        assert code == 0
        report = json.loads((tmp_path / "o" / "report.json").read_text())["overall"]
        homes = await open_home(stack, "U0ADMIN", "U0BOB")
    admin = homes["U0ADMIN"]
    assert "Last eval" in admin and "real API" in admin
    assert (
        f"{report['wins']} won · {report['ties']} tied · {report['losses']} lost of 2 questions"
        in admin
    )
    assert "all on Opus" in admin
    assert "Last eval" not in homes["U0BOB"]
