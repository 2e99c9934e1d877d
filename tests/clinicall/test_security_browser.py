"""In a real browser (Chromium): the login form cannot be turned into an open redirect, and the API
reference page renders the description from the project's own files."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import PASSWORD


async def test_login_form_stays_on_site_in_a_browser(live_server: Any, page: Any) -> None:
    base = live_server.base_url
    await page.goto(f"{base}/login?next={quote(chr(47) + chr(9) + '/evil.example/', safe='')}")
    await page.locator("input[name=username]").fill("agent")
    await page.locator("input[name=password]").fill(PASSWORD)
    await page.locator("button[type=submit]").click()
    await page.wait_for_url(f"{base}/")
    assert page.url.startswith(base)


async def test_api_reference_page(live_server: Any, page: Any) -> None:
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(live_server.base_url) else None)
    await page.goto(f"{live_server.base_url}/api/docs")
    await page.locator("details.op").first.wait_for()
    assert await page.locator("details.op").count() > 80
    await page.locator("#filter").fill("/api/arrivals")
    assert await page.locator("details.op").count() == 1
    await page.locator("details.op summary").click()
    assert "reception" in await page.locator("details.op").inner_text()
    assert external == []
