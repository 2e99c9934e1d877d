"""Shared browser-test harness: the real app on a free 127.0.0.1 port and headless Debian Chromium
driven by Playwright (async API, in the test's own event loop, so the server and the browser share it).

Registered for every test by `pytest_plugins = ["tests.browser"]` in tests/conftest.py.

Fixtures
- `live_server` -> LiveServer: create_app on a migrated SQLite file (a copy of a per-session template that
  already holds the staff users), served by web.AppRunner/TCPSite.
    .base_url            "http://127.0.0.1:<port>"
    .app                 the aiohttp Application (app[DB_KEY], app[BUS_KEY] ... for direct checks)
    .ids / .tokens       users of every role (tests.conftest.STAFF: admin, supervisor, agent, agent2,
                         reception, doctor) -> user id / bearer token; password `.password`
    .headers(who)        bearer headers for that user
    .display_token       a read-only display token (all rooms and services)
    .services / .rooms   when the queue room is installed: demo-like services by prefix ("A", "B", "C")
                         and rooms by "kind:number" ("consult:1" ...) -> id, created through the queue API
    await .api(method, path, who="admin", json=None, expect=None) -> JSON body (asserts the status)
    .url(path, **query)  absolute URL
  Change the settings per module by overriding the fixture `live_settings` (a dict of sections, merged
  over the defaults by tests.conftest.make_settings), e.g.
      @pytest.fixture
      def live_settings() -> dict: return {"display": {"name_mask": "initials"}}
- `browser` -> playwright Browser (chromium from /usr/bin/chromium, CHROMIUM_ARGS; autoplay allowed).
- `page` -> a Page in a fresh context (not logged in). On failure a screenshot goes to test-results/.
- `new_page` -> `page = await new_page("doctor")`: more pages, each in its own fresh context, logged in
  through the login page when a user is given (also screenshotted on failure).
- `login(page, base_url, who, next_path="/")`: log a page in through the real login form.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.db import Database
from clinicall.keys import DB_KEY
from clinicall.settings import Settings
from tests.conftest import PASSWORD, STAFF
from tests.servers import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
# Every wait in a page is for a state; this only bounds a hang. A machine loaded by other suites can take
# minutes for what takes a second here quietly (a test asserts behaviour, never speed).
PAGE_TIMEOUT_MS = 120_000
LOGIN_TIMEOUT_MS = PAGE_TIMEOUT_MS
RESULTS_DIR = Path(__file__).resolve().parent.parent / "test-results"

DEMO_SERVICES = [
    {"prefix": "A", "names": {"vi": "Khám tổng quát", "en": "General check-up", "zh": "普通门诊"}},
    {"prefix": "B", "names": {"vi": "Xét nghiệm", "en": "Laboratory tests", "zh": "化验"}},
    {"prefix": "C", "names": {"vi": "Khám nhi", "en": "Paediatrics", "zh": "儿科"}},
]
DEMO_ROOMS = [("consult", 1, ["A"]), ("consult", 2, ["A", "C"]), ("consult", 3, ["C"]), ("lab", 1, ["B"])]


@dataclass
class LiveServer:
    base_url: str
    app: web.Application
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    password: str = PASSWORD
    display_token: str = ""
    services: dict[str, int] = field(default_factory=dict)
    rooms: dict[str, int] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def url(self, path: str, **query: Any) -> str:
        from urllib.parse import urlencode

        return self.base_url + path + (f"?{urlencode(query)}" if query else "")

    async def api(self, method: str, path: str, who: str | None = "admin", json: Any = None,
                  expect: int | None = None) -> Any:
        headers = self.headers(who) if who else {}
        async with aiohttp.ClientSession() as http, http.request(method, self.base_url + path, json=json,
                                                                 headers=headers) as resp:
            body = await resp.json(content_type=None)
            if expect is not None:
                assert resp.status == expect, (method, path, resp.status, body)
            elif resp.status >= 400:
                raise AssertionError(f"{method} {path} -> {resp.status}: {body}")
            return body


def has_route(app: web.Application, method: str, path: str) -> bool:
    return any(r.method == method and r.resource is not None and r.resource.canonical == path for r in app.router.routes())


async def seed_clinic(server: LiveServer) -> None:
    """Demo-like services and rooms, through the queue room's own API (as an admin would)."""
    for service in DEMO_SERVICES:
        body = await server.api("POST", "/api/services", json=service)
        server.services[service["prefix"]] = (body.get("service") or body)["id"]
    for kind, number, prefixes in DEMO_ROOMS:
        body = await server.api("POST", "/api/rooms", json={
            "kind": kind, "number": number, "service_ids": [server.services[p] for p in prefixes]})
        server.rooms[f"{kind}:{number}"] = (body.get("room") or body)["id"]


