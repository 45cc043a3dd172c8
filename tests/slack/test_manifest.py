"""manifest.yml (Socket Mode) and manifest.http.yml (HTTP mode) agree with what the code
registers and calls, with each other, and with the fields Slack's manifest schema allows."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.slack import app as edge
from bot.slack.commands import COMMAND
from bot.slack.server import EVENTS_PATH

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"
HTTP_MANIFEST = MANIFEST.with_name("manifest.http.yml")
HTTP_URL = "https://orchestrate.example.com" + EVENTS_PATH


def manifest(path: Path = MANIFEST) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _closed(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


_URL = {"type": "string", "pattern": "^https?://"}
_STRINGS = {"type": "array", "items": {"type": "string", "maxLength": 50}, "uniqueItems": True}
# The parts of Slack's published app-manifest JSON schema (slackapi/manifest-schema, v1)
# that these manifests use, restated: the keys each object may have, the required ones,
# lengths and URL shapes. A key Slack does not know, or a request URL that is not a URL,
# fails here as it would when the manifest is pasted into api.slack.com.
SLACK_MANIFEST_SCHEMA: dict[str, Any] = _closed(
    {
        "display_information": _closed(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 35},
                "description": {"type": "string", "minLength": 1, "maxLength": 140},
                "background_color": {"type": "string", "pattern": "^#[0-9a-fA-F]{3,6}$"},
                "long_description": {"type": "string", "minLength": 175, "maxLength": 4000},
            },
            required=["name"],
        ),
        "features": _closed(
            {
                "app_home": _closed(
                    {
                        "home_tab_enabled": {"type": "boolean"},
                        "messages_tab_enabled": {"type": "boolean"},
                        "messages_tab_read_only_enabled": {"type": "boolean"},
                    }
                ),
                "bot_user": _closed(
                    {
                        "display_name": {"type": "string", "minLength": 1, "maxLength": 80},
                        "always_online": {"type": "boolean"},
                    },
                    required=["display_name"],
                ),
                "slash_commands": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": _closed(
                        {
                            "command": {"type": "string", "pattern": "^/", "maxLength": 32},
                            "url": {**_URL, "maxLength": 3000},
                            "description": {"type": "string", "minLength": 1, "maxLength": 2000},
                            "usage_hint": {"type": "string", "minLength": 1, "maxLength": 1000},
                            "should_escape": {"type": "boolean"},
                        },
                        required=["command", "description"],
                    ),
                },
                "shortcuts": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 10,
                    "items": _closed(
                        {
                            "name": {"type": "string", "minLength": 1, "maxLength": 24},
                            "type": {"enum": ["message", "global"]},
                            "callback_id": {"type": "string", "minLength": 1, "maxLength": 255},
                            "description": {"type": "string", "minLength": 1, "maxLength": 150},
                        },
                        required=["name", "type", "callback_id", "description"],
                    ),
                },
            }
        ),
        "oauth_config": _closed(
            {
                # Sign in with Slack (the web view): where Slack may send the browser back.
                "redirect_urls": {
                    "type": "array",
                    "items": {**_URL, "maxLength": 3000},
                    "uniqueItems": True,
                    "maxItems": 1000,
                },
                "scopes": _closed(
                    {"bot": {**_STRINGS, "maxItems": 255}, "user": {**_STRINGS, "maxItems": 255}}
                ),
            }
        ),
        "settings": _closed(
            {
                "event_subscriptions": _closed(
                    {"request_url": {**_URL, "maxLength": 3500}, "bot_events": _STRINGS}
                ),
                "interactivity": _closed(
                    {"is_enabled": {"type": "boolean"}, "request_url": {**_URL, "maxLength": 3500}},
                    required=["is_enabled"],
                ),
                "org_deploy_enabled": {"type": "boolean"},
                "socket_mode_enabled": {"type": "boolean"},
                "token_rotation_enabled": {"type": "boolean"},
            }
        ),
    },
    required=["display_information"],
)


@pytest.mark.parametrize("path", [MANIFEST, HTTP_MANIFEST], ids=["socket", "http"])
def test_each_manifest_is_valid_for_slack(path: Path) -> None:
    jsonschema.validate(manifest(path), SLACK_MANIFEST_SCHEMA)


def test_the_schema_refuses_what_slack_refuses() -> None:
    broken = manifest(HTTP_MANIFEST)
    broken["settings"]["event_subscriptions"]["request_url"] = "orchestrate.example.com/slack"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SLACK_MANIFEST_SCHEMA)
    unknown = manifest()
    unknown["settings"]["socket_mode"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(unknown, SLACK_MANIFEST_SCHEMA)


def test_the_http_manifest_is_the_same_app_with_its_request_urls() -> None:
    # Slack sends commands, events and interactions to one URL each; the bot serves all
    # three on /slack/events. Everything else is manifest.yml's, so the two cannot drift.
    expected = copy.deepcopy(manifest())
    expected["features"]["slash_commands"][0]["url"] = HTTP_URL
    expected["settings"]["event_subscriptions"]["request_url"] = HTTP_URL
    expected["settings"]["interactivity"]["request_url"] = HTTP_URL
    expected["settings"]["socket_mode_enabled"] = False
    assert manifest(HTTP_MANIFEST) == expected


def test_the_usage_hint_names_every_costs_form_the_command_takes() -> None:
    hint = manifest()["features"]["slash_commands"][0]["usage_hint"]
    assert "costs [csv]" in hint and "help" in hint


def test_the_slash_command_is_the_one_the_listener_handles() -> None:
    commands = [c["command"] for c in manifest()["features"]["slash_commands"]]
    assert commands == [COMMAND]


def test_subscribed_events_are_exactly_the_ones_registered() -> None:
    events = manifest()["settings"]["event_subscriptions"]["bot_events"]
    assert sorted(events) == sorted(edge.EVENTS)


def test_every_web_api_method_the_bot_calls_has_its_scope() -> None:
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    needed = {scope for scopes_of in edge.METHOD_SCOPES.values() for scope in scopes_of}
    assert {"channels:history", "groups:history", "chat:write"} <= needed
    assert needed <= scopes
    assert "commands" in scopes  # slash commands and shortcuts both need it


def test_no_scope_is_asked_for_that_nothing_uses() -> None:
    # Besides the methods' scopes: `commands` (the slash command and the shortcut) and
    # `app_mentions:read` (the app_mention event). No chat:write.public: posting where the
    # bot is not a member would leave it unable to read the thread or hear mentions in it,
    # so it joins a public channel instead (channels:join).
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    needed = {scope for scopes_of in edge.METHOD_SCOPES.values() for scope in scopes_of}
    assert scopes == needed | {"commands", "app_mentions:read"}
    assert "chat:write.public" not in scopes


def test_the_message_shortcut_is_the_one_the_listener_handles() -> None:
    data = manifest()
    shortcuts = data["features"]["shortcuts"]
    assert [(s["type"], s["callback_id"]) for s in shortcuts] == [
        ("message", callback) for callback in edge.SHORTCUTS
    ]
    assert all(len(s["name"]) <= 24 and len(s["description"]) <= 80 for s in shortcuts)
    assert data["settings"]["interactivity"]["is_enabled"] is True


def test_the_listed_methods_are_the_ones_the_code_calls() -> None:
    # Every AsyncWebClient method call in the app (not the sandboxes), as an API method name.
    source = "\n".join(
        p.read_text() for p in (MANIFEST.parent / "bot").rglob("*.py") if "sandbox" not in p.parts
    )
    families = "chat|conversations|users|views|auth|apps|assistant|reactions|files"
    called = {
        f"{family}.{name.replace('_', '.')}"
        for family, name in re.findall(rf"\.({families})_(\w+)\(", source)
    }
    assert called == set(edge.METHOD_SCOPES)


def test_app_home_and_socket_mode_are_enabled() -> None:
    data = manifest()
    assert data["features"]["app_home"]["home_tab_enabled"] is True
    assert data["settings"]["socket_mode_enabled"] is True
