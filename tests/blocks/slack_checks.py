"""Assertions shared by the blocks tests: Slack's limits, checked twice, and harmlessness.

Every block goes through slack_sdk's own models (`Block.parse(...).to_dict()` runs its limit
validators and must give the block back unchanged); the limits slack_sdk does not check (field
length, a message's total text, lengths in UTF-8 bytes, verbatim on model text) are asserted
here. `assert_harmless` looks through
every string of a message for anything Slack would turn into a ping or a link.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from slack_sdk.models.blocks import Block

from blocks import MESSAGE_TEXT_BUDGET, OutboundMessage, slack_length, text_size

# Sequences that would make Slack ping, mention or link: none may survive from untrusted text.
FORBIDDEN = ("<!", "<@", "<#", "<http", "<mailto")
BARE_BROADCAST = re.compile(r"@(?:here|channel|everyone)", re.IGNORECASE)


def assert_valid_block(block: dict[str, Any]) -> None:
    parsed = Block.parse(block)
    assert parsed is not None, block
    assert parsed.to_dict() == block  # slack_sdk validates limits on to_dict()
    match block["type"]:
        case "section":
            if "text" in block:
                assert 0 < slack_length(block["text"]["text"]) <= 3000
            for field in block.get("fields", []):
                assert 0 < slack_length(field["text"]) <= 2000
            assert len(block.get("fields", [])) <= 10
        case "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < slack_length(block["text"]["text"]) <= 150
        case "context":
            assert 0 < len(block["elements"]) <= 10
    for obj in text_objects(block):
        if obj["type"] == "mrkdwn":
            assert obj.get("verbatim") is True, obj


def assert_valid_message(message: OutboundMessage) -> None:
    assert 0 < slack_length(message.text) <= 3500
    assert 0 < len(message.blocks) <= 50
    assert text_size(list(message.blocks)) <= MESSAGE_TEXT_BUDGET
    for block in message.blocks:
        assert_valid_block(block)


def assert_valid_messages(messages: list[OutboundMessage]) -> None:
    assert messages
    for message in messages:
        assert_valid_message(message)


def text_objects(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text"):
            yield node
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from text_objects(item)


def all_text(messages: list[OutboundMessage]) -> list[str]:
    """The fallback text and every text object's text, of every message."""
    texts: list[str] = []
    for message in messages:
        texts.append(message.text)
        texts.extend(obj["text"] for obj in text_objects(list(message.blocks)))
    return texts


def assert_harmless(messages: list[OutboundMessage], *, allowed: tuple[str, ...] = ()) -> None:
    """No ping, mention or link survives, except the exact sequences we built (`allowed`)."""
    for text in all_text(messages):
        for ours in allowed:
            text = text.replace(ours, "")
        for bad in FORBIDDEN:
            assert bad not in text, (bad, text)
        assert not BARE_BROADCAST.search(text), text


def section_texts(message: OutboundMessage) -> list[str]:
    return [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]
