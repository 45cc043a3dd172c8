"""A run's messages: valid Block Kit within Slack's limits, harmless whatever the model writes."""

from __future__ import annotations

import re

import pytest
from blocks_sample_data import (
    ASKER,
    HAIKU,
    HOSTILE,
    OPUS,
    SONNET,
    cost,
    review,
    strategy,
    unpriced_cost,
)
from slack_checks import (
    all_text,
    assert_harmless,
    assert_valid_message,
    assert_valid_messages,
    section_texts,
)

from blocks import (
    MESSAGE_TEXT_BUDGET,
    NO_UNFURL,
    OutboundMessage,
    done_status,
    example_failed_message,
    example_messages,
    illustrating_status,
    interrupted_message,
    markdown_to_mrkdwn,
    planning_status,
    review_failed_message,
    review_message,
    run_failed_message,
    split_chunks,
    status_message,
    strategy_message,
    text_size,
)
from bot.core.models import Component

OURS = (f"<@{ASKER}>",)


def _joined(messages: list[OutboundMessage]) -> str:
    return "\n".join(all_text(messages))


# --- the thread's first message ---------------------------------------------------------------


def test_status_message_names_the_asker_quotes_the_question_and_shows_the_status() -> None:
    message = status_message(
        asker_id=ASKER, question="How do we cache?", status=planning_status(OPUS)
    )
    assert_valid_message(message)
    assert section_texts(message) == [f"<@{ASKER}> asked:\n> How do we cache?"]
    assert message.blocks[-1]["elements"][0]["text"] == "⏳ Opus is planning…"
    assert message.text == f"<@{ASKER}> asked: How do we cache? — ⏳ Opus is planning…"


def test_an_invalid_asker_id_is_shown_as_text_not_a_mention() -> None:
    message = status_message(asker_id="<!channel>", question="q", status="s")
    assert_harmless([message])


def test_a_long_question_is_previewed_and_kept_in_full() -> None:
    question = ("word & more " * 180).strip()  # 2,000-odd chars, escaping makes it longer
    message = status_message(asker_id=ASKER, question=question, status="⏳")
    assert_valid_message(message)
    preview = section_texts(message)[0]
    assert preview.endswith("…") and len(preview) < 400
    full = "".join(section_texts(message)[1:])
    assert full.startswith("*Question*\n> ")
    assert full.count("word &amp; more") == 180


def test_strategy_message_shows_title_essence_components_attribution_and_status() -> None:
    plan = strategy()
    message = strategy_message(
        asker_id=ASKER,
        question="Design a REST API",
        strategy=plan,
        model=OPUS,
        status=illustrating_status(HAIKU, 4),
    )
    assert_valid_message(message)
    assert message.blocks[0]["type"] == "header"
    assert message.blocks[0]["text"]["text"] == plan.title.strip()
    texts = section_texts(message)
    assert texts[1] == "Resources first, then auth."
    assert texts[2:] == [f"*{n}. Part {n}*\nShow part {n}." for n in range(1, 5)]
    contexts = [b["elements"][0]["text"] for b in message.blocks if b["type"] == "context"]
    assert contexts == ["*Strategy · Opus* · `claude-opus-5-5`", "⏳ Haiku is writing 4 examples…"]


def test_strategy_status_can_say_done_with_the_total() -> None:
    assert done_status(cost(), 12.34) == "✅ Done in 12.3 s · $0.0192"
    assert (
        done_status(unpriced_cost(), 1)
        == "✅ Done in 1.0 s · unpriced (claude-x has no list price)"
    )


def test_a_runaway_plan_still_fits_in_fifty_blocks_and_keeps_its_status() -> None:
    message = strategy_message(
        asker_id=ASKER, question="q", strategy=strategy(components=60), model=OPUS, status="done"
    )
    assert_valid_message(message)
    assert message.blocks[-1]["elements"][0]["text"] == "done"


# --- examples ---------------------------------------------------------------------------------


def test_example_message_has_title_converted_markdown_and_attribution() -> None:
    md = "Use a **cursor**.\n\n```python\nnext = page.cursor  # *not bold*\n```\n"
    [message] = example_messages(
        index=2, total=4, component=Component("Pagination", "x"), markdown=md, model=HAIKU
    )
    assert_valid_message(message)
    assert section_texts(message) == [
        "*2/4 · Pagination*",
        "Use a *cursor*.\n\n```\nnext = page.cursor  # *not bold*\n```",
    ]
    assert message.blocks[-1]["elements"][0]["text"] == "Illustrated by Haiku · `claude-haiku-5-5`"
    assert message.text == "2/4 · Pagination — example by Haiku"


