"""Sign in with Slack (OpenID Connect) in the sandbox: an authorize page, the token and
userInfo methods.

`GET /openid/connect/authorize` checks what Slack checks (`response_type=code`, an `openid`
scope, this app's `client_id`, a `redirect_uri` registered for it) and, instead of Slack's
consent screen, lists the workspace's people to sign in as; choosing one (`POST`) sends the
browser to the `redirect_uri` with a one-time `code` and the `state` as given.
`openid.connect.token` takes the client id and secret (HTTP Basic, as slack_sdk sends them,
or form fields) with the code and the same `redirect_uri`, and answers an access token (a
user token, `xoxp-…`) and an `id_token` whose claims are Slack's (`iss`, `sub`, `aud`,
`exp`, `iat`, `auth_time`, `nonce`, `https://slack.com/user_id`, `https://slack.com/team_id`,
name). A code works once and for ten minutes: `invalid_code` after. The id_token's signature
is random bytes: the app takes the token from the token endpoint over TLS and does not check
it (OpenID Connect Core 3.1.3.7), and the sandbox must not pretend to hold Slack's keys.
`openid.connect.userInfo` answers for the user token's person.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.sandbox.slack.web import ApiError, CallContext, Method, WebApi
from bot.sandbox.slack.workspace import Workspace

CODE_TTL_S = 600.0
TOKEN_TTL_S = 3600


@dataclass(frozen=True, slots=True)
class _Grant:
    user_id: str
    nonce: str | None
    redirect_uri: str
    expires_at: float


@dataclass
class OpenIdConnect:
    """The app's Sign in with Slack client (`client_id`, `client_secret`) and its grants."""

    ws: Workspace
    api: WebApi
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    redirect_uris: set[str] = field(default_factory=set)  # what the app's config lists
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)  # user token → user id

    def register(self) -> None:
        self.api.methods.update(
            {
                "openid.connect.token": Method(self.token, token="client"),
                "openid.connect.userInfo": Method(self.user_info, token="user"),
            }
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/openid/connect/authorize", self.authorize_page),
            web.post("/openid/connect/authorize", self.authorize),
        ]

    # The browser's side ----------------------------------------------------------------

    def _check(self, params: dict[str, str]) -> str | None:
        """What Slack would refuse about these authorize parameters, or None."""
        if params.get("response_type") != "code":
            return "response_type must be code"
        if "openid" not in params.get("scope", "").split():
            return "the scope must include openid"
        if params.get("client_id") != self.client_id:
            return "invalid client_id"
        if params.get("redirect_uri") not in self.redirect_uris:
            return "redirect_uri did not match any configured URIs"
        return None

    async def authorize_page(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        problem = self._check(params)
        if problem:
            return web.Response(text=f"Sign in with Slack refused: {problem}", status=400)
        hidden = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
            for k, v in params.items()
            if k in ("client_id", "redirect_uri", "state", "nonce", "scope", "response_type")
        )
        people = "".join(
            f'<li><button type="submit" name="user" value="{escape(u.id)}">'
            f"{escape(u.real_name)} ({escape(u.name)}){' · admin' if u.is_admin else ''}"
            "</button></li>"
            for u in sorted(self.ws.users.values(), key=lambda u: u.id)
            if not u.is_bot
        )
        html = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Sign in to {escape(self.ws.team_name)} (sandbox)</title></head><body>"
            f"<main><h1>Sign in to {escape(self.ws.team_name)}</h1>"
            "<p>The Slack sandbox: choose who you are.</p>"
            f'<form method="post" action="/openid/connect/authorize">{hidden}<ul>{people}</ul>'
            "</form></main></body></html>"
        )
        return web.Response(text=html, content_type="text/html")

    async def authorize(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        problem = self._check(form)
        if problem:
            return web.Response(text=f"Sign in with Slack refused: {problem}", status=400)
        user = self.ws.users.get(form.get("user", ""))
        if user is None or user.is_bot:
            return web.Response(text="no such person in this workspace", status=400)
        code = secrets.token_urlsafe(16)
        self._codes[code] = _Grant(
            user.id, form.get("nonce"), form["redirect_uri"], time.monotonic() + CODE_TTL_S
        )
        query = urlencode({"code": code, "state": form.get("state", "")})
        raise web.HTTPFound(f"{form['redirect_uri']}?{query}")

    # The Web API's side ----------------------------------------------------------------

    def token(self, ctx: CallContext) -> dict[str, Any]:
        if ctx.text("client_id") != self.client_id:
            raise ApiError("invalid_client_id")
        if ctx.text("client_secret") != self.client_secret:
            raise ApiError("bad_client_secret")
        grant = self._codes.pop(ctx.required("code"), None)
        if grant is None or grant.expires_at < time.monotonic():
            raise ApiError("invalid_code")
        if ctx.text("redirect_uri") != grant.redirect_uri:
            raise ApiError("bad_redirect_uri")
        access = "xoxp-" + secrets.token_hex(16)
        self._tokens[access] = grant.user_id
        self.api.user_tokens.add(access)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "id_token": self._id_token(grant),
        }

    def user_info(self, ctx: CallContext) -> dict[str, Any]:
        user_id = self._tokens.get(ctx.token or "")
        if user_id is None:
            raise ApiError("invalid_auth")
        return self._claims(user_id)

    def _claims(self, user_id: str) -> dict[str, Any]:
        user = self.ws.users[user_id]
        return {
            "sub": user.id,
            "https://slack.com/user_id": user.id,
            "https://slack.com/team_id": self.ws.team_id,
            "https://slack.com/team_name": self.ws.team_name,
            "https://slack.com/team_domain": self.ws.domain,
            "name": user.real_name,
            "given_name": user.real_name.split(" ")[0],
        }

    def _id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://slack.com",
            "aud": self.client_id,
            "exp": now + TOKEN_TTL_S,
            "iat": now,
            "auth_time": now,
            **({"nonce": grant.nonce} if grant.nonce else {}),
            **self._claims(grant.user_id),
        }
        header = {"typ": "JWT", "alg": "RS256", "kid": "sandbox"}
        return ".".join(
            (_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()),
             _b64(secrets.token_bytes(64)))
        )  # fmt: skip


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
