"""Prometheus metrics: what the process counts, in one registry, served as `/metrics`.

The core knows nothing of this module: it emits its events, and `Metrics.observe` (called
by the run registry for every event) counts them, so the pipeline stays free of Prometheus
as it is of Slack. The Slack edge adds what only it sees: Web API errors and 429s per
method (a counting retry handler on the client, so Bolt's per-request clients, which copy
the handlers, count too), acknowledgement latency, budget refusals, runs in flight.

One `CollectorRegistry` per `Metrics`, not prometheus-client's global one, so each process
(and each test) has its own figures. Several processes are several scrape targets: each
instance serves its own `/metrics`, and Prometheus sums across them (see
docs/operations.md), rather than sharing prometheus-client's multiprocess directory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_never

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.core.events import (
    CallFinished,
    Event,
    ExampleFailed,
    ExampleReady,
    ReviewFailed,
    ReviewReady,
    RunFailed,
    RunFinished,
    RunStarted,
    StrategyDraft,
    StrategyReady,
)
from bot.core.usage import TokenUsage

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Model calls take seconds (Haiku) to a minute or two (Opus thinking at high effort).
CALL_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
# Slack gives up on an acknowledgement after 3 s; the interesting part is well below that.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5)


def run_outcome(event: RunFinished | RunFailed) -> str:
    """`finished`, `failed` or `interrupted`: the ledger's words for how a run ended."""
    if isinstance(event, RunFinished):
        return "finished"
    return "interrupted" if event.interrupted else "failed"


def token_kinds(usage: TokenUsage) -> dict[str, int]:
    """Billable buckets by kind; `thinking` is the part of `output` spent thinking."""
    return {
        "input": usage.input_tokens,
        "output": usage.output_tokens,
        "cache_write_5m": usage.cache_write_5m_tokens,
        "cache_write_1h": usage.cache_write_1h_tokens,
        "cache_read": usage.cache_read_tokens,
        "thinking": usage.thinking_tokens,
    }


class Metrics:
    """The process's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("orchestrate_runs", "Runs ended, by outcome.", ["outcome"], registry=r)
        self.budget_refusals = Counter(
            "orchestrate_budget_refusals",
            "Runs refused before any model call because a budget would be exceeded.",
            ["budget"],
            registry=r,
        )
        self.runs_in_flight = Gauge(
            "orchestrate_runs_in_flight", "Runs this process is running now.", registry=r
        )
        self.model_calls = Counter(
            "orchestrate_model_calls", "Model calls, by model and outcome.",
            ["model", "outcome"], registry=r,
        )  # fmt: skip
        self.call_latency = Histogram(
            "orchestrate_model_call_duration_seconds",
            "Model call latency, SDK retries included.",
            ["model"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "orchestrate_model_tokens",
            "Billed tokens by model and kind (thinking is part of output).",
            ["model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "orchestrate_model_cost_usd",
            "Dollars spent at list prices, by model (unpriced models add nothing).",
            ["model"],
            registry=r,
        )
        self.slack_errors = Counter(
            "orchestrate_slack_api_errors",
            "Slack Web API calls that failed, by method and error code.",
            ["method", "error"],
            registry=r,
        )
        self.slack_rate_limited = Counter(
            "orchestrate_slack_api_rate_limited",
            "Slack Web API 429 answers, by method (each is retried after Retry-After).",
            ["method"],
            registry=r,
        )
        self.ack_latency = Histogram(
            "orchestrate_ack_duration_seconds",
            "From receiving a Slack request to acknowledging it.",
            buckets=ACK_BUCKETS,
            registry=r,
        )

    def track_in_flight(self, count: Callable[[], int]) -> None:
        self.runs_in_flight.set_function(lambda: float(count()))

    def observe(self, event: Event) -> None:
        """Count what a run's event says; the events that carry no figures count nothing."""
        match event:
            case CallFinished(call=call):
                self.model_calls.labels(call.model, call.outcome).inc()
                self.call_latency.labels(call.model).observe(call.latency_s)
                for kind, count in token_kinds(call.usage).items():
                    self.tokens.labels(call.model, kind).inc(count)
                if call.cost_usd is not None:
                    self.cost.labels(call.model).inc(float(call.cost_usd))
            case RunFinished() | RunFailed():
                self.runs.labels(run_outcome(event)).inc()
            case (
                RunStarted()
                | StrategyDraft()
                | StrategyReady()
                | ExampleReady()
                | ExampleFailed()
                | ReviewReady()
                | ReviewFailed()
            ):
                pass
            case _:
                assert_never(event)

    def refused(self, budget: str) -> None:
        self.budget_refusals.labels(budget).inc()

    def slack_failed(self, method: str, error: str) -> None:
        self.slack_errors.labels(method, error or "unknown").inc()

    def exposition(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)


class CountingRetryHandler(AsyncRetryHandler):
    """Counts every Slack call that failed (a refusal, a 429, a 5xx, no answer) and retries
    none. The client consults its retry handlers after every attempt, successful or not, so
    placed first it sees each failure once; the handlers after it decide on retrying."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=0)
        self._metrics = metrics

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = _method(request.url)
        if response is not None and response.status_code == 429:
            self._metrics.slack_rate_limited.labels(method).inc()
        elif response is not None and response.status_code >= 500:
            self._metrics.slack_failed(method, f"http_{response.status_code}")
        elif response is not None and response.body and response.body.get("ok") is False:
            self._metrics.slack_failed(method, str(response.body.get("error", "")))
        elif error is not None:
            self._metrics.slack_failed(method, type(error).__name__)
        return False


def _method(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "unknown"
