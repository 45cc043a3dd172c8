"""The buttons on a run's messages, and the short replies their clicks get.

A working run's first message carries a Stop button; the review carries 👍/👎 feedback
buttons (`feedback_buttons` in a `context_actions` block); an example that could not be
illustrated carries a Retry button. Each button's `value` names the run (and the component),
so a click on any instance finds what it acts on; the action ids are constants the Slack edge
listens for. What a click is answered with (refusals, thanks) is written here too, and the
"what was wrong?" modal a 👎 may open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blocks.cost import cost_footer
from blocks.escape import escape, user_mention
from blocks.format import format_elapsed
from blocks.message import Block, OutboundMessage, context, fallback, section
from blocks.split import clip
from blocks.types import CostSummaryView

STOP_ACTION = "orchestrate_stop"
FEEDBACK_ACTION = "orchestrate_feedback"
RETRY_ACTION = "orchestrate_retry"
WRONG_CALLBACK = "orchestrate_what_was_wrong"
WRONG_BLOCK, WRONG_INPUT = "what_was_wrong", "reason"
REASON_LIMIT = 1000
UP, DOWN = "up", "down"


def _button(text: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def stop_actions(run_id: str) -> Block:
    """The Stop button for a working run's first message."""
    return {"type": "actions", "elements": [_button("⏹ Stop", STOP_ACTION, run_id, style="danger")]}


def without_stop(blocks: Any) -> tuple[Block, ...] | None:
    """A message's `blocks` (as Slack sent them back in a click) without its Stop button, an
    actions block left empty dropped; None when it shows no Stop button (or is not blocks)."""
    if not isinstance(blocks, list):
        return None
    kept: list[Block] = []
    for block in blocks:
        if not isinstance(block, dict):
            return None
        elements = block.get("elements") if block.get("type") == "actions" else None
        if isinstance(elements, list):
            rest = [e for e in elements if not _is_stop(e)]
            if len(rest) != len(elements):
                if rest:
                    kept.append({**block, "elements": rest})
                continue
        kept.append(block)
    return tuple(kept) if kept != blocks and kept else None


def _is_stop(element: Any) -> bool:
    return isinstance(element, dict) and element.get("action_id") == STOP_ACTION


def feedback_actions(run_id: str) -> Block:
    """👍/👎 under the review; the chosen button's value is `up:<run>` or `down:<run>`."""

    def side(text: str, vote: str, label: str) -> dict[str, Any]:
        return {
            "text": {"type": "plain_text", "text": text, "emoji": True},
            "value": f"{vote}:{run_id}",
            "accessibility_label": label,
        }

    return {
        "type": "context_actions",
        # Slack asks for a block_id unique to the message: one review per run.
        "block_id": f"feedback-{run_id}",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": side("👍", UP, "This answer was useful"),
                "negative_button": side("👎", DOWN, "This answer was not useful"),
            }
        ],
    }


def renew_context_actions(blocks: Sequence[Block], iteration: int) -> tuple[Block, ...]:
    """`blocks` for an update of their message: Slack asks that a `context_actions` block get
    a new `block_id` whenever its message is updated ("use a new block_id"), so each one is
    numbered with the message's `iteration` (the buttons and their values are unchanged)."""
    return tuple(
        {**b, "block_id": f"{str(b.get('block_id', 'actions')).partition('.')[0]}.{iteration}"}
        if b.get("type") == "context_actions"
        else b
        for b in blocks
    )


def retry_actions(run_id: str, index: int) -> Block:
    """Retry for one component that could not be illustrated; `index` is 0-based."""
    return {"type": "actions", "elements": [_button("↻ Retry", RETRY_ACTION, f"{run_id}:{index}")]}


def parse_vote(value: str) -> tuple[str, str] | None:
    """(`up`|`down`, run id) from a feedback button's value; None if it is not ours."""
    vote, _, run_id = value.partition(":")
    return (vote, run_id) if vote in (UP, DOWN) and run_id else None


MAX_INDEX_DIGITS = 6  # far past the few components a strategy has


def parse_retry(value: str) -> tuple[str, int] | None:
    """(run id, 0-based component index) from a Retry button's value; None if malformed."""
    run_id, _, index = value.rpartition(":")
    # ASCII digits only, and few of them: str.isdigit() accepts '²' (which int() refuses) and
    # int() refuses over 4300 digits; a forged value must be refused, not raise.
    if not run_id or not (index.isascii() and index.isdigit()) or len(index) > MAX_INDEX_DIGITS:
        return None
    return run_id, int(index)


# Replies to clicks (ephemeral) ----------------------------------------------------------


