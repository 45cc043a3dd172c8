"""Sign in with Slack (OpenID Connect) and the session cookie that remembers it.

`/login` sends the browser to Slack's authorize page with a fresh `state` and `nonce`,
both kept in a short-lived signed cookie (`LOGIN_COOKIE`, ten minutes). Slack sends the
browser back to `/auth/slack` with a code: the `state` must match the cookie's, the code
is exchanged with `openid.connect.token` (client id and secret, over TLS), and the id_token
it returns must be for this app (`aud`), from Slack (`iss`), unexpired (`exp`) and carry the
cookie's `nonce`. The token came straight from Slack's token endpoint over TLS, so, as
OpenID Connect allows (Core 3.1.3.7), its signature is not checked against Slack's keys.
`openid.connect.userInfo` (with the access token) must name the same person (`sub`); the
person and workspace come from it.

The session is a signed cookie (itsdangerous, keyed by `SLACK_CLIENT_SECRET`, the app's own
secret, with its own salt): HttpOnly, SameSite=Lax (the link is followed from Slack, another
site), Secure when the web address is https, and good for `SESSION_MAX_AGE_S`. It holds only
who signed in (user id, team id, name); what they may see is decided at every request.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings

log = logging.getLogger(__name__)
SESSION_COOKIE = "orchestrate_session"
LOGIN_COOKIE = "orchestrate_login"
SESSION_MAX_AGE_S = 12 * 3600
LOGIN_MAX_AGE_S = 600
SLACK_ISSUER = "https://slack.com"
CALLBACK_PATH = "/auth/slack"
TEAM_CLAIM = "https://slack.com/team_id"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is signed in."""

    user_id: str
    team_id: str
    name: str


class SignInRefused(Exception):
    """The sign-in cannot be trusted; the message says why, for the person and the log."""


class Sessions:
    """Signs and reads the session and login cookies."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.slack_client_secret or ""
        self._session = URLSafeTimedSerializer(secret, salt="orchestrate.web.session")
        self._login = URLSafeTimedSerializer(secret, salt="orchestrate.web.login")
        self._secure = (settings.web_url or "").startswith("https://")
        self.settings = settings

    def viewer(self, request: web.Request) -> Viewer | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._session.loads(raw, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        return Viewer(str(data["u"]), str(data["t"]), str(data["n"]))

    def sign_in(self, response: web.StreamResponse, viewer: Viewer) -> None:
        value = self._session.dumps({"u": viewer.user_id, "t": viewer.team_id, "n": viewer.name})
        self._set(response, SESSION_COOKIE, value, SESSION_MAX_AGE_S)

    def sign_out(self, response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path="/")

    def start(self, response: web.StreamResponse, next_path: str) -> tuple[str, str]:
        """A fresh (state, nonce), remembered with where to go next in the login cookie."""
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        value = self._login.dumps({"s": state, "n": nonce, "next": next_path})
        self._set(response, LOGIN_COOKIE, value, LOGIN_MAX_AGE_S)
        return state, nonce

    def pending(self, request: web.Request, state: str) -> tuple[str, str]:
        """(nonce, next path) of the sign-in `state` belongs to, or SignInRefused."""
        raw = request.cookies.get(LOGIN_COOKIE)
        if not raw:
            raise SignInRefused("the sign-in expired or was started in another browser")
        try:
            data = self._login.loads(raw, max_age=LOGIN_MAX_AGE_S)
        except BadSignature:
            raise SignInRefused("the sign-in expired (ten minutes): start again") from None
        if not hmac.compare_digest(str(data["s"]), state):
            raise SignInRefused("the sign-in's state does not match: start again")
        return str(data["n"]), safe_next(str(data["next"]))

    def _set(self, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/", httponly=True, samesite="Lax",
            secure=self._secure,
        )  # fmt: skip


def safe_next(path: str) -> str:
    """Only a path on this site: never `//elsewhere` or a full URL (an open redirect)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/web"
    return path


def authorize_url(settings: Settings, *, state: str, nonce: str) -> str:
    """Slack's authorize page (beside its Web API: the stand-in's in the sandbox)."""
    base = settings.slack_api_url.rstrip("/").removesuffix("/api")
    query = urlencode(
        {
            "response_type": "code",
            "scope": "openid profile",
            "client_id": settings.slack_client_id or "",
            "state": state,
            "nonce": nonce,
            "redirect_uri": redirect_uri(settings),
        }
    )
    return f"{base}/openid/connect/authorize?{query}"


def redirect_uri(settings: Settings) -> str:
    return f"{settings.web_url}{CALLBACK_PATH}"


async def exchange(settings: Settings, *, code: str, nonce: str) -> Viewer:
    """The person a code stands for, checked as the module docstring says."""
    client = AsyncWebClient(base_url=settings.slack_api_url, timeout=10)
    try:
        # openid.connect.token, with the client's id and secret as form fields (which Slack
        # accepts beside HTTP Basic): slack_sdk's `openid_connect_token` builds an
        # aiohttp.BasicAuth, deprecated since aiohttp 3.13 and warned about on every call.
        token = await client.api_call(
            "openid.connect.token",
            data={
                "client_id": settings.slack_client_id or "",
                "client_secret": settings.slack_client_secret or "",
                "code": code,
                "redirect_uri": redirect_uri(settings),
            },
        )
        claims = check_id_token(str(token["id_token"]), settings=settings, nonce=nonce)
        user_client = AsyncWebClient(
            token=str(token["access_token"]), base_url=settings.slack_api_url, timeout=10
        )
        info = await user_client.openid_connect_userInfo()
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        raise SignInRefused(f"Slack refused the sign-in ({error or 'no answer'})") from None
    if info.get("sub") != claims.get("sub") or not info.get(TEAM_CLAIM):
        raise SignInRefused("Slack's answers about who signed in do not agree")
    name = str(info.get("name") or info.get("given_name") or info["sub"])
    return Viewer(str(info["sub"]), str(info[TEAM_CLAIM]), name)


def check_id_token(
    id_token: str, *, settings: Settings, nonce: str, now: float | None = None
) -> dict[str, Any]:
    """The id_token's claims, once `iss`, `aud`, `exp` and `nonce` are what they must be."""
    try:
        payload = id_token.split(".")[1]
        claims: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
    except (IndexError, ValueError):
        raise SignInRefused("Slack's id_token could not be read") from None
    moment = time.time() if now is None else now
    if claims.get("iss") != SLACK_ISSUER:
        raise SignInRefused("the id_token is not from Slack")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if settings.slack_client_id not in audiences:
        raise SignInRefused("the id_token is for another app")
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= moment:
        raise SignInRefused("the id_token has expired")
    if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SignInRefused("the id_token's nonce does not match this sign-in")
    return claims
