"""Every message keeps within Slack's total-text limit, measured as Slack measures, losing nothing.

Slack refuses a message whose blocks carry too much text together (`msg_blocks_too_long`),
whatever each block's own limit; sizes are UTF-8 bytes of the text as sent.
"""

from __future__ import annotations

from slack_checks import all_text, assert_valid_messages, section_texts

from blocks import (
    MESSAGE_TEXT_BUDGET,
    OutboundMessage,
    example_messages,
    resplit,
    slack_length,
    status_message,
    status_overflow_messages,
    strategy_message,
    strategy_overflow_messages,
    text_size,
)
from blocks.message import header, section, sections
from bot.core.models import Component, Strategy

HAIKU = "claude-haiku-5-5"
OPUS = "claude-opus-5-5"


def dense(size: int) -> str:
    """`size` characters of prose with no paragraph or line break to cut at."""
    words = "dense words without breaks "
    return (words * (size // len(words) + 1))[:size]


def test_an_11500_character_example_is_two_messages_under_the_budget_with_nothing_lost() -> None:
    text = dense(11_500)
    messages = example_messages(
        index=1, total=2, component=Component("Dense", "x"), markdown=text, model=HAIKU
    )
    assert_valid_messages(messages)
    assert len(messages) == 2
    assert all(text_size(list(m.blocks)) <= MESSAGE_TEXT_BUDGET for m in messages)
    bodies = "".join(t for m in messages for t in section_texts(m)[1:])
    assert bodies == text


def test_titles_headers_and_footers_count_toward_the_budget() -> None:
    # 9,950 bytes of sections fit alone, but not with a title and the attribution beside them.
    text = dense(9_950)
    messages = example_messages(
        index=1, total=1, component=Component("Edge", "x"), markdown=text, model=HAIKU
    )
    assert_valid_messages(messages)
    assert len(messages) == 2


def test_non_ascii_text_is_measured_in_bytes() -> None:
    text = "€" * 4_000  # 4,000 characters, 12,000 bytes
    messages = example_messages(
        index=1, total=1, component=Component("Euro", "x"), markdown=text, model=HAIKU
    )
    assert_valid_messages(messages)
    assert "".join(t for m in messages for t in section_texts(m)[1:]) == text
    assert all(slack_length(t) <= 3000 for m in messages for t in section_texts(m))


def test_a_huge_plan_keeps_the_first_message_in_budget_and_continues_in_the_thread() -> None:
    components = tuple(Component(f"Part {n}", dense(2_900)) for n in range(1, 7))
    strategy = Strategy(title="R&D plan", essence=dense(2_000), components=components)
    kwargs = {"asker_id": "U0ALICE", "question": "q?", "strategy": strategy, "model": OPUS}
    top = strategy_message(**kwargs, status="⏳ writing")
    rest = strategy_overflow_messages(**kwargs)
    assert_valid_messages([top, *rest])
    assert rest and "Continued in the thread" in "".join(all_text([top]))
    shown = "".join(all_text([top, *rest]))
    for n in range(1, 7):
        assert f"*{n}. Part {n}*" in shown
    # The split does not move when only the status changes.
    later = strategy_message(**kwargs, status="✅ Done in 12.3 s · $0.0192 and more words")
    assert section_texts(later) == section_texts(top)


def test_a_plan_that_fits_has_no_continuation() -> None:
    strategy = Strategy(title="t", essence="e", components=(Component("a", "b"),))
    kwargs = {"asker_id": "U0ALICE", "question": "q?", "strategy": strategy, "model": OPUS}
    assert strategy_overflow_messages(**kwargs) == []
    assert "Continued" not in "".join(all_text([strategy_message(**kwargs, status="s")]))


def test_a_long_question_continues_in_the_thread_from_the_first_message() -> None:
    question = "&" * 4_000  # 20,000 bytes once escaped
    top = status_message(asker_id="U0ALICE", question=question, status="⏳ planning")
    rest = status_overflow_messages(asker_id="U0ALICE", question=question)
    assert_valid_messages([top, *rest])
    shown = "".join(all_text([top, *rest]))
    assert shown.count("&amp;") >= 4_000


def test_resplit_halves_a_message_and_keeps_every_character() -> None:
    body = sections(dense(9_000))
    message = OutboundMessage(text="fallback " * 100, blocks=(header("Title"), *body))
    parts = resplit(message)
    assert parts is not None
    assert len(parts) == 2
    assert text_size(list(parts[0].blocks)) <= text_size(list(message.blocks)) // 2
    assert all(text_size(list(p.blocks)) < text_size(list(message.blocks)) for p in parts)
    assert "".join(t for p in parts for t in section_texts(p)) == dense(9_000)
    assert parts[0].blocks[0] == header("Title")
    assert all(slack_length(p.text) <= slack_length(message.text) // 2 for p in parts)


def test_resplit_gives_up_on_a_message_too_small_for_size_to_matter() -> None:
    assert resplit(OutboundMessage(text="short", blocks=(section("tiny"),))) is None
