"""Files in the Slack sandbox: Slack's two-step external upload, with the upload URL served here.

`files.getUploadURLExternal` (scope `files:write`; `filename` and a positive whole `length`
required) answers a one-time `upload_url` on this server and a `file_id`. The app POSTs the
bytes there (no token: the URL is the credential), raw or as multipart form data; a second
upload to the same URL, or one whose size is not the `length` declared, is refused (the
stricter reading: Slack's behaviour on a size mismatch is not documented).
`files.completeUploadExternal` (scope `files:write`) then shares the uploaded files: `files`
is a JSON array of `{id, title?}`; an id that was never issued, never uploaded or already
completed answers `file_not_found`; `channel_id` (or `channels`) must be a conversation the
bot can post in (`channel_not_found` / `not_in_channel` otherwise), and the share appears
there as a message carrying the files, with `initial_comment` as its text.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from bot.sandbox.slack.chat import visible_channel
from bot.sandbox.slack.web import ApiError, CallContext, Method, WebApi, invalid_arguments
from bot.sandbox.slack.workspace import Message, Workspace

_file_ids = itertools.count(1)


@dataclass(slots=True)
class UploadedFile:
    """One external upload from URL to share: what was declared, sent and shared."""

    id: str
    filename: str
    length: int
    secret: str
    content: bytes | None = None
    title: str | None = None
    shared_in: list[str] = field(default_factory=list)
    completed: bool = False

    @property
    def text(self) -> str:
        return (self.content or b"").decode("utf-8")


class FileMethods:
    """`files.getUploadURLExternal`, the upload URL, and `files.completeUploadExternal`."""

    def __init__(self, ws: Workspace, api: WebApi) -> None:
        self.ws = ws
        self.api = api
        self.base = ""  # set once the server is bound
        self.files: dict[str, UploadedFile] = {}

    def register(self) -> None:
        self.api.methods.update(
            {
                "files.getUploadURLExternal": Method(self.get_upload_url),
                "files.completeUploadExternal": Method(self.complete_upload),
            }
        )

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/upload/v1/{secret}", self.receive)]

    def get_upload_url(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("files:write")
        filename = ctx.required("filename")
        raw_length = ctx.required("length")
        if not raw_length.isdigit() or int(raw_length) <= 0:
            raise invalid_arguments("[ERROR] length must be a positive integer")
        upload = UploadedFile(
            f"F0SANDBOX{next(_file_ids):05d}", filename, int(raw_length), secrets.token_hex(16)
        )
        self.files[upload.id] = upload
        return {"upload_url": f"{self.base}/upload/v1/{upload.secret}", "file_id": upload.id}

    async def receive(self, request: web.Request) -> web.Response:
        secret = request.match_info["secret"]
        upload = next((f for f in self.files.values() if f.secret == secret), None)
        if upload is None or upload.content is not None:
            return web.Response(status=404, text="upload URL not found or already used")
        content = await _body(request)
        if len(content) != upload.length:
            return web.Response(
                status=400, text=f"length mismatch: declared {upload.length}, got {len(content)}"
            )
        upload.content = content
        return web.Response(text=f"OK - {len(content)}")

    def complete_upload(self, ctx: CallContext) -> dict[str, Any]:
        self.api.need_scope("files:write")
        entries = ctx.structured("files", format_error="invalid_arguments")
        if not isinstance(entries, list) or not entries:
            raise invalid_arguments("[ERROR] files must be a non-empty array")
        uploads = [self._uploaded(entry) for entry in entries]
        targets = [ctx.text("channel_id"), *(ctx.text("channels") or "").split(",")]
        channels = [visible_channel(self.ws, target) for target in targets if target]
        for channel in channels:
            if self.ws.bot_user_id not in channel.members:
                raise ApiError("not_in_channel")
        for upload, entry in zip(uploads, entries, strict=True):
            upload.completed = True
            upload.title = str(entry.get("title") or upload.filename)
            upload.shared_in = [c.id for c in channels]
        for channel in channels:
            self._share(
                channel.id, uploads, ctx.text("initial_comment") or "", ctx.text("thread_ts")
            )
        return {"files": [self._file_api(u) for u in uploads]}

    def _uploaded(self, entry: Any) -> UploadedFile:
        upload = self.files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
        if upload is None or upload.content is None or upload.completed:
            raise ApiError("file_not_found")
        return upload

    def _share(
        self, channel: str, uploads: list[UploadedFile], comment: str, thread_ts: str | None
    ) -> None:
        ws = self.ws
        files = [{"id": u.id, "name": u.filename, "title": u.title} for u in uploads]
        ws.post(
            Message(
                channel,
                ws.clock.next(),
                ws.bot_user_id,
                text=comment,
                thread_ts=thread_ts,
                bot_id=ws.bot_id,
                app_id=ws.app_id,
                metadata={"files": files},
            )
        )

    def _file_api(self, upload: UploadedFile) -> dict[str, Any]:
        return {
            "id": upload.id,
            "name": upload.filename,
            "title": upload.title,
            "mimetype": "text/csv" if upload.filename.endswith(".csv") else "text/plain",
            "size": upload.length,
            "user": self.ws.bot_user_id,
            "channels": [c for c in upload.shared_in if c.startswith("C")],
            "groups": [c for c in upload.shared_in if c.startswith("G")],
            "ims": [c for c in upload.shared_in if c.startswith("D")],
        }


async def _body(request: web.Request) -> bytes:
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name in {"file", "filename"}:
                return bytes(await part.read())
        return b""
    return await request.read()


def shared_files(message: Message) -> list[dict[str, Any]]:
    """The files a message carries (an upload shared into a conversation)."""
    files = (message.metadata or {}).get("files")
    return list(files) if isinstance(files, list) else []
