"""The `orchestrate-bot` command: serve (Socket Mode or HTTP), demo, sandbox, costs.

Each sub-command reads `Settings` once, and a configuration problem ends the command with
a message on stderr naming the variable, and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot import logs
from bot.settings import Settings, SettingsError


def _port(raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise argparse.ArgumentTypeError(f"must be a TCP port number from 1 to 65535, got {raw!r}")
    return int(raw)


def _positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {raw!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrate-bot",
        description="Opus plans, Haiku illustrates in parallel, Sonnet reviews — in Slack.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the bot (Socket Mode unless --http)")
    serve.add_argument("--http", action="store_true", help="serve Slack's HTTP events API")
    serve.add_argument("--port", type=_port, default=3000, help="HTTP port (default 3000)")
    serve.add_argument(
        "--host", default="0.0.0.0", help="bind address for HTTP mode and METRICS_PORT"
    )
    demo = commands.add_parser("demo", help="run the whole flow offline, on the sandboxes")
    demo.add_argument("question", help="what to ask, as you would after /orchestrate")
    demo.add_argument(
        "--live",
        action="store_true",
        help="use the real Anthropic API (needs ANTHROPIC_API_KEY); Slack stays local",
    )
    demo.add_argument(
        "--time-scale",
        type=_positive,
        default=0.25,
        help="sandbox model latency multiplier (1.0 = realistic; default 0.25)",
    )
    sandbox = commands.add_parser("sandbox", help="run the Slack and Claude stand-ins")
    sandbox.add_argument("--slack-port", type=_port, default=8765)
    sandbox.add_argument("--claude-port", type=_port, default=8766)
    sandbox.add_argument("--time-scale", type=_positive, default=1.0)
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
        logs.configure(settings, default_level="INFO" if args.command == "serve" else "WARNING")
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
