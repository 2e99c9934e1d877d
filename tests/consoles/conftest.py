"""Consoles' browser tests: the real app served on a free port (SQLite, demo PBX, FastAGI on a free
port) and headless Debian Chromium driven by Playwright, all in the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import DB_KEY
from clinicall.settings import Settings
from tests.conftest import PASSWORD, STAFF
from tests.servers import free_port

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@dataclass
class Server:
    base_url: str
    app: web.Application
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    password: str = PASSWORD

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def api(self, method: str, path: str, who: str = "admin", json: Any = None, expect: int | None = None) -> Any:
        async with aiohttp.ClientSession() as http, http.request(
                method, self.base_url + path, json=json, headers=self.headers(who)) as resp:
            body = await resp.json(content_type=None)
            if expect is not None:
                assert resp.status == expect, (resp.status, body)
            elif resp.status >= 400:
                raise AssertionError(f"{method} {path} -> {resp.status}: {body}")
            return body


@pytest.fixture
async def live_server(sqlite_url: str, make_settings: Callable[..., Settings]) -> AsyncIterator[Server]:
    port = free_port()
    settings = make_settings(
        sqlite_url,
        http={"host": "127.0.0.1", "port": port, "cookie_secure": False},
        telephony={"demo_pbx": True, "agi_enabled": True, "agi_port": free_port(), "ami_port": free_port()},
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server = Server(base_url=f"http://127.0.0.1:{port}", app=app)
    db = app[DB_KEY]
    for name, (roles, ext) in STAFF.items():
        user = await auth_service.create_user(db, name, PASSWORD, roles, name.title(), ext)
        server.ids[name] = user.id
        server.tokens[name] = await auth_service.create_api_token(db, user.id, "tests")
    yield server
    await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield chromium
        await chromium.close()


@pytest.fixture
async def new_page(browser: Any, live_server: Server) -> AsyncIterator[Callable[..., Any]]:
    """`page = await new_page("agent")`: a fresh browser context logged in as that user."""
    contexts = []

    async def make(who: str | None = None, lang: str = "vi") -> Any:
        context = await browser.new_context(locale="vi-VN" if lang == "vi" else "en-GB")
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(10000)
        if who:
            await login(page, live_server.base_url, who)
        return page

    yield make
    for context in contexts:
        await context.close()


async def login(page: Any, base_url: str, who: str, next_path: str = "/") -> None:
    await page.goto(f"{base_url}/login?next={next_path}")
    await page.get_by_label("Tên đăng nhập").fill(who)
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url(f"{base_url}{next_path}")
