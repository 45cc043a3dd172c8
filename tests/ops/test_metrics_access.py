"""Who can read `/metrics`: Socket Mode's `METRICS_PORT` listens on loopback unless
`METRICS_HOST` says otherwise, and with `METRICS_TOKEN` set `/metrics` answers only a
request carrying it as a bearer token, in both modes; the health routes stay open to probes.
"""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from tests.harness import Mode, Stack, running_stack
from tests.ports import free_port

TOKEN = "metrics-token-for-the-scraper-0123456789"


def outward_address() -> str:
    """This machine's address on its network (not loopback), or skip."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # no packet is sent: only a route is chosen
        except OSError:
            pytest.skip("no network interface besides loopback")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("no network interface besides loopback")
    return address


async def get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=headers) as response,
    ):
        return response.status


async def reachable(host: str, port: int) -> bool:
    try:
        await get(f"http://{host}:{port}/livez")
    except aiohttp.ClientConnectionError:
        return False
    return True


async def test_the_metrics_port_listens_on_loopback_by_default(tmp_path: Path) -> None:
    outward, port = outward_address(), free_port()
    async with running_stack(tmp_path, metrics_port=port):
        assert await get(f"http://127.0.0.1:{port}/metrics") == 200
        assert not await reachable(outward, port)


async def test_metrics_host_opens_the_metrics_port_to_the_network(tmp_path: Path) -> None:
    outward, port = outward_address(), free_port()
    async with running_stack(tmp_path, metrics_port=port, metrics_host="0.0.0.0"):
        assert await reachable(outward, port)


def metrics_base(stack: Stack, port: int) -> str:
    if stack.events_url is not None:
        return stack.events_url.removesuffix("/slack/events")
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_with_a_token_metrics_answer_only_its_bearer(tmp_path: Path, mode: Mode) -> None:
    port = free_port()
    async with running_stack(tmp_path, mode=mode, metrics_port=port, metrics_token=TOKEN) as stack:
        base = metrics_base(stack, port)
        statuses = [
            await get(f"{base}/metrics"),
            await get(f"{base}/metrics", "not-the-token"),
            await get(f"{base}/metrics", TOKEN[:-1]),
            await get(f"{base}/metrics", TOKEN),
            await get(f"{base}/livez"),
            await get(f"{base}/readyz"),
        ]
    assert statuses == [401, 401, 401, 200, 200, 200]
