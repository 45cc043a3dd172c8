"""`orchestrate-bot sandbox`: both stand-ins on fixed loopback ports until interrupted.

Prints the URLs and the environment a bot needs to run against them, so a developer can
start `orchestrate-bot serve` in another terminal (or drive the servers with curl or the
SDKs) and watch the workspace through the Slack stand-in's control API.
"""

from __future__ import annotations

from bot.sandbox.claude.server import ClaudeSandbox, LatencyModel
from bot.sandbox.slack.server import SlackSandbox
from bot.slack.server import wait_for_stop_signal


async def serve_sandboxes(*, slack_port: int, claude_port: int, time_scale: float) -> None:
    slack = SlackSandbox()
    claude = ClaudeSandbox(latency=LatencyModel(time_scale=time_scale))
    await slack.start(port=slack_port)
    try:
        await claude.start(port=claude_port)
        try:
            print(banner(slack, claude), flush=True)
            await wait_for_stop_signal()
        finally:
            await claude.stop()
    finally:
        await slack.stop()


def banner(slack: SlackSandbox, claude: ClaudeSandbox) -> str:
    return "\n".join(
        [
            f"Slack stand-in:  {slack.api_url}  (Web API, Socket Mode, response_url)",
            f"Claude stand-in: {claude.base_url}  (POST /v1/messages, /v1/messages/count_tokens)",
            "",
            "Run the bot against them (in another shell):",
            f"  export SLACK_API_URL={slack.api_url}",
            f"  export SLACK_BOT_TOKEN={slack.bot_token} SLACK_APP_TOKEN={slack.app_token}",
            f"  export ANTHROPIC_BASE_URL={claude.base_url} ANTHROPIC_API_KEY={claude.api_key}",
            "  orchestrate-bot serve",
            "",
            "Then send a command and read the channel:",
            f"  curl -s -XPOST {slack.base_url}/_sandbox/slash -H 'content-type: application/json' "
            '-d \'{"text": "Design a REST API for a social network"}\'',
            f"  curl -s {slack.base_url}/_sandbox/transcript/C0GENERAL",
            "Ctrl-C stops both.",
        ]
    )
