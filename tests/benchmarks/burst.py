"""What the live-run benchmarks share: a burst of commands from many channels at once, run
to its end, and the most calls that fell in any one rate-limit window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from tests.harness import Stack


def add_channels(stack: Stack, count: int, *, prefix: str) -> list[str]:
    """`count` new channels with the asker and the bot as members; their ids."""
    members = {"U0ALICE", stack.slack.workspace.bot_user_id}
    ids = [f"{prefix}{i:03d}" for i in range(count)]
    for channel_id in ids:
        stack.slack.workspace.add_channel(channel_id, channel_id.lower(), members=members)
    return ids


async def run_burst(stack: Stack, question: str, channels: list[str], *, timeout_s: float) -> float:
    """One command from each channel at once, every run to its end; seconds it all took."""
    started = time.monotonic()
    await asyncio.gather(*(stack.command(question, channel_id=c) for c in channels))
    async with asyncio.timeout(timeout_s):
        while stack.services.runs.admitted < len(channels):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await stack.services.runs.wait_idle()
    return time.monotonic() - started


def most_in_any_window(stamps: Iterable[float], window_s: float = 60.0) -> int:
    """The most of `stamps` (seconds) that fall in any `window_s` starting at one of them."""
    times = sorted(stamps)
    return max((sum(1 for t in times if s <= t < s + window_s) for s in times), default=0)
