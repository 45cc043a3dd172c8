"""What an operator reads after a run: `/metrics` and the per-run log line agree with the
thread's cost footer, and DEBUG output carries no token, key or signing secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import logs
from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.sandbox.slack.server import Message, SlackSandbox
from bot.services import socket_mode_app
from bot.settings import Settings
from tests.harness import running_stack, stack_settings

QUESTION = "Design a REST API for a social network"
MODEL_LINE = re.compile(r"(\d+) calls? · ([\d,]+) in / ([\d,]+) out")


def footer_figures(thread_text: str) -> tuple[Decimal, int, int, int]:
    """Total dollars, calls, tokens in and out, as the cost footer shows them."""
    total = Decimal(re.findall(r"Total \$([\d.]+)", thread_text)[-1])
    lines = MODEL_LINE.findall(thread_text)
    calls = sum(int(c) for c, _, _ in lines)
    tokens_in = sum(int(i.replace(",", "")) for _, i, _ in lines)
    tokens_out = sum(int(o.replace(",", "")) for _, _, o in lines)
    return total, calls, tokens_in, tokens_out


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def total(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        v
        for (n, ls), v in found.items()
        if n == name and all(dict(ls).get(k) == w for k, w in labels.items())
    )


@pytest.fixture
def run_lines(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="bot")
    yield caplog


async def test_metrics_and_the_run_log_line_agree_with_the_cost_footer(
    tmp_path: Path, run_lines: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        await stack.command(QUESTION)
        await stack.settle()
        _, replies = stack.thread()
        assert stack.events_url is not None
        url = stack.events_url.replace("/slack/events", "/metrics")
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            exposition = await response.text()
    footer = "\n".join(r.text + json.dumps(r.blocks, ensure_ascii=False) for r in replies)
    dollars, calls, tokens_in, tokens_out = footer_figures(footer)
    found = samples(exposition)

    assert total(found, "orchestrate_runs_total", outcome="finished") == 1
    assert total(found, "orchestrate_runs_total") == 1
    assert total(found, "orchestrate_model_calls_total") == calls
    assert total(found, "orchestrate_model_calls_total", outcome="ok") == calls
    assert total(found, "orchestrate_model_call_duration_seconds_count") == calls
    assert total(found, "orchestrate_model_tokens_total", kind="output") == tokens_out
    prompt = sum(
        total(found, "orchestrate_model_tokens_total", kind=kind)
        for kind in ("input", "cache_write_5m", "cache_write_1h", "cache_read")
    )
    assert prompt == tokens_in
    spent = Decimal(str(total(found, "orchestrate_model_cost_usd_total")))
    assert spent.quantize(Decimal("0.0001")) == dollars
    assert total(found, "orchestrate_ack_duration_seconds_count") == 1
    assert total(found, "orchestrate_runs_in_flight") == 0
    assert total(found, "orchestrate_budget_refusals_total") == 0
    models = {dict(ls)["model"] for (n, ls) in found if n == "orchestrate_model_calls_total"}
    assert models == {"claude-opus-5-5", "claude-haiku-5-5", "claude-sonnet-5-5"}

    ended = [r for r in run_lines.records if r.getMessage() == "run ended"]
    assert len(ended) == 1
    fields = getattr(ended[0], logs.FIELDS)
    assert fields["outcome"] == "finished"
    assert Decimal(fields["cost_usd"]) == dollars
    assert sum(fields["calls"].values()) == calls
    assert (fields["tokens_in"], fields["tokens_out"]) == (tokens_in, tokens_out)
    assert {"run_id", "team", "channel", "user", "elapsed_s"} <= set(fields)
    settings = Settings()
    as_json = json.loads(logs.JsonFormatter(list(logs.secret_values(settings))).format(ended[0]))
    assert as_json["message"] == "run ended" and as_json["cost_usd"] == fields["cost_usd"]
    assert as_json["calls"] == fields["calls"] and as_json["team"] == "T0SANDBOX"
    text = logs.TextFormatter([]).format(ended[0])
    assert f"cost_usd={fields['cost_usd']}" in text and "outcome=finished" in text


async def test_a_budget_refusal_is_counted_and_logged(
    tmp_path: Path, run_lines: pytest.LogCaptureFixture
) -> None:
    async with running_stack(
        tmp_path, mode="http", budget_user_daily_usd=Decimal("0.000001")
    ) as stack:
        await stack.command(QUESTION)
        await stack.settle()
        assert stack.events_url is not None
        url = stack.events_url.replace("/slack/events", "/metrics")
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            found = samples(await response.text())
    assert total(found, "orchestrate_budget_refusals_total", budget="user_daily") == 1
    assert total(found, "orchestrate_runs_total") == 0
    refused = [r for r in run_lines.records if r.getMessage().startswith("run not started")]
    assert [getattr(r, logs.FIELDS)["reason"] for r in refused] == ["budget"]


async def test_debug_output_carries_no_token_key_or_secret(tmp_path: Path) -> None:
    bot_token, app_token = "xoxb-1111-2222-secretbottoken", "xapp-1-A111-secretapptoken"
    api_key, signing = "sk-ant-api03-secretanthropickey", "0123456789abcdef-signing-secret"
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("bot").level)
    async with (
        SlackSandbox(bot_token=bot_token, app_token=app_token) as slack,
        ClaudeSandbox(api_key=api_key, latency=LatencyModel(time_scale=0.01)) as claude,
    ):
        settings = stack_settings(
            slack,
            claude,
            tmp_path,
            slack_signing_secret=signing,
            log_level="DEBUG",
            log_level_libraries="DEBUG",
        )
        logs.configure(settings, stream=out)
        try:
            async with socket_mode_app(settings) as services:
                await slack.wait_connected()
                await slack.send_slash_command(text=QUESTION)
                while not services.runs.admitted:
                    import asyncio

                    await asyncio.sleep(0.02)
                await services.runs.wait_idle()
                # What would leak if redaction failed: a library's INFO and WARNING pass
                # whatever their text, and an exception's message is written out whole.
                logging.getLogger("slack_sdk.web").warning(
                    "retrying with headers %s", {"Authorization": f"Bearer {bot_token}"}
                )
                logging.getLogger("slack_sdk.socket_mode").info("app token %s", app_token)
                try:
                    raise RuntimeError(f"refused key {api_key} and {signing}")
                except RuntimeError:
                    logging.getLogger("bot.core").debug("a call failed", exc_info=True)
        finally:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
            logging.getLogger("bot").setLevel(saved[2])
    written = out.getvalue()
    assert "model call" in written and "run ended" in written  # DEBUG really was on
    assert written.count("\n") > 20
    assert "retrying with headers" in written and "app token" in written
    assert "RuntimeError: refused key" in written  # the leaking lines were written, scrubbed
    for secret in (bot_token, app_token, api_key, signing):
        assert secret[-14:] not in written  # not even a tail of one


async def metrics_now(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return samples(await response.text())


async def test_a_follow_up_is_counted_and_logged_as_a_run(
    tmp_path: Path, run_lines: pytest.LogCaptureFixture
) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        await stack.command(QUESTION)
        await stack.settle()
        top, replies = stack.thread()
        assert stack.events_url is not None
        url = stack.events_url.replace("/slack/events", "/metrics")
        before = await metrics_now(url)
        _, event = stack.slack.typed_mention(
            "@orchestrate what are we missing on auth?", thread_ts=top.ts, user_id="U0ALICE"
        )
        status, _, _ = await stack.slack.post_event_http(stack.events_url, event)
        assert status == 200
        bot = [r for r in replies if r.bot_id == "B0BOT"]

        def answers() -> list[Message]:
            return [r for r in stack.thread()[1] if r.bot_id == "B0BOT"][len(bot) :]

        async with asyncio.timeout(30):
            while not answers():  # noqa: ASYNC110  # the sandbox has no notification for this
                await asyncio.sleep(0.02)
        await stack.services.runs.wait_idle()
        (answer,) = answers()
        after = await metrics_now(url)
    shown = Decimal(
        re.findall(r"Answered by .*?\$([\d.]+)", answer.text + json.dumps(answer.blocks))[0]
    )

    def more(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    sonnet = "claude-sonnet-5-5"
    assert more("orchestrate_runs_total", outcome="finished") == 1
    assert more("orchestrate_model_calls_total") == 1
    assert more("orchestrate_model_calls_total", model=sonnet, outcome="ok") == 1
    assert more("orchestrate_model_tokens_total", model=sonnet, kind="output") > 0
    spent = Decimal(str(more("orchestrate_model_cost_usd_total", model=sonnet)))
    assert spent.quantize(Decimal("0.0001")) == shown > 0
    assert total(after, "orchestrate_runs_in_flight") == 0

    ended = [getattr(r, logs.FIELDS) for r in run_lines.records if r.getMessage() == "run ended"]
    assert [f["kind"] for f in ended] == ["run", "follow-up"]
    first, followup = ended
    assert followup["parent_run"] == first["run_id"] and first["parent_run"] is None
    assert followup["outcome"] == "finished" and followup["user"] == "U0ALICE"
    assert followup["calls"] == {sonnet: 1} and Decimal(followup["cost_usd"]) == shown
    assert followup["run_id"] != first["run_id"] and followup["channel"] == "C0GENERAL"
