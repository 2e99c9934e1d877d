"""Admin console in Chromium: users and roles, display tokens (TV URL shown once), statistics charts,
and the accessibility check on each section."""

from __future__ import annotations

from typing import Any

from tests.consoles.a11y import audit, tab_walk


async def open_admin(page: Any, base_url: str, section: str) -> None:
    await page.goto(f"{base_url}/admin/{section}")
    await page.wait_for_selector("body[data-ready='1']")


async def test_admin_console(live_server: Any, new_page: Any) -> None:
    """Users, display tokens and charts; then services, rooms, templates, statuses and the audit trail."""
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
    walked = await tab_walk(page, 40)
    assert len(set(walked)) >= 10, walked

    # A bad password gets the API's sentence, shown next to the form.
    await form.get_by_label("Tên đăng nhập").fill("agent8")
    await form.get_by_label("Mật khẩu (ít nhất 10 ký tự)").fill("short")
    await form.get_by_role("button", name="Thêm").click()
    assert await form.get_by_role("alert").inner_text() == "Mật khẩu phải có ít nhất 10 ký tự."
    assert await form.locator("[data-field-error=password]").inner_text() == "Mật khẩu quá ngắn."
    # A user name already taken is named under the user name (it was a generic "changed or duplicate").
    await form.get_by_label("Tên đăng nhập").fill("agent7")
    await form.get_by_label("Mật khẩu (ít nhất 10 ký tự)").fill("another-password-123")
    await form.get_by_role("button", name="Thêm").click()
    assert await form.locator("[data-field-error=username]").inner_text() == \
        "Tên đăng nhập này đã có người dùng; hãy chọn tên khác."
    assert await form.locator("[data-field-error=password]").count() == 0

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

    # One server and browser for the whole admin console keeps the suite quick.
    await catalogue_templates_statuses_and_audit(live_server, page)


async def catalogue_templates_statuses_and_audit(live_server: Any, page: Any) -> None:
    base = live_server.base_url
    made = await live_server.api("POST", "/api/patients", json={"full_name": "Hoàng Văn Em", "phones": [{"number": "0911222333"}]})
    patient_id = made["patient"]["id"]
    await live_server.api("GET", f"/api/patients/{patient_id}", who="supervisor")  # a "view" in the audit trail

    await open_admin(page, base, "services")
    form = page.locator("form.panel")
    await form.get_by_label("Tên (tiếng Anh)").fill("Ultrasound")
    await form.get_by_role("button", name="Thêm").click()  # the required fields, named in the page's language
    assert await form.locator("[data-field-error=name_vi]").inner_text() == "Ô này là bắt buộc."
    assert await form.locator("[data-field-error=prefix]").inner_text() == "Ô này là bắt buộc."
    await form.get_by_label("Tên (tiếng Việt)").fill("Siêu âm")
    await form.get_by_label("Tên (tiếng Anh)").fill("Ultrasound")
    await form.get_by_label("Ký hiệu số").fill("D")
    await form.get_by_role("button", name="Thêm").click()
    await page.get_by_role("cell", name="Siêu âm", exact=True).wait_for()
    services = (await live_server.api("GET", "/api/services"))["services"]
    ultrasound = next(s for s in services if s["prefix"] == "D")
    assert ultrasound["names"] == {"vi": "Siêu âm", "en": "Ultrasound"}
    assert await audit(page) == []

    await open_admin(page, base, "rooms")
    form = page.locator("form.panel")
    await form.get_by_label("Loại phòng").select_option("imaging")
    await form.get_by_label("Số phòng").fill("5")
    await form.get_by_label("D · Siêu âm").check()
    await form.get_by_label("Bác sĩ trực").fill("BS. Lan")
    await form.get_by_role("button", name="Thêm").click()
    await page.get_by_role("cell", name="BS. Lan").wait_for()
    room = next(r for r in (await live_server.api("GET", "/api/rooms"))["rooms"] if r["number"] == 5)
    assert room["kind"] == "imaging" and room["service_ids"] == [ultrasound["id"]]
    # Edit in a dialog: close the room.
    await page.get_by_role("button", name=f"Sửa {room['name']}").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Đang mở").uncheck()
    await dialog.get_by_role("button", name="Lưu").click()
    await dialog.wait_for(state="hidden")
    room = next(r for r in (await live_server.api("GET", "/api/rooms"))["rooms"] if r["number"] == 5)
    assert room["open"] is False
    assert await audit(page) == []

    await open_admin(page, base, "templates")
    form = page.locator("form.panel")
    await form.get_by_label("Tên").fill("Nhắc lịch")
    await form.get_by_label("Nội dung").fill("Chào {fullName}, mời {unknownThing} đến khám.")
    await form.get_by_role("button", name="Thêm").click()
    assert await form.get_by_role("alert").inner_text() == \
        "Mẫu dùng biến không có: unknownThing. Chỉ dùng các biến được liệt kê."
    await form.get_by_label("Nội dung").fill("Chào {fullName}, mời anh/chị đến khám.")
    await form.get_by_role("button", name="Thêm").click()
    await page.get_by_role("cell", name="Nhắc lịch", exact=True).wait_for()
    assert await audit(page) == []

    await open_admin(page, base, "statuses")
    form = page.locator("form.panel")
    await form.get_by_label("Thuộc trạng thái").select_option(label="Chưa đặt lịch")
    await form.get_by_label("Nhãn").fill("Hẹn gọi lại sau")
    await form.get_by_role("button", name="Thêm").click()
    await page.locator("section[data-status='Chưa đặt lịch']").get_by_role("cell", name="Hẹn gọi lại sau", exact=True).wait_for()
    tree = (await live_server.api("GET", "/api/customer-statuses", who="agent"))["items"]
    parent = next(s for s in tree if s["label"] == "Chưa đặt lịch")
    assert "Hẹn gọi lại sau" in [d["label"] for d in parent["details"]]
    assert await audit(page) == []

    await open_admin(page, base, "audit")
    await page.get_by_label("Mã bệnh nhân").fill(str(patient_id))
    await page.get_by_role("button", name="Lọc").click()
    results = page.locator("#audit-results")
    await results.get_by_role("cell", name="view", exact=True).wait_for()
    text = await results.inner_text()
    assert "Supervisor" in text
    await page.get_by_label("Người dùng").select_option(label="agent")
    await page.get_by_role("button", name="Lọc").click()
    await results.get_by_text("Không có dữ liệu.").wait_for()
    assert await audit(page) == []