def only_asker_message(*, asker_id: str, action: str) -> OutboundMessage:
    """`Only @asker or an admin can stop this run.`"""
    line = f"Only {user_mention(asker_id)} or an admin can {escape(action)} this run."
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def not_a_run_message(*, action: str) -> OutboundMessage:
    """A click naming no run of the clicker's workspace (a forged value, or a run deleted)."""
    line = f"There is nothing to {escape(action)}: this button names no run of this workspace."
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def already_over_message(*, action: str) -> OutboundMessage:
    line = f"This run has already ended: there is nothing to {escape(action)}."
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def stopping_message() -> OutboundMessage:
    line = "⏹ Stopping the run: calls in flight are being cut off. The thread will show the bill."
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def feedback_thanks_message(*, vote: str, previous: str | None) -> OutboundMessage:
    """Thanks, saying whether the vote was new, unchanged or changed."""
    mark = "👍" if vote == UP else "👎"
    if previous is None:
        line = f"Thanks for the {mark}: it helps weigh what these answers cost against their use."
    elif previous == vote:
        line = f"Your {mark} was already counted, once."
    else:
        line = f"Changed your vote to {mark}. Thanks."
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def click_not_recorded_message() -> OutboundMessage:
    """The ledger cannot be reached, so a click could not be checked or recorded."""
    line = (
        "This click could not be acted on: the bot cannot reach its ledger right now, and "
        "nothing was changed or spent. Try again in a minute."
    )
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def vote_unavailable_message() -> OutboundMessage:
    """A feedback click naming no run of the clicker's workspace (only a forged one can)."""
    line = "This vote could not be counted: the run it names is not one of this workspace's."
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def retry_unavailable_message() -> OutboundMessage:
    """The run's question and strategy are not kept (or no longer): nothing to retry from."""
    line = (
        "This example can no longer be retried: the run's question and strategy are no "
        "longer available (this bot's ledger does not keep them, or they were erased). "
        "Ask again with `/orchestrate`."
    )
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def retry_not_failed_message() -> OutboundMessage:
    """A Retry naming a component whose example was written (only a forged click can)."""
    line = "Only an example that could not be illustrated can be retried, and this one was."
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def retry_while_running_message() -> OutboundMessage:
    line = "This run is still working: retry this example once it has finished."
    return OutboundMessage(text=fallback(line), blocks=(section(line),))


def retry_under_way_message(*, name: str) -> OutboundMessage:
    """The answer to a second click while the first one's retry is still running."""
    line = (
        f"↻ *{escape(name)}* is already being retried: the new example will appear in the thread."
    )
    return OutboundMessage(text=fallback(line), blocks=(section(clip(line, 3000)),))


def retry_used_message(*, name: str) -> OutboundMessage:
    """The answer to a click on a Retry button whose retry has ended (a stale double click,
    a replay): its result is in the thread, and a retry that failed again has its own button."""
    line = (
        f"↻ *{escape(name)}* was retried from this button already: the thread shows the "
        "result, and if it failed again, its own ↻ Retry button."
    )
    return OutboundMessage(text=fallback(line), blocks=(section(clip(line, 3000)),))


def retry_started_message(*, name: str) -> OutboundMessage:
    line = f"↻ Retrying *{escape(name)}*: the new example will appear in the thread."
    return OutboundMessage(text=fallback(line), blocks=(section(clip(line, 3000)),))


# In the thread -------------------------------------------------------------------------


def stopped_status() -> str:
    """For the first message (plain text: the thread says who stopped it)."""
    return "⏹ Stopped before it finished"


def stopped_message(*, stopped_by: str, cost: CostSummaryView, elapsed_s: float) -> OutboundMessage:
    """`⏹ Stopped by @bob after 4.2 s.` and the bill of what was spent up to then."""
    line = (
        f"⏹ Stopped by {user_mention(stopped_by)} after {format_elapsed(elapsed_s)}. "
        "Calls in flight were cut off; what they had used is billed below (estimated where "
        "the answer was cut before the API reported it)."
    )
    return OutboundMessage(
        text=fallback(line), blocks=(section(line), *cost_footer(cost, elapsed_s))
    )


def retried_message(*, retried_by: str, cost: CostSummaryView, elapsed_s: float) -> OutboundMessage:
    """Under a retried example: who asked for it, and the bill of that one call."""
    line = f"↻ Retried by {user_mention(retried_by)} · billed to them as a follow-up of this run."
    return OutboundMessage(
        text=fallback(line), blocks=(context(line), *cost_footer(cost, elapsed_s))
    )


# The "what was wrong?" modal after a 👎 -------------------------------------------------


def reason_not_saved_error() -> str:
    """Shown under the "what was wrong?" input when the ledger cannot take it right now: the
    modal stays open with the text, so nothing typed is lost."""
    return (
        "This could not be saved: the bot cannot reach its ledger right now. "
        "Try Submit again in a minute."
    )


def what_was_wrong_modal(run_id: str) -> dict[str, Any]:
    """A modal asking, optionally, what was wrong; `private_metadata` names the run."""
    return {
        "type": "modal",
        "callback_id": WRONG_CALLBACK,
        "private_metadata": run_id,
        "title": {"type": "plain_text", "text": "What was wrong?"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [
            context("Optional. Admins see it next to the 👎; the model never does."),
            {
                "type": "input",
                "block_id": WRONG_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "What was missing or wrong?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": WRONG_INPUT,
                    "multiline": True,
                    "max_length": REASON_LIMIT,
                },
            },
        ],
    }
