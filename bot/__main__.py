"""The `orchestrate-bot` command: serve (Socket Mode or HTTP), demo, sandbox, costs.

Each sub-command reads `Settings` once, and a configuration problem ends the command with
a message on stderr naming the variable, and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bot import logs
from bot.settings import Settings, SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrate-bot",
        description="Opus plans, Haiku illustrates in parallel, Sonnet reviews — in Slack.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the bot (Socket Mode unless --http)")
    serve.add_argument("--http", action="store_true", help="serve Slack's HTTP events API")
    serve.add_argument("--port", type=int, default=3000, help="HTTP port (default 3000)")
    serve.add_argument("--host", default="0.0.0.0", help="HTTP bind address")
    demo = commands.add_parser("demo", help="run the whole flow offline, on the sandboxes")
    demo.add_argument("question", help="what to ask, as you would after /orchestrate")
    demo.add_argument(
        "--live",
        action="store_true",
        help="use the real Anthropic API (needs ANTHROPIC_API_KEY); Slack stays local",
    )
    demo.add_argument(
        "--time-scale",
        type=float,
        default=0.25,
        help="sandbox model latency multiplier (1.0 = realistic; default 0.25)",
    )
    sandbox = commands.add_parser("sandbox", help="run the Slack and Claude stand-ins")
    sandbox.add_argument("--slack-port", type=int, default=8765)
    sandbox.add_argument("--claude-port", type=int, default=8766)
    sandbox.add_argument("--time-scale", type=float, default=1.0)
    costs = commands.add_parser("costs", help="spending summary, or a CSV of calls")
    costs.add_argument(
        "--since",
        "--period",
        dest="since",
        default="month",
        help="today, week (last 7 days), month (this month to date), last-month, Nd (e.g. 7d), "
        "an ISO date, or a range 2026-11-01..2026-11-15 (default month)",
    )
    costs.add_argument("--csv", action="store_true", help="write every call as CSV")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        logs.install_on_root()  # no question, response_url or token reaches a log
        return asyncio.run(_dispatch(args, settings))
    except SettingsError as exc:
        print(f"orchestrate-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        from bot.services import serve

        await serve(settings, http=args.http, port=args.port, host=args.host)
        return 0
    if args.command == "demo":
        from bot.cli.demo import run_demo

        return await run_demo(
            args.question, settings=settings, live=args.live, time_scale=args.time_scale
        )
    if args.command == "sandbox":
        from bot.cli.sandbox import serve_sandboxes

        await serve_sandboxes(
            slack_port=args.slack_port, claude_port=args.claude_port, time_scale=args.time_scale
        )
        return 0
    from bot.cli.costs import costs_command

    return await costs_command(settings, since=args.since, csv=args.csv, out=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
