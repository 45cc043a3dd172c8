"""Block Kit as the Slack sandbox sees it: Slack's limits, and blocks rendered as text.

`block_errors` checks a message's (or an App Home view's) blocks against the limits Slack
enforces and returns Slack-style messages such as
``[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]``; the Web API
layer turns a non-empty list into ``invalid_blocks`` with the messages in
``response_metadata.messages``, as Slack does. `message_text_length` is what Slack's separate
limit on a whole message's text (`msg_blocks_too_long`) measures. Every length is
`slack_length`: UTF-8 bytes of the text as sent, entities included (`&amp;` is five). Slack's
documentation says "characters", but reports show emoji and CJK text refused under the
character count, so the sandbox counts the stricter way (docs/sandbox.md). `render_blocks`
turns blocks into the plain lines a person would read, for `SlackSandbox.transcript`.
"""

from __future__ import annotations

import re
from typing import Any

MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
MARKDOWN_TOTAL_MAX = 12000
MESSAGE_TEXT_MAX = 11_000
"""Total text of one message's blocks: Slack refused messages at 11,341 and 13,297 characters
of summed text (slackapi/bolt-js#2867, #2509); the sandbox refuses past the stricter side."""
ACTIONS_ELEMENTS_MAX = 25
CONTEXT_ACTIONS_ELEMENTS_MAX = 5
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
ACTION_ID_MAX = 255
BLOCK_ID_MAX = 255
TEXT_TYPES = ("plain_text", "mrkdwn")
BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
RULE = "─" * 24


def slack_length(text: str) -> int:
    """A text's length as the sandbox measures it against Slack's limits: UTF-8 bytes."""
    return len(text.encode("utf-8"))


def message_text_length(blocks: Any) -> int:
    """Every string under a `text` key anywhere in `blocks`, summed with `slack_length`.

    That covers text objects (section text and fields, headers, context elements, button
    labels), `markdown` blocks and rich-text runs; the message's top-level `text` (the
    notification fallback) is not part of its blocks and is not counted.
    """
    if isinstance(blocks, list):
        return sum(message_text_length(item) for item in blocks)
    if not isinstance(blocks, dict):
        return 0
    total = 0
    for key, value in blocks.items():
        if key == "text" and isinstance(value, str):
            total += slack_length(value)
        else:
            total += message_text_length(value)
    return total


def error(message: str, pointer: str) -> str:
    return f"[ERROR] {message} [json-pointer:{pointer}]"


def block_errors(
    blocks: Any, *, max_blocks: int = MESSAGE_MAX_BLOCKS, pointer: str = "/blocks"
) -> list[str]:
    """Every limit `blocks` breaks, in Slack's wording; [] when Slack would accept them."""
    if not isinstance(blocks, list):
        return [error("must be an array", pointer)]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(error(f"no more than {max_blocks} items allowed", pointer))
    seen_ids: set[str] = set()
    for index, block in enumerate(blocks):
        errors += _block_errors(block, f"{pointer}/{index}", seen_ids)
    markdown_total = sum(
        slack_length(b.get("text", ""))
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "markdown" and isinstance(b.get("text"), str)
    )
    if markdown_total > MARKDOWN_TOTAL_MAX:
        errors.append(
            error(
                f"cumulative length of markdown blocks must be at most {MARKDOWN_TOTAL_MAX} "
                f"characters (got {markdown_total})",
                pointer,
            )
        )
    return errors


def _block_errors(block: Any, pointer: str, seen_ids: set[str]) -> list[str]:
    if not isinstance(block, dict):
        return [error("must be an object", pointer)]
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        return [error(f"unsupported type: {kind}", f"{pointer}/type")]
    errors = _block_id_errors(block, pointer, seen_ids)
    checker = _CHECKERS.get(kind)
    if checker is not None:
        errors += checker(block, pointer)
    return errors