@pytest.mark.parametrize(("index", "total"), [(0, 4), (5, 4)])
def test_example_index_is_one_based_and_checked(index: int, total: int) -> None:
    with pytest.raises(ValueError, match="1-based"):
        example_messages(
            index=index, total=total, component=Component("a", "b"), markdown="x", model=HAIKU
        )


def _long_example() -> str:
    parts: list[str] = []
    n = 0
    while sum(map(len, parts)) < 20_000:
        n += 1
        code = "".join(
            f"    value_{n}_{i} = compute({i}) * 2  # <!channel> & @here\n" for i in range(30)
        )
        parts.append(
            f"## Step {n}\n\nParagraph {n} explains **why** this & that.\n\n"
            f"```python\n{code}```\n\n"
        )
    return "".join(parts)


def test_a_20000_char_example_is_split_across_messages_with_nothing_lost() -> None:
    md = _long_example()
    assert len(md) >= 20_000
    messages = example_messages(
        index=1, total=3, component=Component("Big", "x"), markdown=md, model=HAIKU
    )
    assert_valid_messages(messages)
    pages = len(messages)
    assert pages >= 2
    for number, message in enumerate(messages, start=1):
        title = section_texts(message)[0]
        assert title == "*1/3 · Big*" + (f" (continued {number}/{pages})" if number > 1 else "")
        assert ("(continued" in message.text) == (number > 1)
        assert text_size(list(message.blocks)) <= MESSAGE_TEXT_BUDGET
    assert messages[-1].blocks[-1]["type"] == "context"

    bodies = [text for message in messages for text in section_texts(message)[1:]]
    converted = markdown_to_mrkdwn(md)
    chunks = split_chunks(converted, 3000)
    # the sections are exactly the split chunks, and the chunks' bodies are the whole text ...
    assert bodies == [chunk.text for chunk in chunks]
    assert "".join(chunk.body for chunk in chunks) == converted

    # ... which, independently of the splitter, differs from the sections only by fence markers
    def strip(text: str) -> str:
        return re.sub(r"```|\s", "", text)

    assert strip("".join(bodies)) == strip(converted)
    for body in bodies:
        assert body.count("```") % 2 == 0
    code_line = "    value_3_7 = compute(7) * 2  # &lt;!channel&gt; &amp; @here"
    assert any(code_line in body.split("\n") for body in bodies)


def test_a_runaway_component_name_is_clipped_in_titles() -> None:
    name = "very long name " * 400
    component = Component(name, "x")
    messages = [
        *example_messages(index=1, total=1, component=component, markdown="x", model=HAIKU),
        example_failed_message(index=1, total=1, component=component, reason="r", model=HAIKU),
    ]
    assert_valid_messages(messages)
    assert all(len(section_texts(m)[0]) < 300 for m in messages)


def test_an_empty_example_still_posts_a_valid_reply() -> None:
    [message] = example_messages(
        index=1, total=1, component=Component("a", "b"), markdown=" ", model=HAIKU
    )
    assert_valid_message(message)


def test_example_failed_message() -> None:
    message = example_failed_message(
        index=2,
        total=4,
        component=Component("Auth", "x"),
        reason="timed out after 60 s",
        model=HAIKU,
    )
    assert_valid_message(message)
    assert section_texts(message) == [
        "✗ *2/4 · Auth* — could not be illustrated: timed out after 60 s"
    ]
    assert message.blocks[-1]["elements"][0]["text"] == "Haiku · `claude-haiku-5-5`"


# --- review and endings -----------------------------------------------------------------------


def test_review_message_has_verdicts_gaps_next_steps_attribution_and_cost() -> None:
    [message] = review_message(
        review=review(), model=SONNET, cost=cost(), elapsed_s=12.34, failed_components=["Part 4"]
    )
    assert_valid_message(message)
    assert section_texts(message) == [
        "*Review*",
        "✓ *Part 1* — Covers it.\n⚠ *Part 2* — No pagination.\n✗ *Part 3* — Leaks tokens in logs.",
        "✗ No example for *Part 4*: it could not be illustrated.",
        "*Gaps*\n• Rate limiting\n• Versioning",
        "*Next steps*\n1. Add cursor pagination\n2. Write contract tests",
    ]
    contexts = [b["elements"][0]["text"] for b in message.blocks if b["type"] == "context"]
    assert contexts[0] == "Reviewed by Sonnet · `claude-sonnet-5-5`"
    assert contexts[-1] == "*Total $0.0192* · all on Opus: $0.1200 · saved 84% · ⏱ 12.3 s"
    assert message.text == "Review by Sonnet · $0.0192"


