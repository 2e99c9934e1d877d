"""Every console capability from its page, as the role that uses it, end to end in Chromium: the patient
card's tools (edit, second phone, message template, follow-up plan, hand-over), the demo inbound form's
errors, the outcome form after a busy call, the care lists (unassigned, transfers, follow-ups in 7-day and
1-month views, calls across agents, duplicates and merge, HIS import), the supervisor's statistics, exports
that open in openpyxl with the rows the page shows, and a doctor refused /agent in their language.
Each page is photographed at 1366x768 and 390x844 into test-results/consoles/ and must not overflow
sideways. One browser per test, one page per role, reused from page to page."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import text

from clinicall.keys import DB_KEY, SETTINGS_KEY
from tests.browser import RESULTS_DIR
from tests.consoles.a11y import audit

SHOTS = RESULTS_DIR / "consoles"
SIZES = ((1366, 768), (390, 844))


async def shots(page: Any, name: str, sizes: tuple[tuple[int, int], ...] = SIZES) -> None:
    """Screenshots at each size; the page never scrolls sideways (its own wide tables scroll inside a box)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in sizes:
        await page.set_viewport_size({"width": width, "height": height})
        await page.wait_for_timeout(150)
        scroll, client = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert scroll <= client, f"{name} overflows at {width}x{height}: {scroll} > {client}"
        await page.screenshot(path=str(SHOTS / f"{name}-{width}x{height}.png"), full_page=True)
    await page.set_viewport_size({"width": 1366, "height": 768})


async def goto(page: Any, url: str) -> None:
    if page.url.split("#")[0] == url.split("#")[0]:
        await page.goto("about:blank")  # a new #hash alone would not load the page again
    await page.goto(url)
    await page.wait_for_selector("body[data-ready='1']")


async def download_rows(page: Any, link: Any) -> list[tuple[Any, ...]]:
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    book = load_workbook(io.BytesIO((await download.path()).read_bytes()))
    return list(book.active.iter_rows(values_only=True))


async def patient(server: Any, name: str, phone: str, agent: str | None) -> int:
    body = await server.api("POST", "/api/patients", json={
        "full_name": name, "phones": [{"number": phone}], "assigned_agent_id": server.ids[agent] if agent else None})
    return int(body["patient"]["id"])


