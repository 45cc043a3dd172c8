"""The `orchestrate-bot` command: serve (Socket Mode or HTTP), demo, sandbox, costs, eval.

Each sub-command reads `Settings` once, and a configuration problem ends the command with
a message on stderr naming the variable, and exit status 2. Output that goes to a reader who
has left (`costs --csv | head -1`) ends the command quietly, as `head` and `cat` do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from importlib import metadata

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


# SIGPIPE's conventional exit status (128 + 13): what `cat` reports when its reader leaves.
EXIT_BROKEN_PIPE = 141
HTTP_PORT = 3000


def _count(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 100, got {raw!r}")
    return int(raw)


def _version() -> str:
    try:
        return metadata.version("orchestrate")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrate-bot",
        description="Opus plans, Haiku illustrates in parallel, Sonnet reviews — in Slack.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the bot (Socket Mode unless --http)")
    serve.add_argument("--http", action="store_true", help="serve Slack's HTTP events API")
    serve.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"HTTP mode's port for /slack/events, /metrics and the health routes (default "
        f"{HTTP_PORT}); only with --http: Socket Mode serves them on METRICS_PORT",
    )
    serve.add_argument(
        "--host",
        default=None,
        help="address to listen on: HTTP mode's port (default 0.0.0.0, every interface), or "
        "Socket Mode's METRICS_PORT (default METRICS_HOST, 127.0.0.1: this machine only)",
    )
    demo = commands.add_parser("demo", help="run the whole flow offline, on the sandboxes")
    demo.add_argument(
        "question",
        nargs="+",
        help="what to ask, as you would after /orchestrate (quotes optional: the words are "
        "joined with spaces)",
    )
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
    demo.add_argument(
        "--web-port",
        type=_port,
        default=None,
        help="serve the run's web page on http://127.0.0.1:PORT, print its link and keep "
        "serving after the run until Ctrl-C (sign in as a seeded person)",
    )
    sandbox = commands.add_parser(
        "sandbox",
        help="run the Slack and Claude stand-ins",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sandbox.add_argument(
        "--slack-port", type=_port, default=8765, help="the Slack stand-in's port (on 127.0.0.1)"
    )
    sandbox.add_argument(
        "--claude-port", type=_port, default=8766, help="the Claude stand-in's port (on 127.0.0.1)"
    )
    sandbox.add_argument(
        "--time-scale",
        type=_positive,
        default=1.0,
        help="model latency multiplier (1.0 = realistic, 0.1 = ten times faster)",
    )
    sandbox.add_argument(
        "--events-url",
        default=None,
        help="an HTTP-mode bot's /slack/events URL: /_sandbox/slash then posts a signed "
        "request there instead of sending it over Socket Mode (default: Socket Mode)",
    )
    evaluate = commands.add_parser(
        "eval", help="orchestrate against an all-Opus answer, judged pairwise, with a report"
    )
    evaluate.add_argument(
        "questions",
        help="'starter' (the shipped 20), or a file: one question per line, or a JSON/YAML list",
    )
    evaluate.add_argument(
        "--live", action="store_true", help="use the real Anthropic API (needs ANTHROPIC_API_KEY)"
    )
    evaluate.add_argument(
        "--repeat", type=_count, default=1, help="ask each question N times (default 1)"
    )
    evaluate.add_argument("--judge", help="the judge model (default: STRATEGY_MODEL)")
    evaluate.add_argument(
        "--out", default="eval-report", help="report and resume directory (default eval-report)"
    )
    evaluate.add_argument(
        "--yes", action="store_true", help="accept a --live run's cost estimate without asking"
    )
    evaluate.add_argument(
        "--time-scale",
        type=_positive,
        default=0.05,
        help="stand-in model latency multiplier, offline (1.0 = realistic; default 0.05)",
    )
    costs = commands.add_parser("costs", help="spending summary, or a CSV of calls")
    periods = (
        "today, week (last 7 days), month (this month to date), last-month, Nd (e.g. 7d), "
        "an ISO date, or a range 2026-11-01..2026-11-15 (a range still under way counts to "
        "now)"
    )
    costs.add_argument("period", nargs="?", default=None, help=f"the same as --since: {periods}")
    costs.add_argument(
        "--since",
        "--period",
        dest="since",
        default=None,
        help=f"{periods} (default month)",
    )
    costs.add_argument("--csv", action="store_true", help="write every call as CSV")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (refusal := _refusal(args)) is not None:
        print(f"orchestrate-bot {args.command}: {refusal}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        logs.configure(settings, default_level="INFO" if args.command == "serve" else "WARNING")
        if args.command == "serve":
            logs.hold_start_up_lines()  # so a refusal at start reads as its one line
        code = asyncio.run(_dispatch(args, settings))
        sys.stdout.flush()  # here, so a reader that has left is met inside the try
        return code
    except SettingsError as exc:
        logs.drop_start_up_lines()
        print(f"orchestrate-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_left()
    finally:
        logs.start_up_done()  # whatever ended the command, what was held back is written


def _refusal(args: argparse.Namespace) -> str | None:
    """Options that parse but do not go together, in one line."""
    if args.command == "serve" and args.port is not None and not args.http:
        return (
            "--port is HTTP mode's port and needs --http; in Socket Mode set METRICS_PORT "
            "to serve /metrics and the health routes"
        )
    given = (args.period, args.since) if args.command == "costs" else (None, None)
    if None not in given and given[0] != given[1]:
        return f"give the period once: {args.period!r} or --since {args.since!r}"
    return None


def _reader_left() -> int:
    """stdout's reader has gone: exit quietly. Python would otherwise complain while
    flushing stdout at exit, so it is pointed at /dev/null first (as the Python docs'
    note on SIGPIPE advises)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        from bot.services import serve

        await serve(settings, http=args.http, port=args.port or HTTP_PORT, host=args.host)
        return 0
    if args.command == "demo":
        from bot.cli.demo import run_demo

        return await run_demo(
            " ".join(args.question),
            settings=settings,
            live=args.live,
            time_scale=args.time_scale,
            web_port=args.web_port,
        )
    if args.command == "sandbox":
        from bot.cli.sandbox import serve_sandboxes

        return await serve_sandboxes(
            slack_port=args.slack_port,
            claude_port=args.claude_port,
            time_scale=args.time_scale,
            events_url=args.events_url,
        )
    if args.command == "eval":
        from pathlib import Path

        from bot.cli.eval import EvalOptions, eval_command

        options = EvalOptions(
            questions=args.questions,
            live=args.live,
            repeat=args.repeat,
            judge=args.judge,
            out=Path(args.out),
            yes=args.yes,
            time_scale=args.time_scale,
        )
        return await eval_command(settings, options)
    from bot.cli.costs import costs_command

    since = args.period or args.since or "month"
    return await costs_command(settings, since=since, csv=args.csv, out=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
