"""The app as installed from `manifest.yml`: what the Slack sandbox grants and delivers.

A workspace that installed orchestrate grants the bot token exactly the bot scopes the
manifest declares, so the sandbox reads them from the same file a person pastes into
api.slack.com: a call that needs a scope the manifest lacks answers `missing_scope` in tests
as it would in production. The manifest also decides how slash-command text arrives
(`should_escape`) and whether the App Home Messages tab exists (`messages_tab_enabled`).

The file a person pastes into api.slack.com is `manifest.yml` at the root of the source tree;
the sandbox reads the package's own copy (`bot/sandbox/slack/manifest.yml`, package data), so
an installed wheel run from any directory grants the same scopes as a checkout. A test holds
the copy byte for byte to the top-level file (tests/test_packaging.py). A missing or
malformed manifest is an error naming the file, never a silent default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MANIFEST_PATH = Path(__file__).parent / "manifest.yml"


@dataclass(frozen=True, slots=True)
class AppManifest:
    """The parts of the manifest the sandbox enforces."""

    bot_scopes: frozenset[str]
    commands: dict[str, bool]
    """Slash command → its `should_escape` flag."""
    bot_events: frozenset[str]
    messages_tab_enabled: bool
    messages_tab_read_only: bool
    interactivity: bool = False
    """Whether Slack sends interaction payloads (buttons, modal submissions) at all."""


def load_manifest(path: Path = MANIFEST_PATH) -> AppManifest:
    """Read `path`; raises FileNotFoundError or ValueError naming the file and the field."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the Slack sandbox grants the scopes manifest.yml declares "
            "(reinstall the package, or pass scopes= to SlackSandbox)"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return AppManifest(
        bot_scopes=frozenset(_strings(data, path, "oauth_config", "scopes", "bot")),
        commands={
            str(c["command"]): bool(c.get("should_escape", False))
            for c in _list(data, path, "features", "slash_commands")
        },
        bot_events=frozenset(_strings(data, path, "settings", "event_subscriptions", "bot_events")),
        messages_tab_enabled=bool(_get(data, "features", "app_home", "messages_tab_enabled")),
        messages_tab_read_only=bool(
            _get(data, "features", "app_home", "messages_tab_read_only_enabled")
        ),
        interactivity=bool(_get(data, "settings", "interactivity", "is_enabled")),
    )


def _get(data: dict[str, Any], *keys: str) -> Any:
    node: Any = data
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _list(data: dict[str, Any], path: Path, *keys: str) -> list[Any]:
    value = _get(data, *keys)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{path}: {'.'.join(keys)} must be a list")
    return value


def _strings(data: dict[str, Any], path: Path, *keys: str) -> list[str]:
    values = _list(data, path, *keys)
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"{path}: {'.'.join(keys)} must be a list of strings")
    return values
