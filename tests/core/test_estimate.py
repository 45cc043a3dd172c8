"""The output estimate of a call cut off mid-stream, from what it had streamed."""

from __future__ import annotations

from bot.core.estimate import StreamTally


def test_visible_text_counts_four_characters_a_token() -> None:
    tally = StreamTally()
    tally.started("text", at=0.0)
    tally.delta(400, at=0.5)

    guess = tally.estimate(now=0.6, model="claude-haiku-5-5", limit=8192)

    assert (guess.output_tokens, guess.thinking_tokens) == (100, 0)


def test_hidden_thinking_is_its_duration_at_the_speed_measured_on_the_text() -> None:
    tally = StreamTally()
    tally.started("thinking", at=0.0)
    tally.delta(0, at=2.0)  # the signature: no text
    tally.stopped(at=2.0)
    tally.started("text", at=2.0)
    tally.delta(800, at=3.0)  # 200 tokens in a second

    guess = tally.estimate(now=3.0, model="claude-opus-5-5", limit=8192)

    assert (guess.output_tokens, guess.thinking_tokens) == (600, 400)


def test_thinking_still_running_counts_until_now_at_the_typical_speed_of_the_model() -> None:
    tally = StreamTally()
    tally.started("thinking", at=10.0)

    haiku = tally.estimate(now=12.0, model="claude-haiku-5-5", limit=8192)
    opus = tally.estimate(now=12.0, model="claude-opus-5-5", limit=8192)

    assert haiku.thinking_tokens == haiku.output_tokens == 360
    assert opus.thinking_tokens == opus.output_tokens == 100


def test_sent_thinking_text_counts_as_text_not_as_time() -> None:
    tally = StreamTally()
    tally.started("thinking", at=0.0)
    tally.delta(40, at=5.0)
    tally.stopped(at=5.0)

    guess = tally.estimate(now=5.0, model="claude-sonnet-4-6", limit=8192)

    assert (guess.output_tokens, guess.thinking_tokens) == (10, 10)


def test_the_estimate_never_exceeds_max_tokens_and_is_at_least_the_reported_one() -> None:
    tally = StreamTally()
    tally.started("thinking", at=0.0)
    assert tally.estimate(now=600.0, model="claude-opus-5-5", limit=4096).output_tokens == 4096
    assert StreamTally().estimate(now=1.0, model="x", limit=10).output_tokens == 1
