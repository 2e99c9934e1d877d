"""Reception console in Chromium: today's expected arrivals with check-in that issues the ticket, a
walk-in ticket with priority, the live queue per service with estimated waits; then a doctor's
call-next shows the checked-in number on the waiting-room TV."""

from __future__ import annotations

import datetime as dt
from typing import Any

from clinicall.keys import SETTINGS_KEY
from tests.consoles.a11y import audit, tab_walk


async def test_checkin_walkin_queue_and_tv(live_server: Any, new_page: Any) -> None:
    today = dt.datetime.now(live_server.app[SETTINGS_KEY].clinic.zone()).date().isoformat()
    made = await live_server.api("POST", "/api/patients", json={
        "full_name": "Lê Thị Hồng", "assigned_agent_id": live_server.ids["agent"], "phones": [{"number": "0912000111"}]})
    patient_id = made["patient"]["id"]
    await live_server.api("POST", f"/api/patients/{patient_id}/notes", who="agent", json={
        "customer_status": "Đã đặt lịch", "booking_date": today, "arrival_date": today})

    tv = await new_page()
    await tv.goto(live_server.url("/tv", token=live_server.display_token))
    await tv.wait_for_selector("#status[data-state='live']")

    page = await new_page("reception")
    await page.goto(live_server.base_url + "/reception")
    await page.wait_for_selector("body[data-ready='1']")
    row = page.locator(f"#arrivals tr[data-patient='{patient_id}']")
    await row.wait_for()
    assert "Lê Thị Hồng" in await row.inner_text()
    await page.get_by_label("Dịch vụ khi tiếp nhận").select_option(str(live_server.services["A"]))
    await page.get_by_role("button", name="Tiếp nhận Lê Thị Hồng").click()
    await row.locator("[data-ticket='A001']").wait_for()
    assert await page.locator("#issued-number").inner_text() == "A001"
    ticket = await live_server.api("GET", "/api/queue", who="reception")
    line = next(s for s in ticket["services"] if s["prefix"] == "A")["waiting"]
    assert [t["number"] for t in line] == ["A001"] and line[0]["priority"] == "booked"

    # After a reload the row still shows the number (no second check-in button).
    await page.reload()
    await page.wait_for_selector("body[data-ready='1']")
    await row.locator("[data-ticket='A001']").wait_for()
    assert await row.get_by_role("button").count() == 0
    exports = page.locator("#arrivals-export a[data-export='xlsx']")
    assert [await a.get_attribute("href") for a in await exports.all()] == [
        f"/api/arrivals?date={today}&export=xlsx&lang=vi", f"/api/tickets?date={today}&export=xlsx&lang=vi"]

    # Walk-in with a priority.
    await page.get_by_label("Dịch vụ", exact=True).select_option(str(live_server.services["B"]))
    await page.get_by_label("Ưu tiên", exact=True).select_option("elderly")
    await page.get_by_role("button", name="Cấp số").click()
    await page.locator("#issued-number").filter(has_text="B001").wait_for()

    # The queue per service, with an estimated wait per ticket.
    queue = page.locator("#queue")
    await queue.locator("tr[data-ticket='A001']").wait_for()
    await queue.locator("tr[data-ticket='B001']").wait_for()
    b_row = await queue.locator("tr[data-ticket='B001']").inner_text()
    assert "Người cao tuổi" in b_row and ("phút" in b_row or "sắp tới" in b_row), b_row  # an idle room: next
    # The patient lost the slip: reception prints it again (same number), kept in the ticket's history.
    async with page.context.expect_page() as opened:
        await queue.get_by_role("button", name="In lại phiếu số B001").click()
    slip = await opened.value
    await slip.wait_for_selector("body[data-ready='1']")
    assert (await slip.locator("#number").inner_text(), await slip.locator("#copy").inner_text()) == ("B001", "In lại lần 1")
    await slip.close()
    assert await audit(page) == []
    walked = await tab_walk(page, 30)
    assert {"w-service", "w-priority", "a-date", "a-service", "a-priority"} <= set(walked), walked

    # The same console in Chinese (vi first, en and zh too): every label translated, the wait a range.
    await page.get_by_role("button", name="中文").click()
    await page.wait_for_function("document.documentElement.lang === 'zh' && document.body.dataset.ready === '1'")
    assert await page.locator("h1").inner_text() == "前台"
    b_row = await queue.locator("tr[data-ticket='B001']").inner_text()
    assert "老人" in b_row and ("分钟" in b_row or "即将" in b_row), b_row
    await page.get_by_role("button", name="取号").wait_for()
    assert (await page.locator("#arrivals thead").inner_text()).split() == ["姓名", "电话", "状态", "号码"]

    # A doctor calls the next patient into consult room 1: the TV shows the checked-in number.
    await live_server.api("POST", f"/api/rooms/{live_server.rooms['consult:1']}/call-next", who="doctor")
    await tv.locator("#now-number").filter(has_text="A001").wait_for()
    # ... and reception's queue drops it on its next refresh.
    await queue.locator("tr[data-ticket='A001']").wait_for(state="detached")

    # The agent's patient card lists the patient's tickets.
    tickets = (await live_server.api("GET", f"/api/patient-tickets?patient_id={patient_id}", who="agent"))["tickets"]
    assert [(t["number"], t["status"], t["source"]) for t in tickets] == [("A001", "called", "checkin")]
    await live_server.api("GET", f"/api/patient-tickets?patient_id={patient_id}", who="agent2", expect=403)
    await live_server.api("GET", "/api/patient-tickets?patient_id=abc", who="agent", expect=400)
    agent = await new_page("agent")
    await agent.goto(f"{live_server.base_url}/agent#patient={patient_id}")
    await agent.locator("#card-tickets").get_by_text("A001").wait_for()
    assert "Đã gọi" in await agent.locator("#card-tickets").inner_text()

    # The admin's statistics: the booked patient arrived (booking -> arrival), and the wait of A001.
    admin = await new_page("admin")
    await admin.goto(f"{live_server.base_url}/admin/stats")
    await admin.wait_for_selector("body[data-ready='1']")
    titles = await admin.eval_on_selector_all("svg[role=img] > title", "els => els.map(e => e.textContent)")
    assert "Đặt lịch → đến khám: 1/1 (100%)" in titles, titles
    waits = admin.locator("details table").filter(
        has=admin.locator("caption", has_text="Thời gian chờ trung bình theo dịch vụ"))
    assert "A · Khám tổng quát" in await waits.text_content()
