"""Log in through the login page and open each console."""

from __future__ import annotations

from typing import Any


async def test_agent_console_loads(live_server: Any, new_page: Any) -> None:
    page = await new_page("agent")
    await page.goto(live_server.base_url + "/agent")
    await page.wait_for_selector("body[data-ready='1']")
    assert await page.get_by_role("heading", name="Tổng đài viên").is_visible()
    assert await page.get_by_label("Tên (không cần dấu) hoặc số điện thoại").is_visible()
