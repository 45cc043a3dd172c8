"""Health that means something: `/readyz` (and `/healthz`) turn 503 when the Socket Mode
connection or the database goes away and back to 200 when it returns; `/livez` stays 200
throughout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.harness import running_stack
from tests.ledger.throwaway_pg import throwaway_postgres
from tests.ports import free_port


async def status(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with session.get(url) as response:
        return response.status, await response.json()


async def until(session: aiohttp.ClientSession, url: str, wanted: int) -> dict[str, object]:
    async with asyncio.timeout(60):
        while True:
            got, body = await status(session, url)
            if got == wanted:
                return body
            await asyncio.sleep(0.1)


async def test_losing_the_socket_mode_connection_shows_in_healthz_until_it_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    async with (
        running_stack(tmp_path, metrics_port=port) as stack,
        aiohttp.ClientSession() as session,
    ):
        base = f"http://127.0.0.1:{port}"
        assert (await status(session, f"{base}/healthz"))[0] == 200
        # Slack drops the connection and refuses the first reconnection attempt.
        stack.slack.fail_next("apps.connections.open", error="internal_error", status=500)
        await stack.slack.socket.close()
        down = await until(session, f"{base}/readyz", 503)
        assert "Socket Mode connection is down" in str(down["slack"])
        assert (await status(session, f"{base}/livez"))[0] == 200
        back = await until(session, f"{base}/healthz", 200)
        assert back["ok"] is True


async def test_losing_the_database_shows_in_healthz_until_it_is_back(tmp_path: Path) -> None:
    port = free_port()
    async with (
        throwaway_postgres() as pg,
        running_stack(tmp_path, metrics_port=port, database_url=pg.url) as stack,
        aiohttp.ClientSession() as session,
    ):
        assert stack.settings.database_url == pg.url
        base = f"http://127.0.0.1:{port}"
        assert (await status(session, f"{base}/healthz"))[0] == 200
        await pg.stop()
        down = await until(session, f"{base}/healthz", 503)
        assert "did not answer" in str(down["database"])
        assert (await status(session, f"{base}/readyz"))[0] == 503
        assert (await status(session, f"{base}/livez"))[0] == 200
        await pg.start()
        back = await until(session, f"{base}/readyz", 200)
        assert back["ok"] is True
        assert (await status(session, f"{base}/healthz"))[0] == 200