def test_a_huge_review_spreads_over_messages_with_the_cost_on_the_last() -> None:
    big = review("detail " * 400)
    messages = review_message(review=big, model=SONNET, cost=cost(), elapsed_s=1.0)
    assert_valid_messages(messages)
    assert "*Total $0.0192*" in messages[-1].blocks[-1]["elements"][0]["text"]
    assert all("Total" not in _joined([m]) for m in messages[:-1])


def test_review_failed_and_run_failed_still_show_the_bill() -> None:
    for messages in (
        review_failed_message(
            reason="Sonnet refused", cost=unpriced_cost(), elapsed_s=2.0, model=SONNET
        ),
        run_failed_message(
            reason="no strategy: the plan was invalid", cost=unpriced_cost(), elapsed_s=2.0
        ),
    ):
        assert_valid_messages(messages)
        assert (
            "unpriced (claude-x has no list price)"
            in messages[-1].blocks[-1]["elements"][0]["text"]
        )
    assert section_texts(run_failed_message(reason="r", cost=cost(), elapsed_s=1)[0]) == [
        "✗ The run stopped: r"
    ]


def test_interrupted_message_asks_to_run_again() -> None:
    message = interrupted_message(cost=cost(), elapsed_s=4.0)
    assert_valid_message(message)
    assert "interrupted by a restart" in message.text
    assert "`/orchestrate &lt;question&gt;`" in section_texts(message)[0]
    assert_valid_message(interrupted_message())


def test_post_kwargs_turn_unfurls_off_but_update_kwargs_do_not_send_them() -> None:
    message = status_message(asker_id=ASKER, question="q", status="s")
    assert message.post_kwargs() == {
        "text": message.text,
        "blocks": list(message.blocks),
        **NO_UNFURL,
    }
    assert message.post_kwargs()["unfurl_links"] is False
    assert message.post_kwargs()["unfurl_media"] is False
    assert "unfurl_links" not in message.update_kwargs()


def test_outbound_message_refuses_to_exceed_slack_limits() -> None:
    with pytest.raises(ValueError, match="fallback"):
        OutboundMessage(text="x" * 3501, blocks=({"type": "divider"},))
    with pytest.raises(ValueError, match="blocks"):
        OutboundMessage(text="x", blocks=({"type": "divider"},) * 51)


# --- hostile text everywhere ------------------------------------------------------------------

HOSTILE_MD = f"# {HOSTILE}\n\n{HOSTILE}\n\n- {HOSTILE}\n\n> {HOSTILE}\n\n`{HOSTILE}`\n\n[{HOSTILE}](https://evil.example)"


def _every_builder_with(text: str) -> list[OutboundMessage]:
    comp = Component(name=text, instruction=text)
    return [
        status_message(asker_id=ASKER, question=text, status=text),
        status_message(asker_id=ASKER, question=text * 20, status=text),
        strategy_message(
            asker_id=ASKER, question=text, strategy=strategy(text), model=text, status=text
        ),
        *example_messages(index=1, total=2, component=comp, markdown=HOSTILE_MD, model=text),
        example_failed_message(index=2, total=2, component=comp, reason=text, model=text),
        *review_message(
            review=review(text), model=text, cost=cost(), elapsed_s=1, failed_components=[text]
        ),
        *review_failed_message(reason=text, cost=unpriced_cost(), elapsed_s=1, model=text),
        *run_failed_message(reason=text, cost=cost(), elapsed_s=1),
        interrupted_message(command=text),
    ]


def test_model_and_user_text_is_harmless_in_every_builder() -> None:
    messages = _every_builder_with(HOSTILE)
    assert_valid_messages(messages)
    assert_harmless(messages, allowed=OURS)
    # the text is still there for a reader to see, and an entity in it stays literal
    assert "&lt;!channel&gt;" in _joined(messages)
    assert "&amp;lt;!channel&amp;gt;" in _joined(messages)
    assert "innocent" in _joined(messages)


def test_code_in_an_example_is_escaped_but_keeps_its_words() -> None:
    md = "```\n<!channel> @here <https://evil.example|innocent>\n```"
    [message] = example_messages(
        index=1, total=1, component=Component("c", "i"), markdown=md, model=HAIKU
    )
    body = section_texts(message)[1]
    assert body == "```\n&lt;!channel&gt; @here &lt;https://evil.example|innocent&gt;\n```"
    for bad in ("<!", "<@", "<http"):
        assert bad not in body