def _block_id_errors(block: dict[str, Any], pointer: str, seen_ids: set[str]) -> list[str]:
    block_id = block.get("block_id")
    if block_id is None or block.get("type") == "markdown":  # Slack drops markdown block_ids
        return []
    if not isinstance(block_id, str) or slack_length(block_id) > BLOCK_ID_MAX:
        return [error(f"must be less than {BLOCK_ID_MAX + 1} characters", f"{pointer}/block_id")]
    if block_id in seen_ids:
        return [error(f"duplicate block_id: {block_id}", f"{pointer}/block_id")]
    seen_ids.add(block_id)
    return []


def _text_errors(
    text: Any, pointer: str, *, max_len: int, types: tuple[str, ...] = TEXT_TYPES
) -> list[str]:
    if not isinstance(text, dict):
        return [error("must be an object", pointer)]
    if text.get("type") not in types:
        return [error("must be a valid enum value", f"{pointer}/type")]
    body = text.get("text")
    if not isinstance(body, str) or not body:
        return [error("must be more than 0 characters", f"{pointer}/text")]
    if slack_length(body) > max_len:
        return [error(f"must be less than {max_len + 1} characters", f"{pointer}/text")]
    return []


def _section(block: dict[str, Any], pointer: str) -> list[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        return [error("must provide text or fields", pointer)]
    errors = [] if text is None else _text_errors(text, f"{pointer}/text", max_len=SECTION_TEXT_MAX)
    if fields is None:
        return errors
    if not isinstance(fields, list):
        return [*errors, error("must be an array", f"{pointer}/fields")]
    if len(fields) > SECTION_FIELDS_MAX:
        errors.append(
            error(f"no more than {SECTION_FIELDS_MAX} items allowed", f"{pointer}/fields")
        )
    for index, field in enumerate(fields):
        errors += _text_errors(field, f"{pointer}/fields/{index}", max_len=SECTION_FIELD_TEXT_MAX)
    return errors


def _header(block: dict[str, Any], pointer: str) -> list[str]:
    return _text_errors(
        block.get("text"), f"{pointer}/text", max_len=HEADER_TEXT_MAX, types=("plain_text",)
    )


def _context(block: dict[str, Any], pointer: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [error("must provide at least 1 item", f"{pointer}/elements")]
    if len(elements) > CONTEXT_ELEMENTS_MAX:
        return [error(f"no more than {CONTEXT_ELEMENTS_MAX} items allowed", f"{pointer}/elements")]
    errors: list[str] = []
    for index, element in enumerate(elements):
        if isinstance(element, dict) and element.get("type") == "image":
            continue
        errors += _text_errors(element, f"{pointer}/elements/{index}", max_len=SECTION_TEXT_MAX)
    return errors


def _markdown(block: dict[str, Any], pointer: str) -> list[str]:
    text = block.get("text")
    if not isinstance(text, str) or not text:
        return [error("must be more than 0 characters", f"{pointer}/text")]
    return []


def _actions(block: dict[str, Any], pointer: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [error("must provide at least 1 item", f"{pointer}/elements")]
    if len(elements) > ACTIONS_ELEMENTS_MAX:
        return [error(f"no more than {ACTIONS_ELEMENTS_MAX} items allowed", f"{pointer}/elements")]
    return _elements_errors(elements, f"{pointer}/elements")


def _context_actions(block: dict[str, Any], pointer: str) -> list[str]:
    """Only feedback buttons and icon buttons, at most five."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [error("must provide at least 1 item", f"{pointer}/elements")]
    if len(elements) > CONTEXT_ACTIONS_ELEMENTS_MAX:
        limit = CONTEXT_ACTIONS_ELEMENTS_MAX
        return [error(f"no more than {limit} items allowed", f"{pointer}/elements")]
    for index, element in enumerate(elements):
        kind = element.get("type") if isinstance(element, dict) else None
        if kind not in ("feedback_buttons", "icon_button"):
            return [error(f"unsupported type: {kind}", f"{pointer}/elements/{index}/type")]
    return _elements_errors(elements, f"{pointer}/elements")


def _elements_errors(elements: list[Any], pointer: str) -> list[str]:
    errors: list[str] = []
    seen: set[str] = set()
    for index, element in enumerate(elements):
        at = f"{pointer}/{index}"
        if not isinstance(element, dict):
            errors.append(error("must be an object", at))
            continue
        action_id = element.get("action_id")
        if isinstance(action_id, str):
            if len(action_id) > ACTION_ID_MAX:
                errors.append(error(f"must be less than {ACTION_ID_MAX + 1} characters", at))
            if action_id in seen:
                errors.append(error(f"duplicate action_id: {action_id}", f"{at}/action_id"))
            seen.add(action_id)
        checker = _ELEMENT_CHECKERS.get(str(element.get("type")))
        if checker is not None:
            errors += checker(element, at)
    return errors


def _button(element: dict[str, Any], pointer: str) -> list[str]:
    errors = _text_errors(
        element.get("text"), f"{pointer}/text", max_len=BUTTON_TEXT_MAX, types=("plain_text",)
    )
    value = element.get("value")
    if value is not None and (not isinstance(value, str) or len(value) > BUTTON_VALUE_MAX):
        errors.append(error(f"must be less than {BUTTON_VALUE_MAX + 1} characters", pointer))
    if element.get("style") not in (None, "primary", "danger"):
        errors.append(error("must be a valid enum value", f"{pointer}/style"))
    return errors


FEEDBACK_BUTTON_KEYS = frozenset({"text", "value", "accessibility_label"})


def _feedback_buttons(element: dict[str, Any], pointer: str) -> list[str]:
    """Slack's reference marks the element's `action_id` required and gives each button only
    text (≤ 75), value (≤ 2,000) and accessibility_label (≤ 75, as a button's); the
    stricter reading is enforced (a feedback button has no style or url)."""
    errors: list[str] = []
    if not isinstance(element.get("action_id"), str) or not element["action_id"]:
        errors.append(error("must provide a string", f"{pointer}/action_id"))
    for side in ("positive_button", "negative_button"):
        button = element.get(side)
        if not isinstance(button, dict):
            errors.append(error("must provide an object", f"{pointer}/{side}"))
            continue
        for key in sorted(set(button) - FEEDBACK_BUTTON_KEYS):
            errors.append(error("is not a valid property", f"{pointer}/{side}/{key}"))
        label = button.get("accessibility_label")
        if label is not None and (not isinstance(label, str) or len(label) > BUTTON_TEXT_MAX):
            at = f"{pointer}/{side}/accessibility_label"
            errors.append(error(f"must be less than {BUTTON_TEXT_MAX + 1} characters", at))
        if not isinstance(button.get("value"), str) or not button["value"]:
            errors.append(error("must be more than 0 characters", f"{pointer}/{side}/value"))
        errors += _button({**button, "type": "button"}, f"{pointer}/{side}")
    return errors


_ELEMENT_CHECKERS = {"button": _button, "feedback_buttons": _feedback_buttons}


def _rich_text(block: dict[str, Any], pointer: str) -> list[str]:
    if not isinstance(block.get("elements"), list):
        return [error("must be an array", f"{pointer}/elements")]
    return []


_CHECKERS = {
    "section": _section,
    "header": _header,
    "context": _context,
    "markdown": _markdown,
    "actions": _actions,
    "context_actions": _context_actions,
    "rich_text": _rich_text,
}


# ---------------------------------------------------------------- rendering as text


def render_blocks(blocks: list[dict[str, Any]]) -> list[str]:
    """The lines a reader sees for these blocks, in order."""
    lines: list[str] = []
    for block in blocks:
        lines += _render_block(block)
    return [shown for line in lines for shown in line.split("\n")]


_SPECIAL = re.compile(r"<([@#!])([^>|]+)(?:\|([^>]*))?>|<((?:https?|mailto):[^>|]+)(?:\|([^>]*))?>")


def displayed(mrkdwn: str) -> str:
    """mrkdwn as Slack shows it: mentions and links resolved, `&lt;` `&gt;` `&amp;` decoded.

    Only real control sequences become mentions or links (a ping shows as `@here`); text that
    was escaped shows as the characters it stands for, e.g. a harmless literal `<!channel>`.
    """

    def resolve(match: re.Match[str]) -> str:
        sigil, target, label, url, url_label = match.groups()
        if url is not None:
            return f"{url_label} ({url})" if url_label else url
        if sigil == "!":
            return f"@{label or target.split('^')[0]}"
        return label or f"{sigil if sigil == '#' else '@'}{target}"

    resolved = _SPECIAL.sub(resolve, mrkdwn)
    return resolved.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _render_block(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        return [f"# {_text(block.get('text'))}"]
    if kind == "section":
        lines = _text(block.get("text")).splitlines() if block.get("text") else []
        return lines + [_text(f) for f in block.get("fields") or []]
    if kind == "markdown":
        return displayed(str(block.get("text", ""))).splitlines()
    if kind == "context":
        return [" · ".join(_element(e) for e in block.get("elements") or [])]
    if kind == "divider":
        return [RULE]
    if kind == "rich_text":
        return [displayed(line) for line in _rich_text_lines(block.get("elements") or [])]
    if kind in ("actions", "context_actions"):
        return [" ".join(_element(e) for e in block.get("elements") or [])]
    if kind == "image":
        return [f"[image: {block.get('alt_text', '')}]"]
    return [f"[{kind} block]"]


def _text(obj: Any) -> str:
    """A text object as shown: mrkdwn is parsed; plain_text is shown exactly as sent.

    Slack gives `&`, `<` and `>` meaning only in mrkdwn, so an entity in plain_text (a
    header, a button label) reads as the entity itself: `R&amp;D` shows as `R&amp;D`.
    """
    if not isinstance(obj, dict):
        return ""
    text = str(obj.get("text", ""))
    return text if obj.get("type") == "plain_text" else displayed(text)


def _element(element: dict[str, Any]) -> str:
    kind = element.get("type")
    if kind in TEXT_TYPES:
        return _text(element)
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if kind == "button":
        return f"[{_text(element.get('text'))}]"
    if kind == "feedback_buttons":
        positive, negative = element.get("positive_button"), element.get("negative_button")
        return f"[{_text((positive or {}).get('text'))}] [{_text((negative or {}).get('text'))}]"
    return f"[{kind}]"


def _rich_text_lines(elements: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for element in elements:
        kind = element.get("type")
        if kind == "rich_text_list":
            ordered = element.get("style") == "ordered"
            for n, item in enumerate(element.get("elements") or [], start=1):
                bullet = f"{n}. " if ordered else "• "
                lines.append(bullet + _inline(item))
        elif kind == "rich_text_preformatted":
            lines += ["```", *_inline(element).splitlines(), "```"]
        elif kind == "rich_text_quote":
            lines += [f"> {line}" for line in _inline(element).splitlines()]
        else:
            lines += _inline(element).splitlines()
    return lines


def _inline(container: dict[str, Any]) -> str:
    parts: list[str] = []
    for item in container.get("elements") or []:
        kind = item.get("type")
        if kind == "text":
            parts.append(str(item.get("text", "")))
        elif kind == "link":
            parts.append(str(item.get("text") or item.get("url", "")))
        elif kind == "user":
            parts.append(f"<@{item.get('user_id')}>")
        elif kind == "emoji":
            parts.append(f":{item.get('name')}:")
        elif kind == "channel":
            parts.append(f"<#{item.get('channel_id')}>")
    return "".join(parts)
