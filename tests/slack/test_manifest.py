"""manifest.yml agrees with what the code registers and calls."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.slack import app as edge
from bot.slack.commands import COMMAND

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(data, dict)
    return data


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
