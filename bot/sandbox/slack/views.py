"""Modals in the Slack sandbox: trigger ids, `views.open` / `views.update`, and what people do
with a modal (click a button on App Home, submit the form) turned into interactive payloads.

Slack opens a modal only with a `trigger_id` it handed the app moments before (in a slash
command or an interaction payload): each is good once (`exchanged_trigger_id`) and for three
seconds (`expired_trigger_id`); an unknown one is `invalid_trigger_id`. A modal view is
checked as Slack checks it: `type: modal`, a plain-text title of 1–24 characters, at most 100
blocks within the block limits, a `submit` button whenever it has input blocks, input blocks
with a label and one known input element, `private_metadata` up to 3,000 characters and
`callback_id` up to 255. A view that breaks a rule answers `invalid_arguments` with Slack's
messages. `views.update` takes `view_id` or `external_id` and refuses a stale `hash`
(`hash_conflict`) or an unknown view (`not_found`).

`block_actions` and `view_submission` payloads are built here from what the person sees (the
buttons on their Home tab, the inputs of their open modal, with initial values in the state
as Slack puts them there); `apply_submission_response` applies the app's answer to a
submission: none closes the modal, `errors` keeps it open with a message under each named
input block (a key that names no input block of the view is refused, as Slack shows the user
a generic failure then), `update` replaces it and `clear` closes it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.slack.blocks import VIEW_MAX_BLOCKS, block_errors, error
from bot.sandbox.slack.web import ApiError, CallContext, Method, WebApi, invalid_arguments
from bot.sandbox.slack.workspace import Workspace

TRIGGER_TTL_S = 3.0
TITLE_MAX = 24
BUTTON_TEXT_MAX = 24
PRIVATE_METADATA_MAX = 3000
CALLBACK_ID_MAX = 255
LABEL_MAX = 2000
INPUT_ELEMENTS = frozenset(
    {
        "plain_text_input",
        "number_input",
        "email_text_input",
        "url_text_input",
        "static_select",
        "multi_static_select",
        "users_select",
        "multi_users_select",
        "conversations_select",
        "multi_conversations_select",
        "channels_select",
        "multi_channels_select",
        "checkboxes",
        "radio_buttons",
        "datepicker",
    }
)
_view_ids = itertools.count(1)
_action_ts = itertools.count(1)


@dataclass(slots=True)
class Trigger:
    user_id: str
    issued_at: float
    exchanged: bool = False


class Triggers:
    """The trigger ids handed to the app, each good once within `ttl_s` seconds."""

    def __init__(self, ttl_s: float = TRIGGER_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._issued: dict[str, Trigger] = {}

    def issue(self, user_id: str) -> str:
        trigger_id = f"{next(_action_ts)}.{int(time.time())}.{secrets.token_hex(16)}"
        self._issued[trigger_id] = Trigger(user_id, time.monotonic())
        return trigger_id

    def register(self, trigger_id: str, user_id: str) -> None:
        """A trigger id made elsewhere (a slash command payload) becomes exchangeable."""
        self._issued[trigger_id] = Trigger(user_id, time.monotonic())

    def exchange(self, trigger_id: str) -> str:
        """The user the trigger belongs to; refuses unknown, used and stale triggers."""
        trigger = self._issued.get(trigger_id)
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.exchanged:
            raise ApiError("exchanged_trigger_id")
        if time.monotonic() - trigger.issued_at > self.ttl_s:
            raise ApiError("expired_trigger_id")
        trigger.exchanged = True
        return trigger.user_id


@dataclass(slots=True)
class Modal:
    """One modal as a person sees it: the view, its errors, and whether it is still open."""

    user_id: str
    id: str
    view: dict[str, Any]
    hash: str
    errors: dict[str, str] = field(default_factory=dict)
    closed: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier versions


@dataclass(frozen=True, slots=True)
class SubmissionResult:
    """What the person sees after submitting: the modal closed, errors in it, or a new view."""

    outcome: str  # "closed", "errors", "updated", "refused"
    errors: dict[str, str]
    modal: Modal


class ViewMethods:
    """`views.open` and `views.update` on one workspace's modals."""

    def __init__(self, ws: Workspace, api: WebApi, triggers: Triggers) -> None:
        self.ws = ws
        self.api = api
        self.triggers = triggers
        self.modals: dict[str, Modal] = {}

    def register(self) -> None:
        self.api.methods.update(
            {"views.open": Method(self.views_open), "views.update": Method(self.views_update)}
        )

    def views_open(self, ctx: CallContext) -> dict[str, Any]:
        trigger_id = ctx.required("trigger_id")
        view = ctx.structured("view", format_error="invalid_arguments")
        check_modal(view)
        user_id = self.triggers.exchange(trigger_id)
        modal = Modal(user_id, f"V0M{next(_view_ids):07d}", view, _hash(view))
        self.modals[modal.id] = modal
        return {"view": self.view_api(modal)}

    def views_update(self, ctx: CallContext) -> dict[str, Any]:
        view = ctx.structured("view", format_error="invalid_arguments")
        modal = self._find(ctx.text("view_id"), ctx.text("external_id"))
        check_modal(view)
        expected = ctx.text("hash")
        if expected is not None and expected != modal.hash:
            raise ApiError("hash_conflict")
        self._replace(modal, view)
        return {"view": self.view_api(modal)}

    def open_modals(self, user_id: str) -> list[Modal]:
        return [m for m in self.modals.values() if m.user_id == user_id and not m.closed]

    def view_api(self, modal: Modal) -> dict[str, Any]:
        view = modal.view
        return {
            "id": modal.id,
            "team_id": self.ws.team_id,
            "type": "modal",
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": initial_state(view)},
            "hash": modal.hash,
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": modal.id,
            "app_id": self.ws.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.ws.team_id,
            "bot_id": self.ws.bot_id,
        }

    def apply_submission_response(self, modal: Modal, body: dict[str, Any]) -> SubmissionResult:
        """What Slack does with the app's answer to a `view_submission`."""
        action = body.get("response_action")
        if action is None or action == "clear":
            modal.closed, modal.errors = True, {}
            return SubmissionResult("closed", {}, modal)
        if action == "errors":
            return self._show_errors(modal, body.get("errors"))
        if action == "update" and isinstance(body.get("view"), dict):
            try:
                check_modal(body["view"])
            except ApiError:
                return SubmissionResult("refused", {}, modal)
            self._replace(modal, body["view"])
            return SubmissionResult("updated", {}, modal)
        return SubmissionResult("refused", {}, modal)

    def _show_errors(self, modal: Modal, errors: Any) -> SubmissionResult:
        inputs = {b.get("block_id") for b in modal.view.get("blocks", []) if _is_input(b)}
        if (
            not isinstance(errors, dict)
            or not errors
            or not all(isinstance(k, str) and k in inputs for k in errors)
            or not all(isinstance(v, str) and v for v in errors.values())
        ):
            return SubmissionResult("refused", {}, modal)
        modal.errors = dict(errors)
        return SubmissionResult("errors", dict(errors), modal)

    def _replace(self, modal: Modal, view: dict[str, Any]) -> None:
        modal.history.append(modal.view)
        modal.view, modal.hash, modal.errors = view, _hash(view), {}

    def _find(self, view_id: str | None, external_id: str | None) -> Modal:
        if view_id is None and external_id is None:
            raise invalid_arguments("[ERROR] missing required field: view_id or external_id")
        for modal in self.modals.values():
            if modal.id == view_id or (
                external_id is not None and modal.view.get("external_id") == external_id
            ):
                return modal
        raise ApiError("not_found")