async def test_agent_card_tools_outcome_and_care_lists(live_server: Any, new_page: Any) -> None:
    server = live_server
    today = dt.datetime.now(server.app[SETTINGS_KEY].clinic.zone()).date()
    an = await patient(server, "Nguyễn Văn An", "0912345678", "agent")
    ha = await patient(server, "Đặng Thu Hà", "0903000002", "agent")  # the demo PBX: busy
    mai = await patient(server, "Lý Thị Mai", "0909000111", None)
    quick = await patient(server, "Trịnh Văn Nhanh", "0909000222", None)
    await server.api("POST", "/api/templates", who="supervisor", json={
        "name": "Nhắc lịch", "body": "Chào {fullName}, {clinicName} nhắc lịch khám."})
    await server.api("POST", f"/api/patients/{an}/follow-ups", who="agent", json={
        "method": "phone", "theme": "Hỏi thăm sau 20 ngày", "due_date": (today + dt.timedelta(days=20)).isoformat()})

    page = await new_page("agent")
    await goto(page, f"{server.base_url}/agent#patient={an}")
    await page.get_by_role("heading", name="Nguyễn Văn An").wait_for()
    phone = page.locator("#card-phones .phone").first
    assert (await phone.inner_text(), await phone.get_attribute("title")) == ("0912 345 678", "+84912345678")

    # Edit the record.
    await page.get_by_role("button", name="Sửa hồ sơ").click()
    dialog = page.get_by_role("dialog", name="Sửa hồ sơ")
    await dialog.get_by_label("Địa chỉ").fill("12 Lê Lợi, Quận 1")
    await dialog.get_by_label("Ngày sinh").fill("05/04/1980")
    await dialog.get_by_role("button", name="Lưu").click()
    await dialog.wait_for(state="hidden")
    await page.locator("#card-details").get_by_text("12 Lê Lợi, Quận 1").wait_for()
    card = (await server.api("GET", f"/api/patients/{an}", who="agent"))["patient"]
    assert (card["address"], card["date_of_birth"]) == ("12 Lê Lợi, Quận 1", "1980-04-05")

    # A second phone, written with spaces; a bad one is refused next to the field in Vietnamese.
    await page.get_by_role("button", name="Thêm số điện thoại").click()
    dialog = page.get_by_role("dialog", name="Thêm số điện thoại")
    await dialog.get_by_label("Số điện thoại").fill("12")
    await dialog.get_by_role("button", name="Thêm").click()
    await dialog.locator("[data-field-error=number]").wait_for()
    assert await dialog.get_by_role("alert").inner_text() == \
        "Số điện thoại không hợp lệ; hãy viết như 0912 345 678 hoặc +84912345678."
    await dialog.get_by_label("Số điện thoại").fill("0977 555 666")
    await dialog.get_by_label("Ghi chú số (ví dụ: người nhà)").fill("người nhà")
    await dialog.get_by_role("button", name="Thêm").click()
    await dialog.wait_for(state="hidden")
    await page.locator("#card-phones [data-e164='+84977555666']").wait_for()
    assert await page.locator("#card-phones [data-e164='+84977555666']").inner_text() == "0977 555 666"
    # The patient's old number is gone: removed from the card (after a confirmation), the new one is now
    # the number SMS and reminder calls go to.
    page.once("dialog", lambda confirm: asyncio.ensure_future(confirm.accept()))
    await page.get_by_role("button", name="Xoá số 0912 345 678").click()
    await page.locator("#card-status-msg").get_by_text("Đã xoá số 0912 345 678.").wait_for()
    assert await page.locator("#card-phones li").all_inner_texts() == [
        "0977 555 666\nngười nhà\nnhận nhắc lịch và SMS\nGọi\nXoá số"]
    card = (await server.api("GET", f"/api/patients/{an}", who="agent"))["patient"]
    assert [p["e164"] for p in card["phones"]] == ["+84977555666"]

    # A message template, filled for this patient, copied; sent as an SMS to the number the card shows.
    await page.get_by_role("button", name="Tin nhắn mẫu").click()
    dialog = page.get_by_role("dialog", name="Tin nhắn mẫu")
    await dialog.get_by_label("Mẫu").select_option(label="Nhắc lịch")
    await page.wait_for_function("document.getElementById('tpl-text').value.includes('Nguyễn Văn An')")
    await dialog.get_by_role("button", name="Sao chép").click()
    await dialog.get_by_text("Đã sao chép.", exact=False).wait_for()
    await dialog.get_by_role("button", name="Gửi SMS").click()
    await page.locator("#card-messages li[data-message]").get_by_text("0977 555 666", exact=False).wait_for()
    sent = (await server.api("GET", f"/api/patients/{an}/messages", who="agent"))["items"]
    assert [m["to_e164"] for m in sent] == ["+84977555666"]
    await page.keyboard.press("Escape")

    # A follow-up plan in three days, typed as dd/mm/yyyy.
    due = today + dt.timedelta(days=3)
    await page.get_by_role("button", name="Lên kế hoạch chăm sóc").click()
    dialog = page.get_by_role("dialog", name="Lên kế hoạch chăm sóc")
    await dialog.get_by_label("Ngày thực hiện").fill(due.strftime("%d/%m/%Y"))
    await dialog.get_by_label("Nội dung").fill("Nhắc uống thuốc")
    await dialog.get_by_role("button", name="Lưu").click()
    await dialog.wait_for(state="hidden")
    await page.locator("#card-followups").get_by_text("Nhắc uống thuốc", exact=False).wait_for()
    assert due.strftime("%d/%m/%Y") in await page.locator("#card-followups").inner_text()

    # Hand the patient over to agent2: a request for a supervisor.
    await page.get_by_role("button", name="Chuyển cho tổng đài viên khác").click()
    dialog = page.get_by_role("dialog", name="Chuyển cho tổng đài viên khác")
    await dialog.get_by_label("Chuyển cho").select_option(label="Agent2")
    await dialog.get_by_label("Lý do").fill("Nghỉ phép")
    await dialog.get_by_role("button", name="Gửi đề nghị").click()
    await dialog.wait_for(state="hidden")
    pending = (await server.api("GET", "/api/transfers?status=pending", who="supervisor"))["items"]
    assert [(p["patient_id"], p["to_agent_id"], p["reason"]) for p in pending] == [(an, server.ids["agent2"], "Nghỉ phép")]
    assert await audit(page) == []

    # The demo inbound form: the error sits next to the number, no "sent"; a spaced number is accepted.
    demo = page.locator("#demo-form")
    await demo.get_by_label("Giả lập cuộc gọi đến từ số").fill("09x")
    await demo.get_by_role("button", name="Gọi đến").click()
    await demo.locator("[data-field-error=number]").wait_for()
    assert await demo.locator("[data-field-error=number]").inner_text() == "Giá trị không đúng định dạng."
    assert await page.locator("#demo-status").inner_text() == ""
    await demo.get_by_label("Giả lập cuộc gọi đến từ số").fill("0912 300 099")
    await demo.get_by_role("button", name="Gọi đến").click()
    await page.locator("#demo-status").get_by_text("Đã gửi cuộc gọi đến từ 0912 300 099.").wait_for()
    assert await demo.locator("[data-field-error]").count() == 0
    await page.get_by_role("dialog", name="Cuộc gọi đến").wait_for()
    await page.keyboard.press("Escape")

    # A busy call: the outcome form pre-selects "not reached / busy"; "call back" needs a date.
    await goto(page, f"{server.base_url}/agent#patient={ha}")
    await page.get_by_role("button", name="Gọi số 0903 000 002").click()
    dialog = page.get_by_role("dialog", name="Kết quả liên hệ")
    await dialog.wait_for()
    assert await dialog.get_by_label("Trạng thái khách hàng").input_value() == "Không liên lạc được"
    assert await dialog.get_by_label("Chi tiết").input_value() == "Máy bận"
    await dialog.get_by_label("Trạng thái khách hàng").select_option("Hẹn gọi lại")
    await dialog.get_by_role("button", name="Lưu").click()
    await dialog.locator("[data-field-error=callback_date]").wait_for()
    assert await dialog.locator("[data-field-error=callback_date]").inner_text() == "Hãy chọn ngày gọi lại."
    assert (await server.api("GET", f"/api/patients/{ha}", who="agent"))["notes"] == []
    await dialog.get_by_label("Ngày gọi lại").fill(today.strftime("%d/%m/%Y"))
    await dialog.get_by_role("button", name="Lưu").click()
    await dialog.wait_for(state="hidden")
    notes = (await server.api("GET", f"/api/patients/{ha}", who="agent"))["notes"]
    assert (notes[0]["customer_status"], notes[0]["callback_date"]) == ("Hẹn gọi lại", today.isoformat())
    row = page.locator("#card-calls tbody tr").first
    assert "Máy bận" in await row.inner_text() and "0903 000 002" in await row.inner_text()

    # The layout holds with recordings in the call history (the player does not squeeze the notes).
    async with server.app[DB_KEY].transaction() as s:
        await s.execute(text("UPDATE calls SET recording_path = '/var/spool/asterisk/monitor/clinicall/x.wav'"))
    await goto(page, f"{server.base_url}/agent#patient={ha}")
    await page.locator("#card-calls audio").first.wait_for()
    await shots(page, "agent-card", ((1920, 1080), *SIZES))
    for width, height in ((1366, 768), (1920, 1080)):
        await page.set_viewport_size({"width": width, "height": height})
        outcome_cell = page.locator("#card-calls tbody tr").first.locator("td.outcome")
        box, player = await outcome_cell.bounding_box(), await outcome_cell.locator("audio").bounding_box()
        wrap = await page.locator("#card-calls").evaluate("t => [t.parentElement.scrollWidth, t.parentElement.clientWidth]")
        assert box["width"] >= 200 and player["width"] >= 150 and wrap[0] <= wrap[1], (width, box, player, wrap)
    await page.set_viewport_size({"width": 1366, "height": 768})

    # The due-today worklist exports what it lists.
    await page.get_by_role("tab", name="Gọi lại hôm nay").click()
    shown = await page.locator("#worklist button[data-patient]").count()
    rows = await download_rows(page, page.locator("#worklist-export a[data-export=xlsx]"))
    assert rows[0][1] == "Họ và tên" and len(rows) - 1 == shown == 1 and rows[1][1] == "Đặng Thu Hà"

    # Care lists: take the unassigned patient; the follow-ups in the 7-day and 1-month views.
    await goto(page, f"{server.base_url}/care/unassigned")
    await page.wait_for_selector("body[data-ws='open']")
    # agent2 takes one of them first: the list drops it live (no reload), and takes the rest
    await server.api("POST", f"/api/patients/{quick}/assign", who="agent2", json={"agent_id": server.ids["agent2"]})
    await page.locator(f"tr[data-patient='{quick}']").wait_for(state="detached")
    await page.locator(f"tr[data-patient='{mai}']").get_by_role("button", name="Nhận chăm sóc").click()
    await page.get_by_text("Đã phân công.").wait_for()
    assert (await server.api("GET", f"/api/patients/{mai}", who="agent"))["patient"]["assigned_agent_id"] == server.ids["agent"]
    await goto(page, f"{server.base_url}/care/follow-ups")
    await page.locator("tr[data-followup]").first.wait_for()
    assert await page.locator("tr[data-followup]").count() == 1
    await shots(page, "care-follow-ups")
    await page.get_by_label("Xem theo").select_option("month")
    await page.get_by_role("button", name="Xem").click()
    await page.locator("tr[data-followup]").nth(1).wait_for()
    assert "Hỏi thăm sau 20 ngày" in await page.locator("#section").inner_text()
    await page.locator("tr[data-followup]").first.get_by_role("button", name="Đánh dấu đã xong").click()
    await page.get_by_text("Đã lưu.").wait_for()
    rows = await download_rows(page, page.locator("a[data-export=xlsx]"))
    assert len(rows) - 1 == await page.locator("tr[data-followup]").count() == 2
    assert await audit(page) == []

    # In Chinese: the same page, its dates as yyyy-mm-dd whatever the browser's locale (vi-VN here).
    await page.get_by_role("button", name="中文").click()
    await page.wait_for_selector("body[data-ready='1']")
    await page.get_by_role("heading", name="随访计划").wait_for()
    assert (today + dt.timedelta(days=3)).isoformat() in await page.locator("#section").inner_text()
    assert await page.locator("#fu-from").get_attribute("placeholder") == "yyyy-mm-dd"
    await shots(page, "care-follow-ups-zh", SIZES[:1])


