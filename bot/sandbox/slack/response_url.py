"""The Slack sandbox's `response_url`s: where an app answers a slash command later.

Each slash command gets its own URL. A POST of JSON there shows an ephemeral message to the
person who ran the command (`response_type: "ephemeral"`, the default) or a message in the
channel (`"in_channel"`, which works even where the bot is not a member, as on Slack);
`replace_original` and `delete_original` act on what the URL last showed. Like Slack, a URL
works 5 times within 30 minutes; after that it answers 404 with `used_url` or `expired_url`.
`fail_next` makes the next posts fail that way (or any other) without waiting half an hour.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sandbox.slack.blocks import block_errors
from bot.sandbox.slack.workspace import (
    Ephemeral,
    EphemeralSource,
    Message,
    ResponseUrlPost,
    Workspace,
)

MAX_USES = 5
LIFETIME_S = 30 * 60


@dataclass(slots=True)
class ResponseUrl:
    url: str
    channel: str
    user: str
    created: float
    uses: int = 0
    last: Ephemeral | Message | None = None


class ResponseUrlError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class ResponseUrls:
    """Issues response URLs and serves POSTs to them."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.base = ""
        self.urls: dict[str, ResponseUrl] = {}
        self._serial = 0
        self._failures: list[ResponseUrlError] = []

    def fail_next(self, *, error: str = "expired_url", status: int = 404, times: int = 1) -> None:
        """The next `times` posts to any response URL answer `status` with `error`."""
        self._failures += [ResponseUrlError(status, error)] * times

    def issue(self, *, channel: str, user: str) -> ResponseUrl:
        self._serial += 1
        path = f"/commands/{self.ws.team_id}/{self._serial}/{secrets.token_hex(12)}"
        entry = ResponseUrl(f"{self.base}{path}", channel, user, time.monotonic())
        self.urls[path] = entry
        return entry

    async def handle(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {}
        try:
            entry = self._usable(request.path)
            body = _json_body(await request.read())
            self._apply(entry, body)
        except ResponseUrlError as exc:
            self.ws.response_posts.append(
                ResponseUrlPost(str(request.url), body, exc.status, exc.error)
            )
            return web.json_response({"ok": False, "error": exc.error}, status=exc.status)
        entry.uses += 1
        self.ws.response_posts.append(ResponseUrlPost(entry.url, body, 200))
        return web.json_response({"ok": True})

    def _usable(self, path: str) -> ResponseUrl:
        if self._failures:
            raise self._failures.pop(0)
        entry = self.urls.get(path)
        if entry is None:
            raise ResponseUrlError(404, "invalid_url")
        if time.monotonic() - entry.created > LIFETIME_S:
            raise ResponseUrlError(404, "expired_url")
        if entry.uses >= MAX_USES:
            raise ResponseUrlError(404, "used_url")
        return entry

    def _apply(self, entry: ResponseUrl, body: dict[str, Any]) -> None:
        if body.get("delete_original"):
            self._delete(entry)
            return
        text, blocks = str(body.get("text") or ""), body.get("blocks") or []
        if not text and not blocks:
            raise ResponseUrlError(400, "no_text")
        if block_errors(blocks):
            raise ResponseUrlError(400, "invalid_blocks")
        if body.get("replace_original") and entry.last is not None:
            self._replace(entry.last, text, blocks)
        elif body.get("response_type") == "in_channel":
            entry.last = self.ws.post(
                Message(
                    entry.channel,
                    self.ws.clock.next(),
                    self.ws.bot_user_id,
                    text=text,
                    blocks=blocks,
                    bot_id=self.ws.bot_id,
                    app_id=self.ws.app_id,
                )
            )
        else:
            entry.last = self.show_ephemeral(entry, text, blocks, source="response_url")

    def show_ephemeral(
        self,
        entry: ResponseUrl,
        text: str,
        blocks: list[dict[str, Any]],
        *,
        source: EphemeralSource,
    ) -> Ephemeral:
        ephemeral = Ephemeral(
            entry.channel, entry.user, self.ws.clock.next(), text=text, blocks=blocks, source=source
        )
        self.ws.ephemerals.append(ephemeral)
        entry.last = ephemeral
        return ephemeral

    def _replace(
        self, original: Ephemeral | Message, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        original.text, original.blocks = text, blocks
        if isinstance(original, Message):
            original.edited_ts = self.ws.clock.next()

    def _delete(self, entry: ResponseUrl) -> None:
        original, entry.last = entry.last, None
        if isinstance(original, Message):
            original.deleted = True
        elif original is not None and original in self.ws.ephemerals:
            self.ws.ephemerals.remove(original)


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ResponseUrlError(400, "invalid_payload") from None
    if not isinstance(body, dict):
        raise ResponseUrlError(400, "invalid_payload")
    return body
