"""Builds the Bolt `AsyncApp` on our own Web API client and registers every entry point.

The client (pointed at `SLACK_API_URL`, with the rate-limit retry handler) is the one the
services own, so Bolt's per-request clients inherit its base URL and retry handlers. In
HTTP mode Bolt verifies every request's signature with `SLACK_SIGNING_SECRET`; in Socket
Mode there is no signature to check (the WebSocket is authenticated by the app token).
"""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

from bot.slack import actions, commands, governance, home, mentions, shortcuts
from bot.slack.deps import Services
from bot.slack.tenancy import only_workspace

EVENTS = ("app_home_opened", "app_mention")  # what manifest.yml subscribes to
# The Web API methods the bot calls, with the bot scope each needs (checked against
# manifest.yml by a test, so a new call cannot ship without its scope).
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "assistant.threads.setStatus": ("chat:write",),
    # A run's progress message (bot.slack.progress).
    "chat.startStream": ("chat:write",),
    "chat.appendStream": ("chat:write",),
    "chat.stopStream": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    # Threads in channels, private channels, DMs and group DMs (the conversation's type
    # decides which): read to follow a conversation, and to find a post whose answer was lost.
    "conversations.replies": ("channels:history", "groups:history", "im:history", "mpim:history"),
    "conversations.history": ("channels:history", "groups:history", "im:history", "mpim:history"),
    "conversations.join": ("channels:join",),
    "users.info": ("users:read",),
    "users.list": ("users:read",),
    "views.publish": (),
    "views.open": (),
    "conversations.open": ("im:write",),
    # slack_sdk's helper for the external upload: files.getUploadURLExternal, the POST to
    # the upload URL, files.completeUploadExternal.
    "files.upload.v2": ("files:write",),
    "auth.test": (),
    # The web view (bot.web): who may see a run's page, and the link back to its thread.
    "conversations.info": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "conversations.members": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "chat.getPermalink": (),
    "apps.connections.open": (),  # the app-level token's connections:write, not a bot scope
}
SHORTCUTS = (shortcuts.CALLBACK_ID,)  # manifest.yml: features.shortcuts (needs `commands`)


class _GivenClient(logging.Filter):
    """Drops Bolt's "As you gave `client` as well, `token` will be unused" warning.

    AsyncApp reads SLACK_BOT_TOKEN from the environment itself when no `token` is passed
    (and `""` counts as none), so with our client it warns at every start that the token it
    found is unused: it is, by design, the client carries the same token. Bolt copies a
    base logger's filters to the loggers it makes, and this one drops only that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def bolt_logger() -> logging.Logger:
    """Bolt's usual framework logger, with `_GivenClient` on it (once)."""
    logger = logging.getLogger("slack_bolt.AsyncApp")
    if not any(isinstance(f, _GivenClient) for f in logger.filters):
        logger.addFilter(_GivenClient())
    return logger


def build_app(services: Services, *, http: bool, team_id: str) -> AsyncApp:
    """The Bolt app serving the workspace `team_id` (from `auth.test`) and no other."""
    settings = services.settings
    app = AsyncApp(
        client=services.client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=http,
        logger=bolt_logger(),
    )
    only_workspace(app, team_id)
    for entry_point in (commands, home, mentions, shortcuts, governance, actions):
        entry_point.register(app, services)
    return app