async def test_supervisor_pages_and_refusals(live_server: Any, new_page: Any) -> None:
    server = live_server
    an = await patient(server, "Nguyễn Văn An", "0912345678", "agent")
    nam = await patient(server, "Hồ Văn Nam", "0911222333", "agent2")
    twin = await patient(server, "Ho Van Nam", "0911 222 333", None)
    await server.api("POST", f"/api/patients/{an}/transfer-requests", who="agent", json={
        "to_agent_id": server.ids["agent2"], "reason": "Nghỉ phép"})
    for number in ("0912345678", "0903000002"):
        pid = an if number == "0912345678" else await patient(server, "Đặng Thu Hà", number, "agent2")
        phone = (await server.api("GET", f"/api/patients/{pid}", who="supervisor"))["patient"]["phones"][0]["id"]
        await server.api("POST", "/api/calls", who="agent" if pid == an else "agent2",
                         json={"patient_id": pid, "phone_id": phone}, expect=202)

    # One visit served in consult room 1 (issued, called, started, done) for the per-room statistics.
    ticket = await server.api("POST", "/api/tickets", who="reception", json={"service_id": server.services["A"]})
    room = server.rooms["consult:1"]
    called = await server.api("POST", f"/api/rooms/{room}/call-next", who="doctor")
    ticket_id = called["ticket"]["id"]
    assert ticket_id == ticket["ticket"]["id"]
    for step in ("start", "done"):
        await server.api("POST", f"/api/tickets/{ticket_id}/{step}", who="doctor")

    page = await new_page("supervisor")
    await page.get_by_role("link", name="Điều phối chăm sóc").click()
    await page.wait_for_selector("body[data-ready='1']")

    # Transfers: approve the agent's request.
    await page.get_by_role("link", name="Chuyển bệnh nhân").click()
    await page.wait_for_selector("body[data-ready='1']")
    await page.locator("tr[data-transfer]").get_by_role("button", name="Duyệt").click()
    await page.get_by_text("Đã duyệt chuyển bệnh nhân.").wait_for()
    await page.get_by_role("link", name="Đã duyệt").click()
    await page.locator("tr[data-transfer]").wait_for()
    await shots(page, "care-transfers")
    assert (await server.api("GET", f"/api/patients/{an}"))["patient"]["assigned_agent_id"] == server.ids["agent2"]

    # Unassigned: assign the twin to agent.
    await goto(page, f"{server.base_url}/care/unassigned")
    await shots(page, "care-unassigned")
    await page.wait_for_selector("body[data-ws='open']")  # another desk's new patient appears without a reload
    made = await server.api("POST", "/api/patients", who="agent2", json={
        "full_name": "Lê Thị Mới", "phones": [{"number": "0938555666"}], "assigned_agent_id": None})
    await page.locator(f"tr[data-patient='{made['patient']['id']}']").wait_for()
    row = page.locator(f"tr[data-patient='{twin}']")
    await row.get_by_label("Phân công Ho Van Nam").select_option(label="Agent")
    await row.get_by_role("button", name="Phân công").click()
    await page.get_by_text("Đã phân công.").wait_for()
    assert (await server.api("GET", f"/api/patients/{twin}"))["patient"]["assigned_agent_id"] == server.ids["agent"]

    # Duplicates: the same phone twice; keep the first record, merge the other into it.
    await goto(page, f"{server.base_url}/care/duplicates")
    group = page.locator("section[data-group]").first
    await group.locator(f"input[value='{nam}']").check()
    await shots(page, "care-duplicates")
    await group.get_by_role("button", name="Gộp vào hồ sơ được giữ").click()
    await page.get_by_text("Đã gộp hồ sơ.").wait_for()
    assert (await server.api("GET", f"/api/patients/{twin}"))["patient"]["id"] == nam

    # HIS import: progress, the summary and the bad row with its line.
    await goto(page, f"{server.base_url}/care/import")
    csv_text = "Mã BN,Họ tên,Điện thoại,Ngày sinh\nHIS1,Phan Văn Tài,0938111222,01/02/1970\nHIS2,,0938111333,\nHIS3,Vũ Thị Lan,,\n"
    await page.set_input_files("#import-file", files=[{"name": "his.csv", "mimeType": "text/csv",
                                                       "buffer": csv_text.encode("utf-8")}])
    await page.get_by_text("his.csv", exact=True).wait_for()
    await page.get_by_role("button", name="Nhập", exact=True).click()
    summary = page.locator("[data-summary]")
    await summary.wait_for()
    assert await summary.inner_text() == "Đã đọc 3 dòng: 2 hồ sơ mới, 0 cập nhật, 0 không đổi, 1 dòng lỗi."
    assert await page.locator("#import-progress").get_attribute("value") == "100"
    assert await page.locator("tr[data-line='3']").inner_text() == "3\tfull_name\tThiếu họ tên."
    await shots(page, "care-import")

    # Every agent's calls, then one agent's; the export has the rows the page shows.
    await goto(page, f"{server.base_url}/care/calls")
    await page.locator("tr[data-call]").nth(1).wait_for()
    assert await page.locator("tr[data-call]").count() == 2
    assert await page.locator(f"tr[data-call] a[href='/agent#patient={an}']").inner_text() == "Nguyễn Văn An"
    await page.get_by_label("Tổng đài viên").select_option(label="Agent2")
    await page.get_by_role("button", name="Xem").click()
    await page.wait_for_function("document.querySelectorAll('tr[data-call]').length === 1")
    rows = await download_rows(page, page.locator("a[data-export=xlsx]"))
    assert len(rows) == 2 and rows[1][3] == "0903 000 002" and rows[1][5] == "Đặng Thu Hà"
    await shots(page, "care-calls")
    assert await audit(page) == []

    # The supervisor's statistics (/admin/stats, only that section), with service times per room.
    await goto(page, f"{server.base_url}/admin/stats")
    await page.locator("#room-stats").wait_for()
    cells = await page.locator("#room-stats tbody tr").all_inner_texts()
    assert len(cells) == 1 and "\t1\t1\t" in cells[0]  # one visit, one served
    assert await page.locator("#admin-nav a").all_inner_texts() == ["Thống kê"]
    rows = await download_rows(page, page.locator("#stats-exports a[data-export=xlsx]").first)
    assert rows[0][0] == "Tổng đài viên"
    await shots(page, "admin-stats")

    # A doctor opening /agent is told why, in their language, with a link home.
    doctor = await new_page("doctor")
    response = await doctor.goto(f"{server.base_url}/agent")
    assert response.status == 403
    await doctor.get_by_role("heading", name="Không có quyền mở trang này").wait_for()
    assert "Tổng đài viên" in await doctor.locator("#why").inner_text()
    await shots(doctor, "forbidden")
    await doctor.evaluate("localStorage.setItem('clinicall.lang', 'zh')")
    await doctor.reload()
    await doctor.get_by_role("heading", name="您无权打开此页面").wait_for()
    assert "坐席" in await doctor.locator("#why").inner_text()
    await doctor.get_by_role("link", name="返回首页").click()
    await doctor.wait_for_url(f"{server.base_url}/")
