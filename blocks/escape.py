"""Escaping of untrusted text for Slack: the one place that decides what model and user text may do.

Slack's mrkdwn gives `<…>` sequences power (`<!channel>`, `<@U…>`, `<https://evil|innocent>`)
and, in text objects that are not `verbatim`, also turns the bare words `@here`, `@channel` and
`@everyone` into pings. `escape` makes any string inert: it encodes exactly `&`, `<` and `>` (the
three characters Slack decodes) and puts a word joiner after the `@` of those three words, which
is invisible to a reader but breaks the keyword. Mentions and channel links that *we* build from
ids Slack gave us are produced here too, and only after the id has been validated.
"""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"
"""Invisible and zero-width: `@\u2060here` reads as `@here` but pings no one."""

# Formatting markers between `@` and the word (`@*here*`) count too: no renderer gets a chance.
_BROADCAST = re.compile(r"@(?=[*_~]*(?:here|channel|everyone))", re.IGNORECASE)
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")


def escape_code(text: str) -> str:
    """Encode `&`, `<`, `>` only: for code, whose characters must survive a copy and paste.

    Slack decodes these entities inside code spans and blocks too, so code needs them; `&` goes
    first so the entities we add are not encoded twice.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def neutralise_broadcasts(text: str) -> str:
    """Break `@here`, `@channel`, `@everyone` (any case, even in longer words) with a joiner."""
    return _BROADCAST.sub("@" + WORD_JOINER, text)


def escape(text: str) -> str:
    """Make model- or user-supplied text inert in mrkdwn, plain_text and fallback text alike."""
    return neutralise_broadcasts(escape_code(text))


def escape_label(text: str) -> str:
    """`escape` for a short label set inside our markup (`*name*`): whitespace is collapsed,
    since a leading or trailing space or a line break would stop Slack closing the emphasis."""
    return escape(" ".join(text.split()))


_CONTROL_START = re.compile(r"<(?=[!@#]|(?:https?|mailto):)", re.IGNORECASE)


def plain_label(text: str) -> str:
    """Untrusted text for a `plain_text` object (a header), on one line.

    Slack shows plain_text exactly as sent, so entities would show as `&amp;`: nothing is
    entity-encoded. Should any client parse it anyway, the start of every control sequence
    (`<!`, `<@`, `<#`, `<http…`) gets a word joiner after its `<`, and a Markdown link's
    `](` one between its brackets, which no parser reads as markup and no reader sees, and
    broadcast words are neutralised as everywhere else.
    """
    one_line = " ".join(text.split())
    inert = _CONTROL_START.sub("<" + WORD_JOINER, one_line)
    # Markdown's `[label](url)` would be a link whose words hide where it goes, wherever the
    # text is read as Markdown (a stream's task fields, a `markdown_text` summary).
    inert = inert.replace("](", "]" + WORD_JOINER + "(")
    return neutralise_broadcasts(inert)


def user_mention(user_id: str) -> str:
    """`<@U…>` for a well-formed Slack user id; anything else is shown, escaped, as plain text."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id) else escape(user_id)


def channel_mention(channel_id: str) -> str:
    """`<#C…>` for a well-formed conversation id; anything else is shown, escaped, as plain text."""
    return f"<#{channel_id}>" if _CHANNEL_ID.fullmatch(channel_id) else escape(channel_id)
