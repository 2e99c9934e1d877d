"""The supervisor's walk-through of reminder calls in a real browser, against the demo PBX inside the
service (AMI and FastAGI over TCP): a patient is marked do-not-call on the card, a campaign of
tomorrow's bookings is started from /reminders, and the page shows it progress to its end; then a
waiting patient opted in at reception gets the turn-near call (no SMS gateway), listed on the page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clinicall.keys import SETTINGS_KEY
from tests.servers import free_port


@pytest.fixture
def live_settings() -> dict[str, Any]:
    return {"telephony": {"demo_pbx": True, "agi_enabled": True, "agi_port": free_port(), "demo_time_scale": 0.05},
            "reminders": {"daily_kinds": [], "calling_hours": ["00:00-24:00"], "max_attempts": 2, "retry_minutes": 0,
                          "key_timeout_seconds": 0.2}}


async def test_supervisor_starts_a_campaign_and_sees_it_progress(live_server: Any, new_page: Any) -> None:
    tomorrow = (dt.datetime.now(live_server.app[SETTINGS_KEY].clinic.zone()).date() + dt.timedelta(days=1)).isoformat()
    ids = []
    for name, number in (("Nguyễn Văn An", "0901234561"), ("Trần Thị Bình", "0901234566"),
                         ("Phạm Thị Dung", "0901230003"), ("Hoàng Văn Em", "0901234571")):
        made = await live_server.api("POST", "/api/patients", json={"full_name": name, "phones": [{"number": number}]})
        ids.append(made["patient"]["id"])
        await live_server.api("PATCH", f"/api/patients/{ids[-1]}", json={"booking_date": tomorrow})

    page = await new_page("supervisor")
    await page.goto(f"{live_server.base_url}/agent#patient={ids[3]}")
    await page.get_by_role("heading", name="Hoàng Văn Em").wait_for()
    await page.get_by_label("Không gọi nhắc lịch tự động").check()
    await page.get_by_text("Đã tắt cuộc gọi nhắc tự động cho bệnh nhân này.").wait_for()
    assert (await live_server.api("GET", f"/api/patients/{ids[3]}"))["patient"]["do_not_call"] is True

    await page.goto(f"{live_server.base_url}/reminders")
    await page.get_by_role("heading", name="Cuộc gọi nhắc lịch").wait_for()
    await page.get_by_text("Số cuộc gọi cùng lúc").wait_for()  # the settings are shown
    await page.get_by_label("Loại chiến dịch").select_option("appointment")
    await page.get_by_role("button", name="Bắt đầu chiến dịch").click()
    row = page.locator("#campaign-table tbody tr").first
    await row.wait_for()
    await page.locator("#campaign-table tr[data-state='done']").wait_for()
    counts = {k: await row.locator(f"td[data-count='{k}']").inner_text()
              for k in ("confirmed", "callback", "not_reached", "skipped", "called")}
    assert counts == {"confirmed": "1", "callback": "1", "not_reached": "1", "skipped": "1", "called": "4"}
    assert await row.locator("td.state").inner_text() == "Đã xong"
    # who was called, on which number, and how it ended: on the page, each name opening the patient's card
    await row.locator("[data-targets]").click()
    await page.locator("#targets-table tbody tr").nth(3).wait_for()
    shown = await page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#targets-table tbody tr')].map(
        (r) => [r.cells[0].textContent, [r.cells[1].textContent, r.cells[2].textContent, r.cells[0].querySelector('a').getAttribute('href')]]))""")
    assert shown["Phạm Thị Dung"] == ["0901 230 003", "Không liên lạc được", f"/agent#patient={ids[2]}"]
    assert shown["Hoàng Văn Em"][1] == "Bỏ qua: không nhận cuộc gọi tự động"
    assert (shown["Nguyễn Văn An"][0], shown["Trần Thị Bình"][0]) == ("0901 234 561", "0901 234 566")
    assert {shown["Nguyễn Văn An"][1], shown["Trần Thị Bình"][1]} == {"Đã xác nhận", "Cần gọi lại"}
    # no SMS gateway: a waiting patient who opted in at reception gets a short call, listed on the same page
    ticket = await live_server.api("POST", "/api/tickets", who="reception",
                                   json={"service_id": live_server.services["A"], "patient_id": ids[0]})
    opted = await live_server.api("POST", "/api/turn-near", who="reception",
                                  json={"ticket_id": ticket["ticket"]["id"], "phone": "0901234561"})
    assert opted["channel"] == "call"
    answered = page.locator(f"#turn-near-table tr[data-ticket='{ticket['ticket']['id']}'][data-state='answered']")
    await answered.wait_for()
    assert (await answered.locator("td.state").inner_text()).startswith("Đã nghe máy")
    # the calls list and the statistics name these calls as automated ones (not "unassigned", not "—")
    await page.goto(f"{live_server.base_url}/care/calls")
    await page.locator("tr[data-call]").nth(2).wait_for()
    first = page.locator("tr[data-call]").filter(has_text="Phạm Thị Dung").first
    assert "Cuộc gọi tự động" in await first.inner_text()
    await page.goto(f"{live_server.base_url}/admin/stats")
    rates = page.locator("details table").filter(has=page.locator("caption", has_text="Tỉ lệ nghe máy theo tổng đài viên"))
    await rates.wait_for(state="attached")
    assert "Cuộc gọi tự động (nhắc lịch)" in await rates.text_content()

