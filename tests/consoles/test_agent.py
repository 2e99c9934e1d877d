"""Agent console in Chromium through the running service: worklists with counts, search by name without
accents and by phone in any form, the patient card, the outcome form without a call, a new patient,
keyboard use (/ to search, Esc closes dialogs, focus returns), the language switch and the accessibility audit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from clinicall.keys import SETTINGS_KEY
from tests.consoles.a11y import audit, focus_is_visible


async def seed_patients(server: Any) -> dict[str, int]:
    agent = server.ids["agent"]
    today = dt.datetime.now(server.app[SETTINGS_KEY].clinic.zone()).date()
    an = await server.api("POST", "/api/patients", json={
        "full_name": "Nguyễn Văn An", "assigned_agent_id": agent, "date_of_birth": "1980-04-05",
        "phones": [{"number": "0912345678", "label": "di động"}]})
    binh = await server.api("POST", "/api/patients", json={
        "full_name": "Trần Thị Bình", "assigned_agent_id": agent, "phones": [{"number": "0987654321"}]})
    other = await server.api("POST", "/api/patients", json={
        "full_name": "Nguyễn Văn Anh", "assigned_agent_id": server.ids["agent2"], "phones": [{"number": "0903000111"}]})
    await server.api("POST", f"/api/patients/{binh['patient']['id']}/notes", who="agent", json={
        "customer_status": "Chưa đặt lịch", "detail_status": "Cần tư vấn thêm", "callback_date": today.isoformat()})
    return {"an": an["patient"]["id"], "binh": binh["patient"]["id"], "other": other["patient"]["id"]}


async def open_console(page: Any, base_url: str) -> None:
    """From the home page (where the login lands) through its link to the console."""
    await page.goto(f"{base_url}/")
    await page.get_by_role("link", name="Tổng đài viên").click()
    await page.wait_for_url(f"{base_url}/agent")
    await page.wait_for_selector("body[data-ready='1']")


async def test_worklists_search_card_note_and_keyboard(live_server: Any, new_page: Any) -> None:
    ids = await seed_patients(live_server)
    page = await new_page("agent")
    await open_console(page, live_server.base_url)

    # Worklists with counts: Bình is due today; An is new; Anh belongs to another agent.
    assert await page.locator("[data-count=due_today]").inner_text() == "1"
    assert await page.locator("[data-count=new]").inner_text() == "1"
    assert await page.locator("#worklist").inner_text() == "Trần Thị Bình\n0987 654 321 — Mới · Gọi lại: " + \
        dt.datetime.now(live_server.app[SETTINGS_KEY].clinic.zone()).date().strftime("%d/%m/%Y")
    await page.get_by_role("tab", name="Mới").click()
    assert "Nguyễn Văn An" in await page.locator("#worklist").inner_text()

    # "/" focuses the search; a name without accents finds the patient (not another agent's).
    await page.locator("body").click()
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "search"
    await page.keyboard.type("nguyen van an")
    await page.keyboard.press("Enter")
    await page.get_by_role("status").filter(has_text="Tìm thấy 1 bệnh nhân.").wait_for()
    results = page.locator("#search-results button")
    assert await results.count() == 1 and "Nguyễn Văn An" in await results.inner_text()
    for form in ("+84912345678", "84912345678", "091 234 5678"):
        await page.get_by_label("Tên (không cần dấu) hoặc số điện thoại").fill(form)
        await page.keyboard.press("Enter")
        await page.locator(f"#search-results button[data-patient='{ids['an']}']").wait_for()

    # The card: details, phones with call buttons, empty timeline.
    await results.first.click()
    await page.get_by_role("heading", name="Nguyễn Văn An").wait_for()
    await page.wait_for_function("document.activeElement && document.activeElement.id === 'card'")
    card = await page.locator("#card").inner_text()
    assert "05/04/1980" in card and "0912 345 678" in card and "di động" in card and "Chưa có ghi chú." in card
    assert await page.get_by_role("button", name="Gọi số 0912 345 678").is_visible()

    # Tab alone reaches everything in order, with a visible focus ring, and never gets stuck.
    await page.get_by_label("Tên (không cần dấu) hoặc số điện thoại").focus()
    seen: list[str] = []
    for _ in range(60):
        await page.keyboard.press("Tab")
        name = await page.evaluate(
            "() => { const e = document.activeElement; return e.id || e.dataset.kind || e.className || e.tagName; }")
        if name == "BODY":  # past the last control, focus goes to the browser and then comes back
            continue
        assert await focus_is_visible(page), name
        seen.append(name)
    assert {"new-patient", "tab-new", "call-button", "add-note"} <= set(seen), seen
    assert len(set(seen)) >= 8

    # Outcome without a call; Esc closes the dialog and focus returns to the button that opened it.
    add = page.get_by_role("button", name="Ghi kết quả liên hệ")
    await add.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Kết quả liên hệ")
    await dialog.wait_for()
    assert await page.evaluate("document.activeElement.id") == "o-customer"
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="hidden")
    assert await page.evaluate("document.activeElement.id") == "add-note"
    assert await focus_is_visible(page)

    await page.keyboard.press("Enter")
    await dialog.wait_for()
    await dialog.get_by_label("Trạng thái khách hàng").select_option("Đã đặt lịch")
    await dialog.get_by_label("Chi tiết").select_option("Đặt lịch khám")
    await dialog.get_by_label("Tình trạng điều trị").select_option("in_treatment")
    await dialog.get_by_label("Ghi chú").fill("Hẹn khám thứ hai")
    await dialog.get_by_label("Ngày đặt lịch").fill("01/12/2026")
    await dialog.get_by_role("button", name="Lưu").click()
    await dialog.wait_for(state="hidden")
    await page.locator("#card-notes").get_by_text("Hẹn khám thứ hai").wait_for()
    assert "Đang điều trị" in await page.locator("#card-status").inner_text()
    card = await live_server.api("GET", f"/api/patients/{ids['an']}")
    assert card["patient"]["care_status"] == "in_treatment" and card["patient"]["booking_date"] == "2026-12-01"
    note = card["notes"][0]
    assert (note["customer_status"], note["detail_status"], note["call_id"]) == ("Đã đặt lịch", "Đặt lịch khám", None)
    assert await audit(page) == []

    # A bad input comes back as a Vietnamese sentence inside the dialog and next to the field; nothing is written.
    await add.click()
    await dialog.get_by_label("Ngày gọi lại").fill("01/01/1200")
    await dialog.get_by_role("button", name="Lưu").click()
    await dialog.get_by_role("alert").wait_for()
    assert await dialog.get_by_role("alert").inner_text() == "Ngày không hợp lệ; hãy viết theo dạng dd/mm/yyyy."
    assert await dialog.locator("[data-field-error=callback_date]").inner_text() == \
        "Ngày không hợp lệ; hãy viết theo dạng dd/mm/yyyy."
    assert await dialog.get_by_label("Ngày gọi lại").get_attribute("aria-invalid") == "true"
    await page.keyboard.press("Escape")
    assert len((await live_server.api("GET", f"/api/patients/{ids['an']}"))["notes"]) == 1

    # A new patient from the console.
    await page.get_by_role("button", name="Bệnh nhân mới").click()
    new = page.get_by_role("dialog", name="Bệnh nhân mới")
    await new.get_by_label("Họ và tên").fill("Phạm Thị Dung")
    await new.get_by_label("Số điện thoại").fill("0977 111")  # a digit short: the sentence sits under the phone
    await new.get_by_role("button", name="Tạo hồ sơ").click()
    assert await new.locator("#nf-phone + [data-field-error]").inner_text() == \
        "Số điện thoại không hợp lệ; hãy viết như 0912 345 678."
    await new.get_by_label("Số điện thoại").fill("0977 111 222")
    await new.get_by_role("button", name="Tạo hồ sơ").click()
    await page.get_by_role("heading", name="Phạm Thị Dung").wait_for()
    found = await live_server.api("GET", "/api/patients?q=0977111222", who="agent")
    assert found["items"][0]["assigned_agent_id"] == live_server.ids["agent"]

    # English is one click away; the page comes back translated with the same card open.
    await page.get_by_role("button", name="English").click()
    await page.wait_for_selector("body[data-ready='1']")
    await page.get_by_role("heading", name="Agent console").wait_for()
    await page.get_by_role("heading", name="Phạm Thị Dung").wait_for()
    assert await page.get_by_label("Name (accents optional) or phone number").is_visible()
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert await page.get_by_role("button", name="English").get_attribute("aria-pressed") == "true"
    assert await page.get_by_role("button", name="Log a contact outcome").is_visible()
    assert await audit(page) == []
