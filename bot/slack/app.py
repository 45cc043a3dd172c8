"""Builds the Bolt `AsyncApp` on our own Web API client and registers the listeners.

The client (pointed at `SLACK_API_URL`, with the rate-limit retry handler) is the one the
services own, so Bolt's per-request clients inherit its base URL and retry handlers. In
HTTP mode Bolt verifies every request's signature with `SLACK_SIGNING_SECRET`; in Socket
Mode there is no signature to check (the WebSocket is authenticated by the app token).
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack import commands as listeners
from bot.slack.deps import Services


def build_app(services: Services, *, http: bool) -> AsyncApp:
    settings = services.settings
    app = AsyncApp(
        client=services.client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=http,
    )
    listeners.register(app, services)
    return app
