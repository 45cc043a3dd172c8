"""Sign in with Slack over the wire: state, nonce, one-time codes, the cookie's attributes,
and what is shown to whom (the dashboard is for admins)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from aiohttp.test_utils import TestServer

from blocks.format import format_usd
from bot.ledger import BudgetSettings
from bot.services import http_app
from tests.harness import running_stack
from tests.ports import free_port
from tests.web.webstack import client, run_link, sign_in, web_stack


async def test_the_session_cookie_is_signed_httponly_samesite_and_expires(tmp_path: Path) -> None:
    async with web_stack(tmp_path) as stack, client() as session:
        web_url = stack.settings.web_url
        async with session.get(f"{web_url}/login?next=/web", allow_redirects=False) as login:
            assert login.status == 302
            started = login.headers["Set-Cookie"]
            authorize = login.headers["Location"]
        query = parse_qs(urlsplit(authorize).query)
        assert query["state"][0] and query["nonce"][0] and query["scope"] == ["openid profile"]
        assert "HttpOnly" in started and "SameSite=Lax" in started
        async with session.get(authorize) as page:
            form = await page.text()
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
        async with session.post(
            authorize.split("?")[0], data={**fields, "user": "U0BOB"}, allow_redirects=False
        ) as chose:
            callback = chose.headers["Location"]
        async with session.get(callback, allow_redirects=False) as back:
            assert back.status == 302 and back.headers["Location"] == "/web"
            cookie = back.headers.getall("Set-Cookie")
        session_cookie = next(c for c in cookie if c.startswith("orchestrate_session="))
        assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
        assert "Max-Age=43200" in session_cookie
        # The same code a second time: Slack refuses it, and so nobody is signed in by it.
        async with client() as other, other.get(callback) as replay:
            assert replay.status == 400
            assert "Not signed in" in await replay.text()


async def test_a_callback_whose_state_does_not_match_signs_nobody_in(tmp_path: Path) -> None:
    async with web_stack(tmp_path) as stack, client() as session:
        web_url = stack.settings.web_url
        async with session.get(f"{web_url}/login", allow_redirects=False) as login:
            authorize = login.headers["Location"]
        forged = authorize.replace("state=", "state=forged")
        async with session.get(forged) as page:
            form = await page.text()
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
        async with session.post(authorize.split("?")[0], data={**fields, "user": "U0BOB"}) as end:
            assert end.status == 400
            assert "state does not match" in await end.text()
        assert not [c for c in session.cookie_jar if c.key == "orchestrate_session"]


async def test_a_tampered_cookie_is_a_stranger_and_next_never_leaves_the_site(
    tmp_path: Path,
) -> None:
    async with web_stack(tmp_path) as stack:
        await stack.command("Anything")
        await stack.settle()
        link = run_link(stack)
        async with client() as session:
            await sign_in(session, link, "U0BOB")
            signed = next(c.value for c in session.cookie_jar if c.key == "orchestrate_session")
            _, rest = signed.split(".", 1)
            admin = {"u": "U0ADMIN", "t": "T0SANDBOX", "n": "Ada"}
            as_admin = base64.urlsafe_b64encode(json.dumps(admin).encode()).rstrip(b"=").decode()
            for forged in (
                f"{as_admin}.{rest}",
                signed[:-3] + ("aaa" if signed[-3:] != "aaa" else "bbb"),
            ):
                session.cookie_jar.clear()
                session.cookie_jar.update_cookies({"orchestrate_session": forged})
                async with session.get(link, allow_redirects=False) as page:
                    assert page.status == 302 and page.headers["Location"].startswith("/login")
        async with client() as session:
            landed = await sign_in(
                session, f"{stack.settings.web_url}/login?next=//evil.example", "U0BOB"
            )
            assert str(landed.url) == f"{stack.settings.web_url}/web"


async def test_only_admins_see_the_dashboard_and_its_csv(tmp_path: Path) -> None:
    async with web_stack(tmp_path) as stack:
        await stack.command("Budget me")
        await stack.settle()
        admin_url = f"{stack.settings.web_url}/admin"
        async with client() as bob:
            landed = await sign_in(bob, admin_url, "U0BOB")
            assert landed.status == 403
            body = await landed.text()
            assert "Admins only" in body and "$" not in body
            async with bob.get(admin_url + ".csv") as refused:
                assert refused.status == 403
        async with client() as ada:
            landed = await sign_in(ada, admin_url, "U0ADMIN")
            html = await landed.text()
            assert landed.status == 200
            for chart in ("spend", "saving", "runs", "channels", "people", "feedback"):
                assert f'id="chart-{chart}"' in html
            assert html.count("<svg") >= 5 and "<details>" in html
            assert "Budgets and use" in html
            async with ada.get(admin_url + ".csv?days=7") as download:
                assert download.headers["Content-Disposition"].endswith('7d.csv"')
                rows = list(csv.reader(io.StringIO(await download.text())))
        assert rows[0] == ["chart", "label", "series", "value"]
        channels = [r for r in rows if r[0] == "channels"]
        assert channels and channels[0][1] == "C0GENERAL"
        assert any(r[0] == "runs" and r[2] == "Runs" and r[3] == "1" for r in rows)


async def test_http_mode_serves_the_pages_on_its_own_port(tmp_path: Path) -> None:
    port = free_port()
    async with running_stack(tmp_path, mode="http") as base:
        settings = base.settings.__class__(
            **{
                **{f: getattr(base.settings, f) for f in base.settings.__slots__},
                "web_url": f"http://127.0.0.1:{port}",
                "slack_client_id": base.slack.oidc.client_id,
                "slack_client_secret": base.slack.oidc.client_secret,
            }
        )
        base.slack.oidc.redirect_uris.add(f"http://127.0.0.1:{port}/auth/slack")
        async with TestServer(http_app(settings), port=port) as server, client() as session:
            async with session.get(str(server.make_url("/runs/nope"))) as page:
                assert "/openid/connect/authorize" in str(page.url)
            landed = await sign_in(session, str(server.make_url("/runs/nope")), "U0BOB")
            assert landed.status == 404 and "No run to show" in await landed.text()


async def test_without_a_web_address_there_is_no_link_and_no_page(tmp_path: Path) -> None:
    async with running_stack(tmp_path, mode="http") as stack:
        await stack.command("Anything")
        await stack.settle()
        top = stack.slack.messages("C0GENERAL")[-1]
        assert "Open in browser" not in str(top.blocks)
        url = stack.events_url or ""
        async with client() as session, session.get(url.replace("/slack/events", "/runs/x")) as r:
            assert r.status == 404


async def test_the_dashboard_shows_how_much_of_each_budget_is_used(tmp_path: Path) -> None:
    async with web_stack(tmp_path) as stack:
        await stack.command("Budget me")
        await stack.settle()
        ledger = stack.services.ledger
        team = "T0SANDBOX"
        spent = await ledger.budgets.workspace_month_spent(team)
        budgets = BudgetSettings(
            user_daily_usd=Decimal("1"),
            # A channel with a budget and no spend, beside the one that spent.
            channel_monthly_usd=(("C0GENERAL", Decimal("2")), ("C0QUIET", Decimal("3"))),
        )
        await ledger.governance.save(team, budgets, changed_by="U0ADMIN", defaults=BudgetSettings())
        async with client() as ada:
            landed = await sign_in(ada, f"{stack.settings.web_url}/admin", "U0ADMIN")
            html = await landed.text()
    used = format_usd(spent)
    assert spent > 0
    assert f"Person U0ALICE, today: {used} of $1.0000" in html
    assert f"Channel C0GENERAL, this month: {used} of $2.0000" in html
    assert "Channel C0QUIET, this month: $0.0000 of $3.0000 (0% used)" in html
