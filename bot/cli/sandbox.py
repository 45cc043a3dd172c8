"""`orchestrate-bot sandbox`: both stand-ins on fixed loopback ports until interrupted.

Prints the URLs and the environment a bot needs to run against them, so a developer can
start `orchestrate-bot serve` in another terminal (or drive the servers with curl or the
SDKs) and watch the workspace through the Slack stand-in's control API. With
`--events-url`, `POST /_sandbox/slash` delivers the command to an HTTP-mode bot as a signed
request instead of over Socket Mode. A port that is taken ends the command in one line
(exit 2), as it does `serve`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.sandbox.slack.server import SlackSandbox
from bot.slack.server import wait_for_stop_signal
from bot.startup import listen_refusal

EXIT_OK, EXIT_USAGE = 0, 2


async def serve_sandboxes(
    *, slack_port: int, claude_port: int, time_scale: float, events_url: str | None = None
) -> int:
    """Serve both stand-ins until SIGTERM or SIGINT; the command's exit status."""
    slack = SlackSandbox(events_url=events_url)
    claude = ClaudeSandbox(latency=LatencyModel(time_scale=time_scale))
    try:
        await _listen(slack.start, "--slack-port", slack_port)
        await _listen(claude.start, "--claude-port", claude_port)
        print(banner(slack, claude), flush=True)
        await wait_for_stop_signal()
    except _PortTaken as exc:
        print(f"orchestrate-bot sandbox: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        await claude.stop()
        await slack.stop()
    return EXIT_OK


class _PortTaken(Exception):
    """A port the stand-ins were told to use cannot be listened on."""


async def _listen(start: Callable[..., Awaitable[None]], option: str, port: int) -> None:
    try:
        await start(port=port)
    except OSError as exc:
        refusal = listen_refusal(
            exc, f"{option} {port}", choose=f"choose another port with {option}"
        )
        if refusal is not None:
            raise _PortTaken(refusal) from None
        raise


def banner(slack: SlackSandbox, claude: ClaudeSandbox) -> str:
    if slack.events_url is None:
        mode = [
            "Run the bot against them (in another shell):",
            f"  export SLACK_API_URL={slack.api_url}",
            f"  export SLACK_BOT_TOKEN={slack.bot_token} SLACK_APP_TOKEN={slack.app_token}",
            f"  export ANTHROPIC_BASE_URL={claude.base_url} ANTHROPIC_API_KEY={claude.api_key}",
            "  orchestrate-bot serve",
        ]
    else:
        mode = [
            f"Run the bot in HTTP mode against them (in another shell); /_sandbox/slash posts "
            f"signed commands to {slack.events_url}:",
            f"  export SLACK_API_URL={slack.api_url}",
            f"  export SLACK_BOT_TOKEN={slack.bot_token} "
            f"SLACK_SIGNING_SECRET={slack.signing_secret}",
            f"  export ANTHROPIC_BASE_URL={claude.base_url} ANTHROPIC_API_KEY={claude.api_key}",
            "  orchestrate-bot serve --http --host 127.0.0.1 --port <the port in that URL>",
        ]
    return "\n".join(
        [
            f"Slack stand-in:  {slack.api_url}  (Web API, Socket Mode, response_url)",
            f"Claude stand-in: {claude.base_url}  (POST /v1/messages, /v1/messages/count_tokens)",
            f"Signing secret:  {slack.signing_secret}  (what the Slack stand-in signs with)",
            "",
            *mode,
            "",
            "Then send a command and read the channel (docs/sandbox.md: the control API):",
            f"  curl -s -XPOST {slack.base_url}/_sandbox/slash -H 'content-type: application/json' "
            '-d \'{"text": "Design a REST API for a social network"}\'',
            f"  curl -s {slack.base_url}/_sandbox/transcript/C0GENERAL",
            "Ctrl-C stops both.",
        ]
    )