def check_modal(view: Any) -> None:
    """Refuse a modal view Slack would refuse, with its `invalid_arguments` messages."""
    if not isinstance(view, dict):
        raise invalid_arguments(error("must be an object", "/view"))
    errors: list[str] = []
    if view.get("type") != "modal":
        errors.append(error("must be a valid enum value", "/view/type"))
    errors += _plain_text(view.get("title"), "/view/title", max_len=TITLE_MAX)
    blocks = view.get("blocks", [])
    errors += block_errors(blocks, max_blocks=VIEW_MAX_BLOCKS, pointer="/view/blocks")
    if isinstance(blocks, list):
        for index, block in enumerate(blocks):
            if _is_input(block):
                errors += _input_errors(block, f"/view/blocks/{index}")
        if any(_is_input(b) for b in blocks) and view.get("submit") is None:
            errors.append(error("submit is required when the view has input blocks", "/view"))
    for name in ("submit", "close"):
        if view.get(name) is not None:
            errors += _plain_text(view[name], f"/view/{name}", max_len=BUTTON_TEXT_MAX)
    if len(str(view.get("private_metadata", ""))) > PRIVATE_METADATA_MAX:
        errors.append(error(f"must be at most {PRIVATE_METADATA_MAX} characters",
                            "/view/private_metadata"))  # fmt: skip
    if len(str(view.get("callback_id", ""))) > CALLBACK_ID_MAX:
        errors.append(error(f"must be at most {CALLBACK_ID_MAX} characters", "/view/callback_id"))
    if errors:
        raise invalid_arguments(*errors)


