"""Admin console in Chromium: users and roles, display tokens (TV URL shown once), statistics charts,
and the accessibility check on each section."""

from __future__ import annotations

from typing import Any

from tests.consoles.a11y import audit


async def open_admin(page: Any, base_url: str, section: str) -> None:
    await page.goto(f"{base_url}/admin/{section}")
    await page.wait_for_selector("body[data-ready='1']")


async def test_admin_users_tokens_and_charts(live_server: Any, new_page: Any) -> None:
    page = await new_page("admin")
    base = live_server.base_url
    await open_admin(page, base, "users")
    assert await page.get_by_role("link", name="Người dùng và vai trò").get_attribute("aria-current") == "page"
    form = page.locator("form.panel")
    await form.get_by_label("Tên đăng nhập").fill("agent7")
    await form.get_by_label("Tên hiển thị").fill("Đỗ Thị Mai")
    await form.get_by_label("Mật khẩu (ít nhất 10 ký tự)").fill("mai-password-123")
    await form.get_by_label("Số máy lẻ").fill("1007")
    await form.get_by_role("button", name="Thêm").click()
    await page.get_by_role("cell", name="Đỗ Thị Mai", exact=True).wait_for()
    users = await live_server.api("GET", "/api/users")
    made = next(u for u in users["users"] if u["username"] == "agent7")
    assert made["roles"] == ["agent"] and made["extension"] == "1007"
    assert await audit(page) == []

    # A bad password gets the API's sentence, shown next to the form.
    await form.get_by_label("Tên đăng nhập").fill("agent8")
    await form.get_by_label("Mật khẩu (ít nhất 10 ký tự)").fill("short")
    await form.get_by_role("button", name="Thêm").click()
    assert "10" in await form.get_by_role("alert").inner_text()

    await open_admin(page, base, "display-tokens")
    form = page.locator("form.panel")
    await form.get_by_label("Tên").fill("TV sảnh chờ")
    await form.get_by_role("button", name="Thêm").click()
    link = page.locator("#tv-url a")
    await link.wait_for()
    tv_url = await link.inner_text()
    assert tv_url.startswith(base + "/tv?token=")
    await page.get_by_role("cell", name="TV sảnh chờ", exact=True).wait_for()
    await page.reload()
    await page.wait_for_selector("body[data-ready='1']")
    assert await page.locator("#tv-url").count() == 0  # shown once only
    assert await audit(page) == []

    await open_admin(page, base, "stats")
    await page.wait_for_selector("svg[role=img]")
    titles = await page.eval_on_selector_all("svg[role=img] > title", "els => els.map(e => e.textContent)")
    assert "Cuộc gọi theo tổng đài viên và ngày" in titles
    assert "Tỉ lệ nghe máy theo tổng đài viên" in titles
    assert any(t.startswith("Đặt lịch → đến khám") for t in titles)
    assert await page.locator("details table caption").count() >= len(titles)
    assert await audit(page) == []
