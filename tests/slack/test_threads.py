"""Slack's wire text read as a person reads it, and our own messages read from their blocks."""

from __future__ import annotations

from bot.slack.threads import blocks_text, decode, mention_request


def test_wire_text_is_decoded_after_its_markup() -> None:
    wire = (
        "<@U0BOB> and <@U0ADA|ada> said <!channel> &amp; <!here|here>: see "
        "<https://example.com/a?b=1&amp;c=2|the docs> or <https://x.example> in <#C0GEN|general> "
        "&lt;@U0EVIL&gt; <!subteam^S1|@backend>"
    )
    assert decode(wire) == (
        "@U0BOB and @ada said @channel & @here: see the docs (https://example.com/a?b=1&c=2) "
        "or https://x.example in #general <@U0EVIL> @backend"
    )


def test_a_mention_request_drops_the_bots_own_mention() -> None:
    assert mention_request("<@U0BOT> redo 2 in Go &amp; Rust", bot_user_id="U0BOT") == (
        "redo 2 in Go & Rust"
    )
    assert mention_request("<@U0BOT>", bot_user_id="U0BOT") == ""


def test_our_messages_are_read_from_their_blocks() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Title"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*1. Auth* &lt;tokens&gt;"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "by Haiku"}]},
        {"type": "markdown", "text": "# Heading"},
    ]
    assert blocks_text(blocks) == "Title\n*1. Auth* <tokens>\nby Haiku\n# Heading"