def _is_input(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "input"


def _input_errors(block: dict[str, Any], pointer: str) -> list[str]:
    errors = _plain_text(block.get("label"), f"{pointer}/label", max_len=LABEL_MAX)
    element = block.get("element")
    if not isinstance(element, dict) or element.get("type") not in INPUT_ELEMENTS:
        errors.append(error("must be a valid input element", f"{pointer}/element"))
    elif not element.get("action_id"):
        # Slack generates one; the app could not read its value back without it.
        errors.append(error("action_id is required by this sandbox", f"{pointer}/element"))
    return errors


def _plain_text(text: Any, pointer: str, *, max_len: int) -> list[str]:
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        return [error("must be a plain_text object", pointer)]
    body = text.get("text")
    if not isinstance(body, str) or not 1 <= len(body) <= max_len:
        return [error(f"must be between 1 and {max_len} characters", f"{pointer}/text")]
    return []


def _hash(view: dict[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16]
    return f"{int(time.time())}.{digest}"


# ---------------------------------------------------------------- state and payloads


_SELECTED = {
    "conversations_select": "selected_conversation",
    "channels_select": "selected_channel",
    "users_select": "selected_user",
}
_SELECTED_MANY = {
    "multi_conversations_select": "selected_conversations",
    "multi_channels_select": "selected_channels",
    "multi_users_select": "selected_users",
}


def element_value(element: dict[str, Any], value: Any) -> dict[str, Any]:
    """An input's entry in `view.state.values`, shaped by its element type as Slack sends it."""
    kind = str(element.get("type"))
    entry: dict[str, Any] = {"type": kind}
    if kind in _SELECTED:
        entry[_SELECTED[kind]] = value
    elif kind in _SELECTED_MANY:
        entry[_SELECTED_MANY[kind]] = list(value or [])
    else:
        entry["value"] = None if value in (None, "") else str(value)
    return entry


def _initial(element: dict[str, Any]) -> Any:
    for key in (
        "initial_value", "initial_conversation", "initial_channel", "initial_user",
        "initial_conversations", "initial_channels", "initial_users",
    ):  # fmt: skip
        if key in element:
            return element[key]
    return None


def initial_state(view: dict[str, Any], typed: dict[str, Any] | None = None) -> dict[str, Any]:
    """`state.values` for the view's inputs: what the person typed, else the initial values."""
    typed = typed or {}
    values: dict[str, Any] = {}
    for block in view.get("blocks", []):
        if not _is_input(block):
            continue
        element = block["element"]
        block_id = block.get("block_id", "")
        value = typed[block_id] if block_id in typed else _initial(element)
        values[block_id] = {element["action_id"]: element_value(element, value)}
    return values


def _user(ws: Workspace, user_id: str) -> dict[str, Any]:
    user = ws.users[user_id]
    return {"id": user_id, "username": user.name, "name": user.name, "team_id": ws.team_id}


def view_submission_payload(
    ws: Workspace, views: ViewMethods, modal: Modal, typed: dict[str, Any], trigger_id: str
) -> dict[str, Any]:
    """The `view_submission` Slack sends when `modal.user_id` presses the submit button."""
    view = views.view_api(modal)
    view["state"] = {"values": initial_state(modal.view, typed)}
    return {
        "type": "view_submission",
        "team": {"id": ws.team_id, "domain": ws.domain},
        "user": _user(ws, modal.user_id),
        "api_app_id": ws.app_id,
        "token": "sandbox-verification-token",
        "trigger_id": trigger_id,
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def find_button(view: dict[str, Any], action_id: str) -> tuple[str, dict[str, Any]] | None:
    """(block_id, element) of the button `action_id` in a view's actions or section blocks."""
    for block in view.get("blocks", []):
        candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if block.get("type") == "section" and isinstance(block.get("accessory"), dict):
            candidates.append(block["accessory"])
        for element in candidates:
            if element.get("type") == "button" and element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    return None


def block_actions_payload(
    ws: Workspace,
    *,
    user_id: str,
    container_view: dict[str, Any],
    block_id: str,
    button: dict[str, Any],
    trigger_id: str,
) -> dict[str, Any]:
    """The `block_actions` Slack sends when `user_id` clicks `button` in a view (App Home)."""
    action: dict[str, Any] = {
        "action_id": button["action_id"],
        "block_id": block_id,
        "text": button.get("text"),
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    if "value" in button:
        action["value"] = button["value"]
    return {
        "type": "block_actions",
        "user": _user(ws, user_id),
        "api_app_id": ws.app_id,
        "token": "sandbox-verification-token",
        "container": {"type": "view", "view_id": container_view.get("id", "")},
        "trigger_id": trigger_id,
        "team": {"id": ws.team_id, "domain": ws.domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": container_view,
        "actions": [action],
    }
