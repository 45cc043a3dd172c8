"""Pure Block Kit builders for orchestrate's messages: data in, blocks out. Never imports `bot`.

The package turns the pipeline's data (read through the Protocols in `blocks.types`) into
`OutboundMessage`s: `run` builds a run's messages, `cost` its bill, `ephemeral` help and errors,
`costs_view` the spending reports and App Home. Underneath, `escape` makes model and user text
inert, `mrkdwn` converts Markdown, `split` keeps text inside Slack's limits, `message` assembles
blocks and `format` writes figures. Everything a caller needs is re-exported here.
"""

from blocks.cost import cost_footer
from blocks.costs_view import costs_summary_message, home_view
from blocks.ephemeral import (
    bad_period_message,
    budget_alert_message,
    budget_refused_message,
    channel_unavailable_message,
    error_message,
    help_message,
    question_too_long_message,
    run_not_started_message,
    unbounded_budget_message,
)
from blocks.escape import channel_mention, escape, escape_code, user_mention
from blocks.followup import (
    FOLLOWUPS_BLOCK_ID,
    followup_answer_messages,
    followup_example_messages,
    followup_failed_message,
    followups_total_block,
    run_in_progress_message,
    thread_unreadable_message,
)
from blocks.format import format_elapsed, format_usd, model_label, period_label
from blocks.message import (
    MAX_BLOCKS,
    MESSAGE_TEXT_BUDGET,
    NO_UNFURL,
    OutboundMessage,
    resplit,
    shorten_fallback,
    text_size,
)
from blocks.mrkdwn import markdown_to_mrkdwn
from blocks.run import (
    done_status,
    example_failed_message,
    example_messages,
    failed_status,
    illustrating_status,
    interrupted_message,
    interrupted_status,
    planning_status,
    review_failed_message,
    review_message,
    reviewing_status,
    run_failed_message,
    status_message,
    status_overflow_messages,
    strategy_message,
    strategy_overflow_messages,
    undelivered_message,
)
from blocks.split import clip, slack_length, split_chunks, split_mrkdwn

__all__ = [
    "FOLLOWUPS_BLOCK_ID",
    "MAX_BLOCKS",
    "MESSAGE_TEXT_BUDGET",
    "NO_UNFURL",
    "OutboundMessage",
    "bad_period_message",
    "budget_alert_message",
    "budget_refused_message",
    "channel_mention",
    "channel_unavailable_message",
    "clip",
    "cost_footer",
    "costs_summary_message",
    "done_status",
    "error_message",
    "escape",
    "escape_code",
    "example_failed_message",
    "example_messages",
    "failed_status",
    "followup_answer_messages",
    "followup_example_messages",
    "followup_failed_message",
    "followups_total_block",
    "format_elapsed",
    "format_usd",
    "help_message",
    "home_view",
    "illustrating_status",
    "interrupted_message",
    "interrupted_status",
    "markdown_to_mrkdwn",
    "model_label",
    "period_label",
    "planning_status",
    "question_too_long_message",
    "resplit",
    "review_failed_message",
    "review_message",
    "reviewing_status",
    "run_failed_message",
    "run_in_progress_message",
    "run_not_started_message",
    "shorten_fallback",
    "slack_length",
    "split_chunks",
    "split_mrkdwn",
    "status_message",
    "status_overflow_messages",
    "strategy_message",
    "strategy_overflow_messages",
    "text_size",
    "thread_unreadable_message",
    "unbounded_budget_message",
    "undelivered_message",
    "user_mention",
]