@pytest.fixture(scope="session")
def staffed_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """The migrated SQLite template plus the staff users, made once per session (password hashing is slow)."""
    path = tmp_path_factory.mktemp("sqlite-staffed") / "staffed.db"
    shutil.copyfile(sqlite_template, path)
    ids: dict[str, int] = {}

    async def build() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        for name, (roles, ext) in STAFF.items():
            ids[name] = (await auth_service.create_user(db, name, PASSWORD, roles, name.title(), ext)).id
        await db.dispose()

    asyncio.run(build())
    return path, ids


@pytest.fixture
def live_settings() -> dict[str, Any]:
    """Settings sections for the live server; override in a test module to change them."""
    return {}


@pytest.fixture
async def live_server(staffed_template: tuple[Path, dict[str, int]], tmp_path: Path,
                      make_settings: Callable[..., Settings], live_settings: dict[str, Any]) -> AsyncIterator[LiveServer]:
    template, ids = staffed_template
    database = tmp_path / "live.db"
    shutil.copyfile(template, database)
    port = free_port()
    overrides: dict[str, Any] = {"http": {"host": "127.0.0.1", "port": port, "cookie_secure": False}}
    for section, values in live_settings.items():
        overrides[section] = {**overrides.get(section, {}), **values} if isinstance(values, dict) else values
    app = create_app(make_settings(f"sqlite+aiosqlite:///{database}", **overrides))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server = LiveServer(base_url=f"http://127.0.0.1:{port}", app=app)
    try:
        db = app[DB_KEY]
        for name, user_id in ids.items():
            server.ids[name] = user_id
            server.tokens[name] = await auth_service.create_api_token(db, user_id, "tests")
        _, server.display_token = await auth_service.create_display_token(db, "waiting room TV")
        if has_route(app, "POST", "/api/services") and has_route(app, "POST", "/api/rooms"):
            await seed_clinic(server)
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        await chromium.close()


async def login(page: Any, base_url: str, who: str, next_path: str = "/") -> None:
    await page.goto(f"{base_url}/login?next={next_path}")
    await page.locator("input[name=username]").fill(who)
    await page.locator("input[name=password]").fill(PASSWORD)
    # password hashing is deliberately slow, and slower still on a busy machine: allow it time
    await page.locator("form button[type=submit]").click(timeout=LOGIN_TIMEOUT_MS)
    await page.wait_for_url(f"{base_url}{next_path}", timeout=LOGIN_TIMEOUT_MS)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


def _failed(request: pytest.FixtureRequest) -> bool:
    return request.node.stash.get(_FAILED, False)


async def _screenshot(request: pytest.FixtureRequest, pages: list[Any]) -> None:
    if not _failed(request):
        return
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
    for index, page in enumerate(pages):
        try:
            await page.screenshot(path=str(RESULTS_DIR / f"{stem}-{index}.png"), full_page=True)
        except Exception:  # a closed page cannot be photographed; the failure itself is what matters
            pass


@pytest.fixture
async def new_page(browser: Any, live_server: LiveServer,
                   request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    contexts: list[Any] = []
    pages: list[Any] = []

    async def make(who: str | None = None, lang: str = "vi") -> Any:
        context = await browser.new_context(locale="vi-VN" if lang == "vi" else "en-GB")
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        pages.append(page)
        if who:
            await login(page, live_server.base_url, who)
        return page

    yield make
    await _screenshot(request, pages)
    for context in contexts:
        await context.close()


@pytest.fixture
async def page(new_page: Callable[..., Awaitable[Any]]) -> Any:
    return await new_page()
